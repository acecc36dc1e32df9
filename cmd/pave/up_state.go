package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/buildinfo"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

// openState opens the store the state-store setting names. A store that
// cannot be reached, or takes no writes, stops start-up with the
// setting's name: a control plane never runs on state it cannot keep.
func openState(ctx context.Context, cfg config.Config) (state.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := state.Open(ctx, cfg.StateStore, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("setting state-store (%s): %w", state.Describe(cfg.StateStore), err)
	}
	return st, nil
}

// startLeader campaigns for the control plane's lease in the state store
// and returns a context through which leader.Gate runs the deciding loops
// (the release engine, the fleet controller) on the leader only. Every
// replica serves the API and the UI. With SQLite, the one replica leads
// at once; the same code runs either way.
func startLeader(ctx context.Context, g *errgroup.Group, cfg config.Config, store state.Store, api net.Addr, srv *server.Server, log *slog.Logger) context.Context {
	leases, ok := store.(state.Leases)
	if !ok {
		return ctx // a store without leases: one replica, nothing to elect
	}
	if cfg.StateStore == "" || cfg.StateStore == "sqlite" {
		// One pave up per data directory (datadir.Acquire): a lease still
		// live in its state.db is a previous process's, killed before it
		// could give it up. Break it, so a restart leads (and alerts,
		// scales runners, releases) at once rather than after the lease.
		if l, err := leases.GetLease(ctx, leader.LeaseName); err == nil && l.Live() {
			_ = leases.ReleaseLease(ctx, leader.LeaseName, l.Holder, l.Token)
		}
	}
	el := leader.New(leases, leader.Options{Note: api.String(), TTL: cfg.LeaderLease, Log: log.With("component", "leader")})
	g.Go(func() error { el.Run(ctx, nil); return nil })
	srv.HandleFunc("GET /api/v1/control-plane", func(w http.ResponseWriter, r *http.Request) {
		st := controlPlaneStatus{Version: buildinfo.Read().Version, StateStore: state.Describe(cfg.StateStore),
			Replica: replicaStatus{ID: el.ID(), Address: api.String()}}
		_, st.Replica.Leading = el.Leading()
		l, err := el.Lease(r.Context())
		switch {
		case err == nil:
			st.Leader = &leaderStatus{ID: l.Holder, Address: l.Note, Token: l.Token, Since: l.Acquired, Renewed: l.Renewed, Expires: l.Expires, Live: l.Live(),
				Age: l.Now.Sub(l.Acquired).Round(time.Second).String()}
		case !errors.Is(err, state.ErrNotFound):
			http.Error(w, fmt.Sprintf("read the leader's lease from the state store: %v", err), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	return leader.NewContext(ctx, el)
}

// controlPlaneStatus is GET /api/v1/control-plane: which replica answered
// and which one leads.
type controlPlaneStatus struct {
	Version    string        `json:"version"`
	StateStore string        `json:"stateStore"`
	Replica    replicaStatus `json:"replica"`
	Leader     *leaderStatus `json:"leader,omitempty"` // nil before the first election
}

type replicaStatus struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Leading bool   `json:"leading"`
}

type leaderStatus struct {
	ID      string    `json:"id"`
	Address string    `json:"address"`
	Token   int64     `json:"token"`
	Since   time.Time `json:"since"`
	Age     string    `json:"age"`
	Renewed time.Time `json:"renewed"`
	Expires time.Time `json:"expires"`
	// Live is false when the lease expired and no standby took it yet.
	Live bool `json:"live"`
}

// registerStateMetrics puts the state store's group commits on Pave's own
// metrics (job "pave" of the embedded metrics store): the writes its
// commits carried and the commits. Their rates' ratio is how many
// concurrent writes share a commit (one round trip on PostgreSQL, one
// fsync on SQLite); near 1 under load means the writers wait for each
// other's commits.
func registerStateMetrics(reg prometheus.Registerer, store state.Store) {
	wc, ok := store.(state.WriteCounter)
	if !ok {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pave_state_writes_total", Help: "Writes carried by the state store's committed transactions (group commit).",
		}, func() float64 { return float64(wc.WriteStats().Writes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pave_state_commits_total", Help: "Transactions the state store committed.",
		}, func() float64 { return float64(wc.WriteStats().Commits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pave_state_writes_per_commit", Help: "Writes per commit since start; rate(pave_state_writes_total[5m]) / rate(pave_state_commits_total[5m]) for a recent window.",
		}, func() float64 {
			st := wc.WriteStats()
			if st.Commits == 0 {
				return 0
			}
			return float64(st.Writes) / float64(st.Commits)
		}),
	)
}
