package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

// StateKind is the state-store kind of cluster records; their events
// (drains, failovers) are the event log of the same kind.
const StateKind = "fleet.cluster"

// Registry keeps the clusters in the state store; Kubernetes clusters'
// kubeconfigs are copied under DataDir/clusters/NAME/kubeconfig.
type Registry struct {
	Store   state.Store
	DataDir string

	mu      sync.Mutex
	clients map[string]connected // Kubernetes clients by cluster name
}

type connected struct {
	added   time.Time // the registration they were built for
	clients *kube.Cluster
}

// Clients returns the clients of a registered Kubernetes cluster, built
// from its kubeconfig once per registration and shared by the release
// engine, the health probes and the Istio edge.
func (r *Registry) Clients(c Cluster) (*kube.Cluster, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cc, ok := r.clients[c.Name]; ok && cc.added.Equal(c.Added) {
		return cc.clients, nil
	}
	path := r.KubeconfigPath(c.Name)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w: %w", c.Name, kube.ErrKubeconfig, err)
	}
	// Before client-go sees it: a refused kubeconfig's exec plugin must
	// never run, not even once.
	if err := checkStored(c, path, data); err != nil {
		return nil, err
	}
	cfg, err := kube.Parse(data, path, c.Context)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	kc, err := kube.New(c.Name, cfg)
	if err != nil {
		return nil, err
	}
	if r.clients == nil {
		r.clients = map[string]connected{}
	}
	r.clients[c.Name] = connected{c.Added, kc}
	return kc, nil
}

// List returns every cluster in wave order.
func (r *Registry) List(ctx context.Context) ([]Cluster, error) {
	all, err := state.ListJSON[Cluster](ctx, r.Store, StateKind)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Order != all[j].Order {
			return all[i].Order < all[j].Order
		}
		return all[i].Name < all[j].Name
	})
	return all, nil
}

// Get returns one cluster.
func (r *Registry) Get(ctx context.Context, name string) (Cluster, error) {
	var c Cluster
	if _, err := state.GetJSON(ctx, r.Store, StateKind, name, &c); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return Cluster{}, fmt.Errorf("%w: %s (see pave cluster list)", ErrNotFound, name)
		}
		return Cluster{}, err
	}
	return c, nil
}

// EnsureLocal records an embedded cluster if it is not known yet; a known
// one keeps its drain and health.
func (r *Registry) EnsureLocal(ctx context.Context, name, datacenter string, order int) error {
	c := Cluster{Name: name, Kind: KindLocal, Datacenter: datacenter, Weight: 1, Order: order, Health: Health{State: Healthy}, Added: nowUTC()}
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := state.PutJSON(ctx, r.Store, StateKind, name, c, 0)
	if errors.Is(err, state.ErrConflict) {
		return nil
	}
	return err
}

// KubeconfigPath is where the registry keeps a cluster's kubeconfig.
func (r *Registry) KubeconfigPath(name string) string {
	return filepath.Join(r.DataDir, "clusters", name, "kubeconfig")
}

