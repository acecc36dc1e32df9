package release

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/traffic"
)

// mirrorRouter is a fakeRouter that can mirror (as the embedded gateway
// and Istio can).
type mirrorRouter struct {
	*fakeRouter
	mu sync.Mutex
	m  *traffic.Mirror
}

func (r *mirrorRouter) SetMirror(_ context.Context, _ string, m *traffic.Mirror) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m = m
	return nil
}

func (r *mirrorRouter) mirror() *traffic.Mirror {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m
}

// TestLowTrafficReleaseAddsItsOwnShadowStep: a release with a time
// budget whose traffic is too low to decide on the canary's share alone
// begins with a shadow step of its own, says so in its forecast, and
// mirrors; it does not when spec.autoShadow is false, without a time
// budget, when a router cannot mirror, when nothing is mirrorable, or
// when the traffic suffices.
func TestLowTrafficReleaseAddsItsOwnShadowStep(t *testing.T) {
	r := newRig(t)
	mr := &mirrorRouter{fakeRouter: r.router}
	type load struct {
		rate float64
		get  float64 // share of GET requests
	}
	now := load{2, 0.8}
	source := WithTraffic(TrafficFunc(func(_ context.Context, service string) (Traffic, error) {
		return Traffic{Rate: now.rate, Errors: now.rate * 0.005, Source: "test",
			Routes: map[string]float64{"GET /v1/items": now.rate * now.get, "POST /v1/orders": now.rate * (1 - now.get)}}, nil
	}))
	useRouter := func(rt traffic.Router) {
		r.eng = NewEngine(r.store, rt, r.target, r.metrics, WithClock(r.clock), source)
	}
	useRouter(mr)
	n := 1
	create := func(l load, edit func(*Release)) Release {
		t.Helper()
		now = l
		return createWithForecast(t, r.eng, &n, func(rel *Release) {
			rel.Spec.MaxDuration = Duration(time.Hour)
			if edit != nil {
				edit(rel)
			}
		})
	}

	got := create(load{2, 0.8}, nil)
	f := got.Status.Forecast
	t.Logf("2 req/s, 1h: %s; expected %s", f.ShadowAdded, f.Expected.D())
	if got.Spec.Shadow == nil || got.Spec.Shadow.Duration.D() != DefaultShadowDuration || int64(got.Spec.Shadow.Percent) != traffic.Total || !got.Spec.Shadow.IgnoreAnswers {
		t.Fatalf("2 req/s with a 1h budget: no shadow step added: %+v", got.Spec.Shadow)
	}
	if f.PauseLikely || f.Steps[0].Step != -1 || f.Mirrored != 1.6 {
		t.Errorf("the forecast is not the one with the shadow step: %+v", f)
	}
	for _, want := range []string{"added a 1m shadow step", "at 2 requests/s", "1.6 of stable's requests/s can be mirrored", "spec.autoShadow: false or --shadow 0 opts out"} {
		if !strings.Contains(f.ShadowAdded, want) {
			t.Errorf("shadowAdded lacks %q: %s", want, f.ShadowAdded)
		}
	}
	// Stored as created: the engine runs it as a shadow step, mirroring.
	stored, err := r.eng.Get(context.Background(), got.Metadata.Name)
	if err != nil || stored.Spec.Shadow == nil || stored.Status.Forecast.ShadowAdded == "" {
		t.Fatalf("stored: %+v, %v", stored.Spec.Shadow, err)
	}
	// The forecast is recomputed from each step's window; the reason the
	// shadow step was added stays (the releases page shows it).
	later := deepCopy(&stored)
	later.Status.StepStarted = time.Now().Add(-time.Minute)
	later.forecastRunning(time.Now(), analysis.Window{})
	if later.Status.Forecast == nil || later.Status.Forecast.ShadowAdded != f.ShadowAdded {
		t.Errorf("a running forecast lost shadowAdded: %+v", later.Status.Forecast)
	}
	if err := r.eng.ReconcileOne(context.Background(), got.Metadata.Name); err != nil {
		t.Fatal(err)
	}
	r.clock.Add(time.Second)
	if err := r.eng.ReconcileOne(context.Background(), got.Metadata.Name); err != nil {
		t.Fatal(err)
	}
	run, _ := r.eng.Get(context.Background(), got.Metadata.Name)
	if run.Status.Shadow == nil || !run.Status.Shadow.Active || run.Status.Step != -1 {
		t.Fatalf("not in its shadow step: %+v", run.Status)
	}
	if m := mr.mirror(); m == nil || m.Canary != got.Spec.Version || m.Stable != "v1" {
		t.Fatalf("the router does not mirror: %+v", m)
	}

	for name, c := range map[string]struct {
		l    load
		edit func(*Release)
	}{
		"autoShadow: false":   {load{2, 0.8}, func(r *Release) { r.Spec.AutoShadow = new(bool) }},
		"no time budget":      {load{2, 0.8}, func(r *Release) { r.Spec.MaxDuration = 0 }},
		"nothing mirrorable":  {load{2, 0}, nil},
		"enough traffic":      {load{500, 0.8}, nil},
		"a shadow step asked": {load{2, 0.8}, func(r *Release) { r.Spec.Shadow = &ShadowSpec{Samples: 500} }},
	} {
		got := create(c.l, c.edit)
		if name == "a shadow step asked" {
			if got.Spec.Shadow.Samples != 500 || got.Spec.Shadow.Duration != 0 || got.Status.Forecast.ShadowAdded != "" {
				t.Errorf("%s: the spec's shadow step was changed: %+v %q", name, got.Spec.Shadow, got.Status.Forecast.ShadowAdded)
			}
			continue
		}
		if got.Spec.Shadow != nil || got.Status.Forecast.ShadowAdded != "" {
			t.Errorf("%s: a shadow step was added: %+v", name, got.Status.Forecast)
		}
		if name != "enough traffic" && !got.Status.Forecast.PauseLikely {
			t.Errorf("%s: no warning: %+v", name, got.Status.Forecast)
		}
	}
	// A router that cannot mirror (a data plane without it): no shadow
	// step, the warning stands.
	useRouter(r.router)
	if got := create(load{2, 0.8}, nil); got.Spec.Shadow != nil || !got.Status.Forecast.PauseLikely {
		t.Errorf("a router that cannot mirror: %+v %+v", got.Spec.Shadow, got.Status.Forecast)
	}
}
