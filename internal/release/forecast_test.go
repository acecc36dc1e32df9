package release

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestForecastWarnsALowTrafficReleaseUpFront: at 2 requests/s the
// default steps cannot pass within stepDuration + maxHold, so the
// release says at creation that it will likely pause, with remedies; at
// 500 requests/s it does not; with maxDuration the budget is the
// release's.
func TestForecastWarnsALowTrafficReleaseUpFront(t *testing.T) {
	r := newRig(t)
	rates := map[string]float64{}
	r.eng.traffic = TrafficFunc(func(_ context.Context, service string) (Traffic, error) {
		return Traffic{Rate: rates[service], Routes: map[string]float64{"GET /v1/items": rates[service] * 0.8, "POST /v1/orders": rates[service] * 0.2},
			Source: "test"}, nil
	})
	n := 1
	create := func(rate float64, edit func(*Release)) Release {
		t.Helper()
		rates["shop"] = rate
		n++
		rel := New("shop", fmt.Sprintf("v%d", n))
		rel.Spec.Binary = "/srv/shop-v2"
		rel.Spec.Supersede = true
		if edit != nil {
			edit(&rel)
		}
		got, err := r.eng.Create(context.Background(), rel)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Forecast == nil {
			t.Fatal("no forecast")
		}
		return got
	}
	low := create(2, nil).Status.Forecast
	t.Logf("2 req/s: %s", low.Warning)
	if !low.PauseLikely || low.Never || len(low.Steps) != 5 || low.Steps[0].Samples != 100 || low.Steps[0].Judge != "min-samples" {
		t.Fatalf("2 req/s: %+v", low)
	}
	for _, want := range []string{"at 2 requests/s (test) step 1 (1%) needs about 100 canary requests (min-samples)", "more than its stepDuration + maxHold (10m10s)",
		"will likely pause for a person", "add --shadow 1m (mirrors 1.6 requests/s", "raise --max-duration to", "use fewer steps (--steps 50,100"} {
		if !strings.Contains(low.Warning, want) {
			t.Errorf("warning lacks %q:\n%s", want, low.Warning)
		}
	}
	busy := create(500, nil).Status.Forecast
	if busy.PauseLikely || busy.Warning != "" || busy.Expected.D() > 10*time.Minute {
		t.Errorf("500 req/s: %+v", busy)
	}
	// The same low traffic with a shadow step and a time budget: the
	// mirrored copies count in every step.
	budget := create(2, func(r *Release) {
		r.Spec.Shadow = &ShadowSpec{Duration: Duration(time.Minute)}
		r.Spec.MaxDuration = Duration(3 * time.Hour)
	}).Status.Forecast
	if budget.PauseLikely || budget.Mirrored != 1.6 || budget.Steps[0].Step != -1 || budget.Budget.D() != 3*time.Hour {
		t.Errorf("2 req/s with --shadow and 3h: %+v", budget)
	}
	if none := create(0, nil).Status.Forecast; !none.PauseLikely || !none.Never || !strings.Contains(none.Warning, "no samples") {
		t.Errorf("no traffic: %+v", none)
	}
}

// TestForecastFollowsTheRunningStep: while the release runs, the
// forecast is the current step's window's.
func TestForecastFollowsTheRunningStep(t *testing.T) {
	r := newRig(t)
	rel := testRelease()
	rel.Spec.StepSamples = 100
	rel.Spec.MaxHold = Duration(time.Minute)
	if _, err := r.eng.Create(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		r.tick(20)
	}
	got := r.get("shop-v2")
	f := got.Status.Forecast
	if f == nil || !strings.HasPrefix(f.Source, "this step's window") || f.Rate < 15 || f.Rate > 21 || !f.PauseLikely {
		t.Fatalf("forecast after 30 s at 20 req/s: %+v", f)
	}
	if f.Steps[0].Step != 0 || f.Steps[0].Samples != 100 || !strings.Contains(f.Warning, "step 1 (1%)") || !strings.Contains(f.Warning, "A new release would ship on its own if it: ") {
		t.Errorf("running forecast: %+v", f)
	}
}
