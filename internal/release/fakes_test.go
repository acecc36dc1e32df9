package release

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// The seams below are fakes for unit tests; the store is the real SQLite
// provider. The benchmark (bench/release) drives the same engine through
// a traffic simulator.

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fakeRouter struct {
	mu      sync.Mutex
	w       map[string]traffic.Weights
	failSet int    // refuse this many SetWeights calls
	missing string // a service whose weights are not found until set
	sets    int
}

func newRouter(service string, w traffic.Weights) *fakeRouter {
	return &fakeRouter{w: map[string]traffic.Weights{service: w}}
}

func (r *fakeRouter) SetWeights(_ context.Context, service string, w traffic.Weights) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failSet > 0 {
		r.failSet--
		return errors.New("router unavailable")
	}
	if err := w.Validate(); err != nil {
		return err
	}
	cp := traffic.Weights{}
	for k, v := range w {
		cp[k] = v
	}
	r.w[service] = cp
	r.sets++
	return nil
}

func (r *fakeRouter) Weights(_ context.Context, service string) (traffic.Weights, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.w[service]; !ok && service == r.missing {
		return nil, fmt.Errorf("no weights set: %w", state.ErrNotFound)
	}
	cp := traffic.Weights{}
	for k, v := range r.w[service] {
		cp[k] = v
	}
	return cp, nil
}

func (r *fakeRouter) get(service, version string) int64 {
	w, _ := r.Weights(context.Background(), service)
	return w[version]
}

type fakeTarget struct {
	mu       sync.Mutex
	deployed map[string]bool
	env      map[string]map[string]string
	notReady map[string]bool
	removed  []string
}

func newTarget() *fakeTarget {
	return &fakeTarget{deployed: map[string]bool{}, env: map[string]map[string]string{}, notReady: map[string]bool{}}
}

func (t *fakeTarget) Deploy(_ context.Context, d Deployment) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deployed[d.Service+"@"+d.Version] = true
	t.env[d.Service+"@"+d.Version] = d.Env
	return nil
}

func (t *fakeTarget) Remove(_ context.Context, service, version string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.deployed, service+"@"+version)
	t.removed = append(t.removed, service+"@"+version)
	return nil
}

func (t *fakeTarget) Status(_ context.Context, service, version string) (bool, int, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.deployed[service+"@"+version] || t.notReady[service+"@"+version] {
		return false, 0, 1, nil
	}
	return true, 1, 1, nil
}

// fakeMetrics accumulates cumulative counters the way the gateway does;
// serve sends one second of traffic through the router's weights.
type fakeMetrics struct {
	mu     sync.Mutex
	snap   stats.Snapshot
	rng    *rand.Rand
	errors map[string]float64 // error probability by version
	// extraMs adds latency by version (a slower datacenter: both).
	extraMs map[string]float64
}

func newMetrics() *fakeMetrics {
	return &fakeMetrics{snap: stats.Snapshot{}, rng: rand.New(rand.NewPCG(1, 2)), errors: map[string]float64{}, extraMs: map[string]float64{}}
}

func (m *fakeMetrics) Snapshot(context.Context, string) (stats.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := stats.Snapshot{}
	for v, c := range m.snap {
		c.Total.Latency = append([]uint64(nil), c.Total.Latency...)
		out[v] = c
	}
	return out, nil
}

func (m *fakeMetrics) serve(w traffic.Weights, rps int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for v, ppm := range w {
		n := int(int64(rps) * ppm / traffic.Total)
		c := m.snap[v]
		for range n {
			status := 200
			if m.rng.Float64() < m.errors[v] {
				status = 500
			}
			c.Total.Observe(status, 20+m.extraMs[v]+10*m.rng.Float64())
		}
		m.snap[v] = c
	}
}

// reset empties the counters, as a restarted data plane does.
func (m *fakeMetrics) reset() {
	m.mu.Lock()
	m.snap = stats.Snapshot{}
	m.mu.Unlock()
}

type rig struct {
	t       *testing.T
	path    string
	store   *state.SQLite
	clock   *fakeClock
	router  *fakeRouter
	target  *fakeTarget
	metrics *fakeMetrics
	eng     *Engine
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "state.db"),
		clock:  &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		router: newRouter("shop", traffic.Weights{"v1": traffic.Total}), target: newTarget(), metrics: newMetrics()}
	r.target.deployed["shop@v1"] = true
	r.open()
	t.Cleanup(func() { r.store.Close() })
	return r
}

// open (re)opens the store and builds a fresh engine on it, as a restarted
// `pave up` does.
func (r *rig) open() {
	s, err := state.OpenSQLite(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.store = s
	r.eng = NewEngine(s, r.router, r.target, r.metrics, WithClock(r.clock))
}

// crash drops the engine and the store without any shutdown work.
func (r *rig) crash() {
	r.store.Close()
	r.eng = nil
}

// tick serves one second of traffic and reconciles once.
func (r *rig) tick(rps int) {
	r.t.Helper()
	w, _ := r.router.Weights(context.Background(), "shop")
	r.metrics.serve(w, rps)
	r.clock.Add(time.Second)
	if err := r.eng.Reconcile(context.Background()); err != nil {
		r.t.Fatalf("reconcile: %v", err)
	}
}

func (r *rig) get(name string) Release {
	r.t.Helper()
	rel, err := r.eng.Get(context.Background(), name)
	if err != nil {
		r.t.Fatal(err)
	}
	return rel
}

func testRelease() Release {
	r := New("shop", "v2")
	r.Spec.Binary = "/srv/shop-v2"
	r.Spec.Steps = []Percent{10_000, 100_000, 500_000, 1_000_000}
	r.Spec.StepDuration = Duration(5 * time.Second)
	r.Spec.StepSamples = 20
	r.Spec.ScaleDownDelay = Duration(10 * time.Second)
	return r
}