// AddKubernetes registers a Kubernetes cluster. The kubeconfig must parse
// and hold the context; it is written beside its final name and renamed,
// so a failed add leaves nothing behind.
func (r *Registry) AddKubernetes(ctx context.Context, c Cluster, kubeconfig []byte, opts ...AddOption) (Cluster, error) {
	var o addOptions
	for _, f := range opts {
		f(&o)
	}
	// The allowance is the registry's to record, never the caller's.
	c.LocalReferencesAllowed = ""
	if err := CheckKubeconfig(kubeconfig); err != nil {
		if !o.allowLocal {
			return Cluster{}, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		// Only this exact file keeps its local references when loaded again.
		c.LocalReferencesAllowed = kubeconfigDigest(kubeconfig)
	}
	c.Kind = KindKubernetes
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Router == "" {
		c.Router = "istio"
	}
	if c.Datacenter == "" {
		c.Datacenter = c.Name
	}
	c.Health = Health{State: Healthy}
	if err := c.Validate(); err != nil {
		return Cluster{}, err
	}
	if _, err := r.Get(ctx, c.Name); err == nil {
		return Cluster{}, fmt.Errorf("%w: a cluster named %s exists already; remove it first (pave cluster remove %s)", ErrInvalid, c.Name, c.Name)
	}
	all, err := r.List(ctx)
	if err != nil {
		return Cluster{}, err
	}
	for _, o := range all {
		c.Order = max(c.Order, o.Order+1)
	}
	if _, err := kube.Parse(kubeconfig, "the kubeconfig", c.Context); err != nil {
		return Cluster{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	final := r.KubeconfigPath(c.Name)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return Cluster{}, err
	}
	tmp := final + ".new"
	if err := os.WriteFile(tmp, kubeconfig, 0o600); err != nil {
		return Cluster{}, err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, final); err != nil {
		return Cluster{}, err
	}
	c.Added = nowUTC()
	if _, err := state.PutJSON(ctx, r.Store, StateKind, c.Name, c, 0); err != nil {
		os.Remove(final)
		return Cluster{}, err
	}
	r.event(ctx, c.Name, "added", map[string]string{"datacenter": c.Datacenter, "router": c.Router})
	return c, nil
}

// Remove forgets a Kubernetes cluster and its kubeconfig; embedded
// clusters are defined by `pave up --clusters` and stay.
func (r *Registry) Remove(ctx context.Context, name string) error {
	c, err := r.Get(ctx, name)
	if err != nil {
		return err
	}
	if c.Kind == KindLocal {
		return fmt.Errorf("%w: cluster %s is an embedded cluster of pave up --clusters; restart pave up without it instead", ErrInvalid, name)
	}
	if err := r.Store.Delete(ctx, StateKind, name, state.Any); err != nil {
		return err
	}
	os.RemoveAll(filepath.Dir(r.KubeconfigPath(name)))
	r.event(ctx, name, "removed", nil)
	return nil
}

// Update applies fn to a cluster with optimistic concurrency, retrying
// when another writer got there first.
func (r *Registry) Update(ctx context.Context, name string, fn func(*Cluster) error) (Cluster, error) {
	for {
		var c Cluster
		ver, err := state.GetJSON(ctx, r.Store, StateKind, name, &c)
		if err != nil {
			if errors.Is(err, state.ErrNotFound) {
				return Cluster{}, fmt.Errorf("%w: %s (see pave cluster list)", ErrNotFound, name)
			}
			return Cluster{}, err
		}
		if err := fn(&c); err != nil {
			return Cluster{}, err
		}
		_, err = state.PutJSON(ctx, r.Store, StateKind, name, c, ver)
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		return c, err
	}
}

func (r *Registry) event(ctx context.Context, name, typ string, data any) {
	_, _ = r.Store.Append(ctx, state.Event{Time: nowUTC(), Kind: StateKind, Key: name, Type: typ, Data: mustJSON(data)})
}

// SetDrain starts draining a cluster (drain true) or bringing it back,
// at pace (a fraction of its weight per second), from wherever its drain
// factor stands now, so reversing a drain half-way is smooth.
func (r *Registry) SetDrain(ctx context.Context, name string, drain bool, pace float64, now time.Time) (Cluster, error) {
	if pace <= 0 {
		return Cluster{}, fmt.Errorf("%w: pace must be above 0", ErrInvalid)
	}
	c, err := r.Update(ctx, name, func(c *Cluster) error {
		c.Drain = Drain{Draining: drain, From: c.Drain.Factor(now), Changed: now.UTC(), Pace: pace}
		return nil
	})
	if err != nil {
		return Cluster{}, err
	}
	typ := "undrain"
	if drain {
		typ = "drain"
	}
	r.event(ctx, name, typ, c.Drain)
	return c, nil
}

// SyncLocal makes the registry's embedded clusters those this `pave up`
// runs: new ones are added, known ones keep their drain and health, and
// embedded clusters it no longer runs are forgotten.
func (r *Registry) SyncLocal(ctx context.Context, names []string, datacenters []string) error {
	keep := map[string]bool{}
	for i, n := range names {
		keep[n] = true
		if err := r.EnsureLocal(ctx, n, datacenters[i], i); err != nil {
			return err
		}
	}
	all, err := r.List(ctx)
	if err != nil {
		return err
	}
	for _, c := range all {
		if c.Kind == KindLocal && !keep[c.Name] {
			if err := r.Store.Delete(ctx, StateKind, c.Name, state.Any); err != nil {
				return err
			}
		}
	}
	return nil
}
