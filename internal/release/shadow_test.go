package release

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// gwRouter is the embedded gateway as the release's router (what
// traffic.GatewayRouter does in pave up, without its store).
type gwRouter struct{ g *gateway.Gateway }

func (r gwRouter) SetWeights(_ context.Context, s string, w traffic.Weights) error {
	return r.g.SetWeights(s, w)
}
func (r gwRouter) Weights(_ context.Context, s string) (traffic.Weights, error) {
	return traffic.Weights(r.g.Weights(s)), nil
}
func (r gwRouter) SetMirror(_ context.Context, s string, m *traffic.Mirror) error {
	if m == nil {
		return r.g.SetMirror(s, nil)
	}
	return r.g.SetMirror(s, &gateway.Mirror{Stable: m.Stable, Canary: m.Canary, Share: m.Share, Settings: m.Settings})
}

// payInstance serves a payments API; wrongEvery > 0 answers a changed
// amount on every wrongEvery-th /v1/pay; dieAfter > 0 makes the instance
// close its listener and every connection after that many requests (a
// crash).
func payInstance(t *testing.T, wrongEvery, dieAfter int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var srv *http.Server
	srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		if dieAfter > 0 && k > dieAfter {
			go srv.Close()
			hj, _ := w.(http.Hijacker)
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
			return
		}
		amount := "10.00"
		if wrongEvery > 0 && k%wrongEvery == 0 && r.URL.Path == "/v1/pay" {
			amount = "10.50"
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"at":%d,"id":"%x","amount":"%s"}`, time.Now().UnixNano(), rand.Uint64(), amount)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type shadowRig struct {
	ignoreAnswers bool // spec.shadow.ignoreAnswers
	t             *testing.T
	g             *gateway.Gateway
	eng           *Engine
	addr          string
	failures      atomic.Int64 // user-facing failures
	wrong         atomic.Int64 // user answers with a changed amount
	served        atomic.Int64
}

func newShadowRig(t *testing.T, canary string) *shadowRig {
	g := gateway.New(gateway.Options{})
	g.SetEndpoints("pay", "v1", []string{payInstance(t, 0, 0), payInstance(t, 0, 0)})
	g.SetEndpoints("pay", "v2", []string{canary})
	if err := g.SetWeights("pay", map[string]int64{"v1": traffic.Total}); err != nil {
		t.Fatal(err)
	}
	if err := g.SetServiceRoutes("pay", []string{"GET /v1/pay", "GET /v1/orders"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = g.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	store, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	target := newTarget()
	target.deployed["pay@v1"] = true
	eng := NewFleetEngine(store, Clusters{{Name: DefaultCluster, Router: gwRouter{g}, Target: target,
		Metrics: MetricsFunc(func(_ context.Context, s string) (stats.Snapshot, error) { return g.Snapshot(s), nil }),
		Pairs: PairsFunc(func(_ context.Context, s string) (shadow.Snapshot, error) {
			snap, _ := g.ShadowSnapshot(s)
			return snap, nil
		})}})
	return &shadowRig{t: t, g: g, eng: eng, addr: ln.Addr().String()}
}

// users send requests until stop, counting what users see.
func (r *shadowRig) users(stop <-chan struct{}, wg *sync.WaitGroup) {
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				path := "/v1/pay"
				if (k+i)%2 == 1 {
					path = "/v1/orders"
				}
				req, _ := http.NewRequest("GET", "http://"+r.addr+path, nil)
				req.Host = "pay.localhost"
				resp, err := c.Do(req)
				if err != nil {
					r.failures.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r.served.Add(1)
				if resp.StatusCode != 200 {
					r.failures.Add(1)
				}
				if strings.Contains(string(b), "10.50") {
					r.wrong.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
}

// run creates the release and reconciles until it ends or leaves the
// shadow step.
func (r *shadowRig) run(until func(Release) bool) Release {
	rel := New("pay", "v2")
	rel.Spec.Binary = "/srv/pay-v2"
	rel.Spec.Steps = []Percent{10_000, 1_000_000}
	rel.Spec.Shadow = &ShadowSpec{Duration: Duration(3 * time.Second), Samples: 100, IgnoreAnswers: r.ignoreAnswers}
	rel.Spec.MaxHold = Duration(time.Minute)
	ctx := context.Background()
	created, err := r.eng.Create(ctx, rel)
	if err != nil {
		r.t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	r.users(stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := r.eng.Reconcile(ctx); err != nil {
			r.t.Logf("reconcile: %v", err)
		}
		got, err := r.eng.Get(ctx, created.Metadata.Name)
		if err != nil {
			r.t.Fatal(err)
		}
		if until(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestShadowStepCatchesAWrongAnswerBeforeAnyUser: the canary answers 200
// with a changed amount on some of its /v1/pay answers; the noise fields
// (a timestamp, a random id) differ on every answer. The shadow step
// fails naming the route, the field, a trace and both values; no user
// was served by the canary nor got a wrong amount.
func TestShadowStepCatchesAWrongAnswerBeforeAnyUser(t *testing.T) {
	r := newShadowRig(t, payInstance(t, 5, 0))
	got := r.run(func(x Release) bool { return x.Status.Phase.Terminal() })
	if got.Status.Phase != RolledBack || !strings.Contains(got.Status.Message, "shadow step failed") {
		t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
	}
	for _, want := range []string{"route GET /v1/pay field $.amount", "/request.html?trace=", `stable "10.00", canary "10.50"`} {
		if !strings.Contains(got.Status.Message, want) {
			t.Errorf("the verdict does not say %q: %s", want, got.Status.Message)
		}
	}
	if strings.Contains(got.Status.Message, "$.at") || strings.Contains(got.Status.Message, "$.id") {
		t.Errorf("a noise field is blamed: %s", got.Status.Message)
	}
	if n := r.failures.Load(); n != 0 {
		t.Errorf("%d user-facing failures", n)
	}
	if n := r.wrong.Load(); n != 0 {
		t.Errorf("%d users got the wrong amount", n)
	}
	if live := r.g.Snapshot("pay")["v2"]; live.Total.Requests != 0 {
		t.Errorf("the canary served %d users", live.Total.Requests)
	}
	// The ended release turns the mirror off.
	for i := 0; i < 20 && r.g.MirrorOf("pay") != nil; i++ {
		_ = r.eng.Reconcile(context.Background())
		time.Sleep(50 * time.Millisecond)
	}
	if r.g.MirrorOf("pay") != nil {
		t.Error("the mirror is still on after the release ended")
	}
}

// TestShadowStepIgnoringAnswersJudgesErrorsOnly: with ignoreAnswers (as
// a shadow step the release added of its own has) the same changed
// amount is not judged, and the canary, failing nothing, gets 1%.
func TestShadowStepIgnoringAnswersJudgesErrorsOnly(t *testing.T) {
	r := newShadowRig(t, payInstance(t, 5, 0))
	r.ignoreAnswers = true
	got := r.run(func(x Release) bool { return x.Status.Phase.Terminal() || x.Status.Step >= 0 })
	if got.Status.Phase != Progressing || got.Status.Step != 0 || got.Status.Shadow == nil || !got.Status.Shadow.Passed {
		t.Fatalf("phase %s step %d shadow %+v: %s", got.Status.Phase, got.Status.Step, got.Status.Shadow, got.Status.Message)
	}
}

// TestShadowStepFailsACanaryThatCrashesUnderMirroredLoad: the canary dies
// after 30 mirrored requests; the shadow step fails, users see nothing.
func TestShadowStepFailsACanaryThatCrashesUnderMirroredLoad(t *testing.T) {
	r := newShadowRig(t, payInstance(t, 0, 30))
	got := r.run(func(x Release) bool { return x.Status.Phase.Terminal() })
	if got.Status.Phase != RolledBack || !strings.Contains(got.Status.Message, "shadow step failed") {
		t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
	}
	if n := r.failures.Load(); n != 0 {
		t.Errorf("%d user-facing failures", n)
	}
	if r.served.Load() == 0 {
		t.Error("no user request was served")
	}
}

// TestHealthyShadowStepPassesToTheFirstStep: a canary that answers as
// stable does (noise aside) passes the shadow step and gets 1%.
func TestHealthyShadowStepPassesToTheFirstStep(t *testing.T) {
	r := newShadowRig(t, payInstance(t, 0, 0))
	got := r.run(func(x Release) bool { return x.Status.Phase.Terminal() || x.Status.Step >= 0 })
	if got.Status.Phase != Progressing || got.Status.Step != 0 || got.Status.Shadow == nil || !got.Status.Shadow.Passed {
		t.Fatalf("phase %s step %d shadow %+v: %s", got.Status.Phase, got.Status.Step, got.Status.Shadow, got.Status.Message)
	}
	if w := r.g.Weights("pay"); w["v2"] != 10_000 {
		t.Errorf("weights after the shadow step: %v", w)
	}
	if got.Status.Evidence.Fields != DefaultFieldsForTest() {
		t.Errorf("the evidence budgets %d fields", got.Status.Evidence.Fields)
	}
}

func DefaultFieldsForTest() int { return New("a", "b").Spec.Analysis.MaxFields }

func TestShadowSpecIsParsedStrictly(t *testing.T) {
	r, err := Parse([]byte("apiVersion: pave.dev/v1alpha1\nkind: Release\nspec:\n  service: pay\n  version: v2\n  binary: /x\n  shadow:\n    duration: 2m\n    expectedChanges: [{route: /v1/pay, path: $.fee}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.Shadow.Duration.D() != 2*time.Minute || int64(r.Spec.Shadow.Percent) != traffic.Total {
		t.Fatalf("shadow %+v", r.Spec.Shadow)
	}
	for doc, field := range map[string]string{
		"  shadow:\n    durration: 2m\n":                  "spec.shadow.durration",
		"  shadow:\n    expectedChanges: [{path: fee}]\n": "spec.shadow.expectedChanges[0].path",
		"  shadow:\n    safeRoutes: [\"post /x\"]\n":      "spec.shadow.safeRoutes[0]",
		"  shadow:\n    percent: 120\n":                   "spec.shadow.percent",
	} {
		_, err := Parse([]byte("apiVersion: pave.dev/v1alpha1\nkind: Release\nspec:\n  service: pay\n  version: v2\n  binary: /x\n" + doc))
		if err == nil || !strings.HasPrefix(err.Error(), field) {
			t.Errorf("%q: %v, want an error naming %s", doc, err, field)
		}
	}
}

func TestShadowRulesComeFromThePaveYAML(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".pave.yaml"), []byte("template: service\nshadow:\n  safeRoutes: [\"POST /v1/quote\"]\n  expectedChanges: [{route: /v1/pay, path: $.fee}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Spec{Binary: filepath.Join(dir, "pay"), Shadow: &ShadowSpec{IgnoreHeaders: []string{"X-Request-Id"}}}
	if err := withServiceShadowRules(&s); err != nil {
		t.Fatal(err)
	}
	if len(s.Shadow.SafeRoutes) != 1 || len(s.Shadow.ExpectedChanges) != 1 || s.Shadow.ExpectedChanges[0].Path != "$.fee" || len(s.Shadow.IgnoreHeaders) != 1 {
		t.Fatalf("merged rules: %+v", s.Shadow)
	}
	if err := os.WriteFile(filepath.Join(dir, ".pave.yaml"), []byte("shadow:\n  expectedChanges: [{path: fee}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = Spec{Binary: filepath.Join(dir, "pay"), Shadow: &ShadowSpec{}}
	if err := withServiceShadowRules(&s); err == nil || !strings.Contains(err.Error(), "expectedChanges[0].path") {
		t.Fatalf("a bad rule in .pave.yaml: %v", err)
	}
}
