package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

var ctx = context.Background()

func newRegistry(t *testing.T) *Registry {
	t.Helper()
	dir := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Registry{Store: st, DataDir: dir}
}

type recordingEdge struct {
	mu   sync.Mutex
	last map[string][]Share
	fail error
}

func (e *recordingEdge) Apply(_ context.Context, service string, s []Share) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	if e.last == nil {
		e.last = map[string][]Share{}
	}
	e.last[service] = append([]Share(nil), s...)
	return nil
}

func (e *recordingEdge) weights(service string) map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int64{}
	for _, s := range e.last[service] {
		out[s.Cluster] = s.Weight
	}
	return out
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time              { return c.t }
func (c *fakeClock) add(d time.Duration)         { c.t = c.t.Add(d) }
func services(context.Context) ([]string, error) { return []string{"shop"}, nil }

// rig is two embedded clusters under a controller with a simulated clock
// and probes the test turns on and off.
type rig struct {
	reg   *Registry
	edge  *recordingEdge
	clock *fakeClock
	down  map[string]bool
	c     *Controller
}

func newRig(t *testing.T) *rig {
	r := &rig{reg: newRegistry(t), edge: &recordingEdge{}, clock: &fakeClock{time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}, down: map[string]bool{}}
	for i, n := range []string{"seoul", "busan"} {
		if err := r.reg.EnsureLocal(ctx, n, n+"-dc", i); err != nil {
			t.Fatal(err)
		}
	}
	r.c = NewController(ControllerOptions{Registry: r.reg, Edge: r.edge, Services: services, Now: r.clock.now,
		Prober: ProbeFunc(func(_ context.Context, c Cluster) error {
			if r.down[c.Name] {
				return errors.New("connection refused")
			}
			return nil
		}), FailAfter: 3, RecoverAfter: 30 * time.Second})
	return r
}

func (r *rig) tick(t *testing.T, d time.Duration) {
	t.Helper()
	r.clock.add(d)
	if err := r.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEvenSplitThenFailoverAndRecoveryWithoutFlapping(t *testing.T) {
	r := newRig(t)
	r.tick(t, 0)
	if w := r.edge.weights("shop"); w["seoul"] != 500_000 || w["busan"] != 500_000 {
		t.Fatalf("start %v, want 50/50", w)
	}
	r.down["busan"] = true
	r.tick(t, 500*time.Millisecond)
	r.tick(t, 500*time.Millisecond)
	if w := r.edge.weights("shop"); w["busan"] != 500_000 {
		t.Fatalf("busan failed over after 2 bad probes (%v); FailAfter is 3", w)
	}
	r.tick(t, 500*time.Millisecond)
	if w := r.edge.weights("shop"); w["seoul"] != traffic.Total || w["busan"] != 0 {
		t.Fatalf("after 3 bad probes %v, want all on seoul", w)
	}
	c, _ := r.reg.Get(ctx, "busan")
	if c.Health.State != Failed || !strings.Contains(c.Health.Reason, "connection refused") {
		t.Fatalf("stored health %+v", c.Health)
	}
	// busan answers again, but flaps once within the recovery period:
	// it must stay out until it was good for RecoverAfter in one run.
	r.down["busan"] = false
	for range 20 {
		r.tick(t, time.Second)
	}
	r.down["busan"] = true
	r.tick(t, time.Second)
	r.down["busan"] = false
	for range 29 {
		r.tick(t, time.Second)
	}
	if w := r.edge.weights("shop"); w["busan"] != 0 {
		t.Fatalf("busan came back %v after a flap, before 30 s of unbroken health", w)
	}
	r.tick(t, time.Second)
	r.tick(t, time.Second)
	if w := r.edge.weights("shop"); w["busan"] != 500_000 {
		t.Fatalf("after 30 s healthy %v, want 50/50 again", w)
	}
	evs, _ := r.reg.Store.Events(ctx, StateKind, "busan", 0, 100)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "failed,healthy" {
		t.Errorf("busan's events %v, want failed,healthy", types)
	}
}

func TestDrainMovesTrafficGraduallyAndBack(t *testing.T) {
	r := newRig(t)
	r.tick(t, 0)
	pace, err := ParsePace("10%/s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.SetDrain(ctx, "busan", true, pace, r.clock.now()); err != nil {
		t.Fatal(err)
	}
	var seen []int64
	for range 12 {
		r.tick(t, time.Second)
		seen = append(seen, r.edge.weights("shop")["busan"])
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] > seen[i-1] {
			t.Fatalf("busan's share rose while draining: %v", seen)
		}
	}
	if seen[0] == 0 || seen[0] >= 500_000 || seen[len(seen)-1] != 0 {
		t.Fatalf("drain went %v, want a gradual fall to 0", seen)
	}
	// Half a second after an undrain the share is small, and it grows back.
	if _, err := r.reg.SetDrain(ctx, "busan", false, pace, r.clock.now()); err != nil {
		t.Fatal(err)
	}
	r.tick(t, 2*time.Second)
	if w := r.edge.weights("shop")["busan"]; w == 0 || w >= 500_000 {
		t.Fatalf("2 s after undrain busan has %d", w)
	}
	r.tick(t, 20*time.Second)
	if w := r.edge.weights("shop")["busan"]; w != 500_000 {
		t.Fatalf("after undrain busan has %d, want 500000", w)
	}
}

