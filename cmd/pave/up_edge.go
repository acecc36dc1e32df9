package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/release"
)

// startEdge serves the edge gateway on ln in front of the embedded
// clusters' gateways and runs the fleet controller that sets its shares.
func startEdge(ctx context.Context, g *errgroup.Group, cfg config.Config, ln net.Listener, clusters clusterSet,
	registry *fleet.Registry, probe fleet.Prober, log *slog.Logger) *gateway.Gateway {
	// The clusters' gateways log each request with its cluster; the edge
	// adds no second record of the same request.
	edge := gateway.New(gateway.Options{Log: log.With("component", "edge"), Cluster: "edge", Datacenter: "edge",
		StickyHeader: cfg.GatewayStickyHeader, StickyCookie: cfg.GatewayStickyCookie, NoEventLoop: cfg.GatewayNoEventLoop})
	services := clusters.services
	ctrl := fleet.NewController(fleet.ControllerOptions{
		Registry: registry,
		Edge: fleet.GatewayEdge{Gateway: edge, Endpoints: func(name string) []string {
			if c := clusters.byName(name); c != nil {
				return []string{c.ln.Addr().String()}
			}
			return nil
		}},
		Services: services,
		Prober:   probe,
		Counts: func(cluster string) (requests, errors uint64) {
			names, _ := services(ctx)
			for _, s := range names {
				c := edge.Snapshot(s)["cluster:"+cluster].Total
				requests += c.Requests
				errors += c.Errors
			}
			return requests, errors
		},
		Log: log.With("component", "fleet"),
	})
	// The first pass sets every service's shares before the edge serves.
	if err := ctrl.Tick(ctx); err != nil {
		log.Warn("fleet: first pass", "err", err)
	}
	g.Go(func() error { return edge.Serve(ctx, ln) })
	g.Go(func() error { return leader.Gate(ctx, ctrl.Run) }) // on the leader only (issue 21)
	return edge
}

// clusterProber checks that a cluster answers: an embedded cluster's
// gateway accepts connections; a Kubernetes API server answers /readyz.
type clusterProber struct {
	clusters clusterSet
	registry *fleet.Registry
}

func (p clusterProber) Probe(ctx context.Context, c fleet.Cluster) error {
	if c.Kind == fleet.KindLocal {
		lc := p.clusters.byName(c.Name)
		if lc == nil {
			return fmt.Errorf("embedded cluster %s is not running in this pave up", c.Name)
		}
		// No shortcut for a cluster lost on purpose (pave cluster lose):
		// its loss is found over the network, as a real one would be
		// and as haproxy's health checks find it.
		d := net.Dialer{Timeout: 500 * time.Millisecond}
		conn, err := d.DialContext(ctx, "tcp", lc.ln.Addr().String())
		if err != nil {
			return fmt.Errorf("cluster %s: gateway: %w", c.Name, err)
		}
		return conn.Close()
	}
	return probeKubernetes(ctx, p.registry, c)
}

// startProductionEdge runs the fleet controller over the registered
// Kubernetes clusters with the edge the `edge` setting names: Istio
// locality load balancing in one cluster's mesh configuration, or a
// webhook. The services it splits are those Pave has released.
func startProductionEdge(ctx context.Context, g *errgroup.Group, cfg config.Config, registry *fleet.Registry, probe fleet.Prober,
	eng *release.Engine, log *slog.Logger) {
	kind, arg, _ := strings.Cut(cfg.Edge, ":")
	var edge fleet.Edge
	switch kind {
	case "webhook":
		edge = fleet.WebhookEdge{URL: arg}
	case "istio":
		edge = meshEdge{registry: registry, cluster: arg}
	default:
		return
	}
	ctrl := fleet.NewController(fleet.ControllerOptions{
		Registry: registry, Edge: edge, Prober: probe, Log: log.With("component", "fleet"),
		// Probing an API server costs more than a gateway: every 2 s, and
		// a cluster fails after three misses.
		Interval: 2 * time.Second,
		Services: func(ctx context.Context) ([]string, error) {
			rels, err := eng.List(ctx)
			if err != nil {
				return nil, err
			}
			seen := map[string]bool{}
			var out []string
			for _, r := range rels {
				if !seen[r.Spec.Service] {
					seen[r.Spec.Service] = true
					out = append(out, r.Spec.Service)
				}
			}
			return out, nil
		},
	})
	g.Go(func() error { return leader.Gate(ctx, ctrl.Run) }) // on the leader only (issue 21)
}

// meshEdge is the Istio edge in the registered cluster holding the mesh's
// configuration, looked up on each use so a cluster registered after
// start-up works.
type meshEdge struct {
	registry *fleet.Registry
	cluster  string
}

func (m meshEdge) Apply(ctx context.Context, service string, shares []fleet.Share) error {
	rec, err := m.registry.Get(ctx, m.cluster)
	if err != nil {
		return fmt.Errorf("setting edge istio:%s: %w", m.cluster, err)
	}
	kc, err := m.registry.Clients(rec)
	if err != nil {
		return err
	}
	return fleet.IstioEdge{Cluster: kc, Namespace: rec.Namespace}.Apply(ctx, service, shares)
}
