package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/traffic"
)

// localCluster is one embedded cluster: a runtime and a gateway, with its
// own state store when there are several (as each real cluster has its
// own API server) or the control plane's store is shared by replicas, so
// their instance records and weights never mix.
type localCluster struct {
	name, datacenter string
	store            state.Store
	ownStore         bool
	ln               net.Listener
	gw               *gateway.Gateway
	router           *traffic.GatewayRouter
	rt               *runtime.Local
	output           *runtimeOutput
	access           *gatewayAccessLog // the gateway's access records, spooled to disk when telemetry is behind

	mu     sync.Mutex
	cancel context.CancelFunc
	lost   bool
}

// openLocalCluster builds cluster name; in single-cluster mode it uses the
// control plane's store and the gateway listener the user configured.
func openLocalCluster(ctx context.Context, cfg config.Config, name string, multi bool, main state.Store, ln net.Listener,
	tel telemetry.Store, otlpAddr string, log *slog.Logger) (*localCluster, error) {
	c := &localCluster{name: name, datacenter: "local", store: main, ln: ln}
	dataDir := cfg.DataDir
	// On a shared store (PostgreSQL, several replicas) each replica's
	// embedded cluster is its own, as on a laptop: its instance records
	// stay on this machine, never read by a replica that cannot run them.
	shared := cfg.StateStore != "" && cfg.StateStore != "sqlite"
	if multi || shared {
		dataDir = filepath.Join(cfg.DataDir, "clusters", name)
		st, err := state.OpenSQLite(filepath.Join(dataDir, "state.db"))
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", name, err)
		}
		// The control plane's lease lives in the main store: the leader's
		// writes through this cluster's runtime and router carry its
		// fence, which this store, holding no lease, must not refuse.
		c.store, c.ownStore = state.Unfenced(st), true
		if multi {
			c.datacenter = name
		}
	}
	log = log.With("cluster", name)
	var err error
	if c.access, err = newGatewayAccessLog(ctx, tel, filepath.Join(dataDir, "access-spool"), log.With("component", "gateway")); err != nil {
		c.close()
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	pinNets, testerCheck := gatewayPinning(cfg, auth.Tokens{Store: main})
	c.gw = gateway.New(gateway.Options{Log: log.With("component", "gateway"), PinNetworks: pinNets, TesterCheck: testerCheck,
		StickyHeader: cfg.GatewayStickyHeader, StickyCookie: cfg.GatewayStickyCookie, NoEventLoop: cfg.GatewayNoEventLoop,
		Cluster: name, Datacenter: c.datacenter, AccessLog: c.access})
	if c.router, err = traffic.NewGatewayRouter(ctx, c.store, c.gw, log.With("component", "traffic")); err != nil {
		log.Error("some stored routes could not be restored", "err", err)
	}
	c.output = &runtimeOutput{store: tel, cluster: name, datacenter: c.datacenter, log: log.With("component", "runtime")}
	c.rt, err = runtime.NewLocal(runtime.LocalOptions{Store: c.store, DataDir: dataDir, Cluster: name, Datacenter: c.datacenter,
		OTLPEndpoint: "http://" + otlpAddr, Endpoints: c.gw, Routes: c.gw, Output: c.output, Log: log.With("component", "runtime")})
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// start serves the cluster's gateway and supervises its instances in g
// until ctx ends or the cluster is lost.
func (c *localCluster) start(ctx context.Context, g *errgroup.Group) {
	cctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	g.Go(func() error { return c.gw.Serve(cctx, c.ln) })
	g.Go(func() error { return c.rt.Run(cctx) })
	g.Go(func() error { return c.output.Run(cctx) })
}

// lose simulates the loss of the whole cluster for failover drills: its
// instances are killed with SIGKILL, its gateway stops answering and its
// runtime stops restarting them, until `pave up` starts again.
func (c *localCluster) lose(ctx context.Context) (killed int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return 0, fmt.Errorf("cluster %s is lost already; restart pave up to bring it back", c.name)
	}
	sts, err := c.rt.List(ctx)
	if err != nil {
		return 0, err
	}
	c.lost = true
	c.cancel() // no restarts from here on, and the gateway closes
	for _, st := range sts {
		for _, in := range st.Instances {
			if in.PID > 0 && syscall.Kill(in.PID, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	return killed, nil
}

func (c *localCluster) isLost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

func (c *localCluster) close() {
	if c.access != nil {
		c.access.Close()
	}
	if c.ownStore {
		c.store.Close()
	}
}

// seams are the cluster's release seams.
func (c *localCluster) seams() release.Cluster {
	return release.Cluster{Name: c.name, Router: c.router, Target: fleet.ReleaseTarget(c.rt),
		Metrics: release.MetricsFunc(func(_ context.Context, service string) (stats.Snapshot, error) {
			if c.isLost() {
				return nil, fmt.Errorf("cluster %s is lost", c.name)
			}
			return c.gw.Snapshot(service), nil
		}),
		Pairs: release.PairsFunc(func(_ context.Context, service string) (shadow.Snapshot, error) {
			s, _ := c.gw.ShadowSnapshot(service)
			return s, nil
		})}
}

// clusterSet is every embedded cluster behind the control plane's APIs:
// a change of weights or a deployment goes to all of them, and reads add
// them up, so `pave traffic` and `pave run` work unchanged with several.
type clusterSet []*localCluster

var (
	_ traffic.Router = clusterSet{}
	_ runtime.Target = clusterSet{}
)

// SetWeights applies w in every cluster; when one refuses, the clusters
// changed already get their previous weights back, so no partial change
// is left behind.
func (cs clusterSet) SetWeights(ctx context.Context, service string, w traffic.Weights) error {
	var done []*localCluster
	prev := map[string]traffic.Weights{}
	for _, c := range cs {
		old, err := c.router.Weights(ctx, service)
		if err == nil {
			prev[c.name] = old
		}
		if err := c.router.SetWeights(ctx, service, w); err != nil {
			for _, d := range done {
				if p, ok := prev[d.name]; ok {
					_ = d.router.SetWeights(ctx, service, p)
				}
			}
			return fmt.Errorf("cluster %s: %w", c.name, err)
		}
		done = append(done, c)
	}
	return nil
}

// Weights are the first cluster's; the clusters agree unless a release is
// between waves (pave release get shows each cluster's).
func (cs clusterSet) Weights(ctx context.Context, service string) (traffic.Weights, error) {
	return cs[0].router.Weights(ctx, service)
}

// SetRoutes and Routes keep the gateways' explicit routes alike.
func (cs clusterSet) SetRoutes(ctx context.Context, routes []gateway.Route) error {
	for _, c := range cs {
		if err := c.router.SetRoutes(ctx, routes); err != nil {
			return fmt.Errorf("cluster %s: %w", c.name, err)
		}
	}
	return nil
}

// Routes are the first cluster's.
func (cs clusterSet) Routes(ctx context.Context) ([]gateway.Route, error) {
	return cs[0].router.Routes(ctx)
}

// Endpoints lists each version's ready endpoints in every cluster.
func (cs clusterSet) Endpoints(service string) map[string][]string {
	out := map[string][]string{}
	for _, c := range cs {
		for v, eps := range c.gw.Endpoints(service) {
			out[v] = append(out[v], eps...)
		}
	}
	return out
}

// Snapshot adds up the clusters' statistics per version.
func (cs clusterSet) Snapshot(service string) stats.Snapshot {
	out := stats.Snapshot{}
	for _, c := range cs {
		for v, s := range c.gw.Snapshot(service) {
			out[v] = out[v].Add(s)
		}
	}
	return out
}

// Watch sends the summed snapshot every interval.
func (cs clusterSet) Watch(ctx context.Context, service string, every time.Duration) <-chan stats.Snapshot {
	return stats.Watch(ctx, every, func() stats.Snapshot { return cs.Snapshot(service) })
}

// Deploy runs d in every cluster.
func (cs clusterSet) Deploy(ctx context.Context, d runtime.Deployment) error {
	for _, c := range cs {
		if err := c.rt.Deploy(ctx, d); err != nil {
			return fmt.Errorf("cluster %s: %w", c.name, err)
		}
	}
	return nil
}

// Remove stops a version in every cluster; it is not found only when no
// cluster had it.
func (cs clusterSet) Remove(ctx context.Context, service, version string) error {
	found := false
	for _, c := range cs {
		err := c.rt.Remove(ctx, service, version)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, runtime.ErrNotFound):
			return fmt.Errorf("cluster %s: %w", c.name, err)
		}
	}
	if !found {
		return fmt.Errorf("%s@%s: %w", service, version, runtime.ErrNotFound)
	}
	return nil
}

// Status adds up a version's replicas over the clusters that run it.
func (cs clusterSet) Status(ctx context.Context, service, version string) (runtime.Status, error) {
	var out runtime.Status
	found := false
	for _, c := range cs {
		st, err := c.rt.Status(ctx, service, version)
		if errors.Is(err, runtime.ErrNotFound) {
			continue
		}
		if err != nil {
			return runtime.Status{}, fmt.Errorf("cluster %s: %w", c.name, err)
		}
		if !found {
			out = st
			out.Replicas, out.Ready, out.Instances, out.Endpoints = 0, 0, nil, nil
			found = true
		}
		out.Replicas += st.Replicas
		out.Ready += st.Ready
		out.Instances = append(out.Instances, st.Instances...)
		out.Endpoints = append(out.Endpoints, st.Endpoints...)
	}
	if !found {
		return runtime.Status{}, fmt.Errorf("%s@%s: %w", service, version, runtime.ErrNotFound)
	}
	return out, nil
}

// List lists every cluster's versions, each with its cluster.
func (cs clusterSet) List(ctx context.Context) ([]runtime.Status, error) {
	var out []runtime.Status
	for _, c := range cs {
		sts, err := c.rt.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.name, err)
		}
		for _, st := range sts {
			st.Cluster = c.name
			out = append(out, st)
		}
	}
	runtime.SortStatuses(out)
	return out, nil
}

// services lists the services any cluster runs, for the edge.
func (cs clusterSet) services(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, c := range cs {
		if c.isLost() {
			continue
		}
		sts, err := c.rt.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, st := range sts {
			if !seen[st.Service] {
				seen[st.Service] = true
				out = append(out, st.Service)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

func (cs clusterSet) byName(name string) *localCluster {
	for _, c := range cs {
		if c.name == name {
			return c
		}
	}
	return nil
}