func TestSharesEdgeCases(t *testing.T) {
	now := time.Now()
	cs := []Cluster{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 1}}
	got := Shares(cs, now)
	var sum int64
	for _, s := range got {
		sum += s.Weight
	}
	if sum != traffic.Total {
		t.Fatalf("thirds sum to %d", sum)
	}
	cs[0].Health.State, cs[1].Health.State, cs[2].Health.State = Failed, Failed, Failed
	for _, s := range Shares(cs, now) {
		if s.Weight == 0 {
			t.Fatalf("all failed: %v; every cluster must keep serving rather than none", Shares(cs, now))
		}
	}
	cs = []Cluster{{Name: "a", Weight: 1, Drain: Drain{Draining: true, Changed: now.Add(-time.Hour), Pace: 1}}, {Name: "b", Weight: 1, Health: Health{State: Failed}}}
	if s := Shares(cs, now); s[0].Weight != traffic.Total {
		t.Fatalf("drained a + failed b: %v, want a to serve", s)
	}
}

func TestParsePace(t *testing.T) {
	for in, want := range map[string]float64{"10%/min": 0.1 / 60, "100%/s": 1, "50%/h": 0.5 / 3600} {
		got, err := ParsePace(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"10", "0%/s", "150%/s", "10%/week", "x%/s"} {
		if _, err := ParsePace(bad); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

func TestAddKubernetesRefusesABadKubeconfigAndLeavesNothing(t *testing.T) {
	reg := newRegistry(t)
	_, err := reg.AddKubernetes(ctx, Cluster{Name: "prod-a"}, []byte("apiVersion: v1\nclusters: [not yaml"))
	if err == nil || !strings.Contains(err.Error(), "cluster prod-a") || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("error %v, want one naming the cluster and saying the kubeconfig does not parse", err)
	}
	if _, err := os.Stat(filepath.Dir(reg.KubeconfigPath("prod-a"))); err == nil {
		entries, _ := os.ReadDir(filepath.Dir(reg.KubeconfigPath("prod-a")))
		if len(entries) > 0 {
			t.Fatalf("a refused add left %v", entries)
		}
	}
	if all, _ := reg.List(ctx); len(all) != 0 {
		t.Fatalf("a refused add registered %v", all)
	}
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: secret-token}}]
contexts: [{name: ctx-a, context: {cluster: c, user: u}}]
current-context: ctx-a
`
	if _, err := reg.AddKubernetes(ctx, Cluster{Name: "prod-a", Context: "missing"}, []byte(kc)); err == nil || !strings.Contains(err.Error(), `no context "missing"`) {
		t.Fatalf("missing context: %v", err)
	}
	c, err := reg.AddKubernetes(ctx, Cluster{Name: "prod-a", Context: "ctx-a"}, []byte(kc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Router != "istio" || c.Namespace != "default" || c.Weight != 1 {
		t.Errorf("defaults %+v", c)
	}
	if fi, err := os.Stat(reg.KubeconfigPath("prod-a")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig copy: %v %v", fi, err)
	}
	raw, _ := json.Marshal(c)
	if strings.Contains(string(raw), "secret-token") {
		t.Fatal("the cluster record carries the kubeconfig's token")
	}
}

func TestWebhookEdge(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "zone locked", http.StatusConflict)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
	}))
	defer srv.Close()
	shares := []Share{{Cluster: "seoul", Datacenter: "kr-1", Weight: 750_000}, {Cluster: "busan", Datacenter: "kr-2", Weight: 250_000}}
	if err := (WebhookEdge{URL: srv.URL + "/ok"}).Apply(ctx, "shop", shares); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"percent":"75"`) || got["service"] != "shop" {
		t.Fatalf("webhook got %s", b)
	}
	err := (WebhookEdge{URL: srv.URL + "/fail"}).Apply(ctx, "shop", shares)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "zone locked") {
		t.Fatalf("refusal: %v", err)
	}
}

func TestIstioEdgePercentsSumTo100(t *testing.T) {
	got := percents([]Share{{Cluster: "a", Datacenter: "kr-1", Weight: 333_334}, {Cluster: "b", Datacenter: "kr-2", Weight: 333_333}, {Cluster: "c", Datacenter: "jp-1", Weight: 333_333}, {Cluster: "d", Weight: 0}})
	var sum uint32
	for _, p := range got {
		sum += p
	}
	if sum != 100 || len(got) != 3 || got["kr-1/*"] != 34 {
		t.Fatalf("percents %v", got)
	}
}

func TestReleaseFleetModes(t *testing.T) {
	reg := newRegistry(t)
	if err := reg.EnsureLocal(ctx, "local", "local", 0); err != nil {
		t.Fatal(err)
	}
	f := &ReleaseFleet{Registry: reg, Local: map[string]release.Cluster{}}
	cs, err := f.Clusters(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "local" {
		t.Fatalf("embedded mode: %v %v", cs, err)
	}
	// The embedded cluster is registered but this pave up does not run it:
	// its seams say so instead of vanishing.
	if err := cs[0].Router.SetWeights(ctx, "shop", nil); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("seams of a cluster not running: %v", err)
	}
	kc := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if _, err := reg.AddKubernetes(ctx, Cluster{Name: "prod-a"}, []byte(kc)); err != nil {
		t.Fatal(err)
	}
	f.Connect = func(_ context.Context, c Cluster, kc *kube.Cluster) (release.Cluster, error) {
		if kc == nil || kc.Name != "prod-a" || kc.Kube == nil {
			t.Errorf("connector got clients %+v", kc)
		}
		return release.Cluster{}, errors.New("cannot reach it")
	}
	cs, err = f.Clusters(ctx)
	if err != nil || len(cs) != 1 || cs[0].Name != "prod-a" {
		t.Fatalf("production mode lists %v (%v), want only the Kubernetes cluster", cs, err)
	}
	if _, err := cs[0].Metrics.Snapshot(ctx, "shop"); err == nil || !strings.Contains(err.Error(), "cannot reach it") {
		t.Fatalf("an unconnectable cluster's seams: %v", err)
	}
}
