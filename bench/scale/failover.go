package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

// runReplica is one control-plane replica (the -replica mode of this
// program): what `pave up` runs for releases, on the shared PostgreSQL and
// the shared simulated clusters: the leader election, and the release
// engine's loop gated on leadership. It runs until killed or SIGTERM.
func runReplica(storeURL, simURL, id string, lease time.Duration) error {
	ctx, stop := signalContext()
	defer stop()
	st, err := state.OpenPostgres(ctx, storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	el := leader.New(st, leader.Options{Identity: id, Note: id, TTL: lease})
	eng := release.NewFleetEngine(st, remoteCluster{url: simURL, replica: id, hc: &http.Client{Timeout: 5 * time.Second}}.fleet())
	done := make(chan struct{})
	go func() { el.Run(ctx, nil); close(done) }()
	_ = leader.Gate(leader.NewContext(ctx, el), func(ctx context.Context) error { return eng.Run(ctx, time.Second) })
	<-done
	return nil
}

// failoverResult is what repeated kill -9 of the leader measured.
type failoverResult struct {
	Takeovers []time.Duration
	// Repeated counts step decisions recorded twice and router changes
	// that re-applied the weights already set; Lost counts releases whose
	// router does not carry the weights their stored state says.
	Repeated, Lost int
	// OnRolledBack counts router changes that gave weight to a canary
	// after its release had rolled it back.
	OnRolledBack int
	Releases     int
	Problems     []string
}

// failover runs two replicas on storeURL and kills the leader with SIGKILL
// rounds times, each time while releases are in progress at 1% under
// load; a new replica replaces each one killed.
func failover(ctx context.Context, self, storeURL string, rounds int, lease time.Duration, logDir string, progress func(string)) (failoverResult, error) {
	var res failoverResult
	st, err := state.OpenPostgres(ctx, storeURL)
	if err != nil {
		return res, err
	}
	defer st.Close()
	s := newSim(2000, 7)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	hs := &http.Server{Handler: s}
	go hs.Serve(ln)
	defer hs.Close()
	simURL := "http://" + ln.Addr().String()

	procs := map[string]*exec.Cmd{}
	n := 0
	spawn := func() error {
		n++
		id := fmt.Sprintf("replica-%d", n)
		cmd := exec.Command(self, "-replica", "-store", storeURL, "-sim", simURL, "-id", id, "-lease", lease.String())
		logf, err := os.Create(filepath.Join(logDir, id+".log"))
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		procs[id] = cmd
		return nil
	}
	defer func() {
		for _, c := range procs {
			_ = c.Process.Signal(syscall.SIGTERM)
			_ = c.Wait()
		}
	}()
	for range 2 {
		if err := spawn(); err != nil {
			return res, err
		}
	}
	// The API side: any replica may create releases; this engine writes
	// as the API of a replica does (no fence, optimistic concurrency).
	api := release.NewFleetEngine(st, simCluster{s: s, replica: "api"}.fleet())
	step := max(2*time.Second, lease/2)
	created := 0
	create := func(bad bool) error {
		created++
		svc := fmt.Sprintf("svc-%03d", created)
		version := "v2"
		if bad {
			version = "bad2"
		}
		s.seed(svc, "v1")
		_, err := api.Create(ctx, specFor(svc, version, step))
		return err
	}
	leaseNow := func() state.Lease { l, _ := st.GetLease(ctx, leader.LeaseName); return l }
	for round := 1; round <= rounds; round++ {
		// Releases in progress: one healthy, one bad (to be rolled back).
		if err := create(false); err != nil {
			return res, err
		}
		if err := create(true); err != nil {
			return res, err
		}
		var l state.Lease
		if err := waitUntil(ctx, 3*lease+30*time.Second, func() bool {
			l = leaseNow()
			_, ours := procs[l.Holder]
			return ours && l.Live()
		}); err != nil {
			return res, fmt.Errorf("round %d: no leader among the replicas: %w", round, err)
		}
		// Wait for the new releases to be at their first step (1%).
		if err := waitUntil(ctx, 3*lease+30*time.Second, func() bool {
			rs, _ := api.List(ctx)
			for _, r := range rs {
				if r.Status.Step >= 0 && !r.Status.Phase.Terminal() {
					return true
				}
			}
			return false
		}); err != nil {
			return res, fmt.Errorf("round %d: no release in progress: %w", round, err)
		}
		victim := procs[l.Holder]
		killed := time.Now()
		_ = victim.Process.Kill()
		_ = victim.Wait()
		delete(procs, l.Holder)
		if err := waitUntil(ctx, 3*lease+30*time.Second, func() bool {
			nl := leaseNow()
			return nl.Holder != l.Holder && nl.Live()
		}); err != nil {
			return res, fmt.Errorf("round %d: no takeover after killing %s: %w", round, l.Holder, err)
		}
		took := time.Since(killed)
		res.Takeovers = append(res.Takeovers, took)
		if progress != nil {
			progress(fmt.Sprintf("failover %d/%d: killed %s (token %d), %s took over in %s", round, rounds, l.Holder, l.Token, leaseNow().Holder, took.Round(time.Millisecond)))
		}
		if err := spawn(); err != nil {
			return res, err
		}
	}
	// Let every release finish, then check the record.
	if err := waitUntil(ctx, 12*step+3*lease+60*time.Second, func() bool {
		rs, _ := api.List(ctx)
		for _, r := range rs {
			if !r.Settled() {
				return false
			}
		}
		return true
	}); err != nil {
		res.Problems = append(res.Problems, "not every release ended: "+err.Error())
	}
	check(ctx, st, s, &res)
	return res, nil
}

// check reads the stored timelines and the router's record for decisions
// lost or repeated and traffic on rolled-back versions.
func check(ctx context.Context, st state.Store, s *sim, res *failoverResult) {
	api := release.NewFleetEngine(st, simCluster{s: s}.fleet())
	rs, err := api.List(ctx)
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
		return
	}
	res.Releases = len(rs)
	byService := map[string][]change{}
	for _, c := range s.changes() {
		byService[c.Service] = append(byService[c.Service], c)
	}
	for _, r := range rs {
		evs, err := st.Events(ctx, release.StateKind, r.Metadata.Name, 0, 0)
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			continue
		}
		next := 0
		for _, e := range evs {
			if e.Type != "step" {
				continue
			}
			var d struct{ Step int }
			_ = json.Unmarshal(e.Data, &d)
			switch {
			case d.Step < next:
				res.Repeated++
				res.Problems = append(res.Problems, fmt.Sprintf("%s: step %d recorded again after step %d", r.Metadata.Name, d.Step, next-1))
			case d.Step > next:
				res.Lost++
				res.Problems = append(res.Problems, fmt.Sprintf("%s: step %d recorded without step %d", r.Metadata.Name, d.Step, next))
			}
			next = d.Step + 1
		}
		// What the router carries is what the state says was applied.
		if w := s.getWeights(r.Spec.Service); r.Status.WeightsApplied && len(r.Status.Weights) > 0 && !same(w, r.Status.Weights) {
			res.Lost++
			res.Problems = append(res.Problems, fmt.Sprintf("%s: router has %s, state says %s", r.Metadata.Name, w, r.Status.Weights))
		}
		var prev traffic.Weights
		rolledBack := false
		for _, c := range byService[r.Spec.Service] {
			if prev != nil && same(prev, c.Weights) {
				res.Repeated++
				res.Problems = append(res.Problems, fmt.Sprintf("%s: weights %s applied twice in a row (by %s)", r.Spec.Service, c.Weights, c.Replica))
			}
			if rolledBack && c.Weights[r.Spec.Version] > 0 {
				res.OnRolledBack++
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %s got weight after its rollback (by %s)", r.Spec.Service, r.Spec.Version, c.Replica))
			}
			if prev != nil && prev[r.Spec.Version] > 0 && c.Weights[r.Spec.Version] == 0 {
				rolledBack = true
			}
			prev = c.Weights
		}
	}
}

func same(a, b traffic.Weights) bool {
	for _, k := range append(a.Versions(), b.Versions()...) {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func waitUntil(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("not within %s", d)
}

func joinProblems(p []string) string {
	if len(p) > 10 {
		p = append(p[:10:10], fmt.Sprintf("… and %d more", len(p)-10))
	}
	return strings.Join(p, "\n  ")
}
