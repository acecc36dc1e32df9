package fleet

import (
	"context"
	"fmt"
	"sync"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// Connector builds the release seams of a Kubernetes cluster from its
// record and clients (KubernetesSeams: the Kubernetes runtime target, the
// Istio or Gateway API router and the PromQL metric source; tests replace
// the metric source).
type Connector func(ctx context.Context, c Cluster, clients *kube.Cluster) (release.Cluster, error)

// ReleaseFleet is the release engine's view of the fleet: the embedded
// clusters' seams given at start, and Kubernetes clusters connected on
// first use. A cluster that cannot be connected is still listed, with
// seams that return why, so the engine reports it by name.
type ReleaseFleet struct {
	Registry *Registry
	Local    map[string]release.Cluster
	Connect  Connector

	mu    sync.Mutex
	conns map[string]connection
}

type connection struct {
	rec     Cluster
	cluster release.Cluster
}

// Clusters lists every registered cluster's seams in wave order.
func (f *ReleaseFleet) Clusters(ctx context.Context) ([]release.Cluster, error) {
	recs, err := f.Registry.List(ctx)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		f.conns = map[string]connection{}
	}
	// Production mode: once a Kubernetes cluster is registered, releases
	// go to the Kubernetes clusters; the embedded ones keep serving what
	// they run but take no new release (an image cannot run there anyway).
	production := false
	for _, rec := range recs {
		production = production || rec.Kind == KindKubernetes
	}
	out := make([]release.Cluster, 0, len(recs))
	for _, rec := range recs {
		if rec.Kind == KindLocal && production {
			continue
		}
		if rec.Kind == KindLocal {
			c, ok := f.Local[rec.Name]
			if !ok {
				// Registered by an earlier `pave up --clusters` that
				// named it; this one does not run it.
				c = broken(rec.Name, fmt.Errorf("embedded cluster %s is not running: start pave up with --clusters including it", rec.Name))
			}
			out = append(out, c)
			continue
		}
		if conn, ok := f.conns[rec.Name]; ok && conn.rec.Added.Equal(rec.Added) {
			out = append(out, conn.cluster)
			continue
		}
		if f.Connect == nil {
			out = append(out, broken(rec.Name, fmt.Errorf("cluster %s: Kubernetes clusters are not connected in this mode", rec.Name)))
			continue
		}
		kc, err := f.Registry.Clients(rec)
		if err != nil {
			out = append(out, broken(rec.Name, err))
			continue
		}
		c, err := f.Connect(ctx, rec, kc)
		if err != nil {
			out = append(out, broken(rec.Name, err))
			continue // not cached: the next pass tries again
		}
		c.Name = rec.Name
		f.conns[rec.Name] = connection{rec, c}
		out = append(out, c)
	}
	return out, nil
}

// broken is a cluster whose every seam fails with err.
func broken(name string, err error) release.Cluster {
	b := brokenSeams{err}
	return release.Cluster{Name: name, Router: b, Target: b, Metrics: b}
}

type brokenSeams struct{ err error }

func (b brokenSeams) SetWeights(context.Context, string, traffic.Weights) error { return b.err }
func (b brokenSeams) Weights(context.Context, string) (traffic.Weights, error)  { return nil, b.err }
func (b brokenSeams) Deploy(context.Context, release.Deployment) error          { return b.err }
func (b brokenSeams) Remove(context.Context, string, string) error              { return b.err }
func (b brokenSeams) Status(context.Context, string, string) (bool, int, int, error) {
	return false, 0, 0, b.err
}
func (b brokenSeams) Snapshot(context.Context, string) (stats.Snapshot, error) { return nil, b.err }
