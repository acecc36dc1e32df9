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
		return createWithForecast(t, r.eng, &n, edit)
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

// TestForecastRecommendsTheNoMirrorProfile: a service at 10 requests/s
// whose routes are all POST cannot mirror; with a 15m budget its default
// release would pause, and the warning recommends the no-mirror profile
// with that profile's own forecast. A release with the profile fits its
// budget and is not told to use it again; one with mirrorable routes is
// told to add a shadow step instead, and both when it refused the mirror.
func TestForecastRecommendsTheNoMirrorProfile(t *testing.T) {
	r := newRig(t)
	routes := map[string]float64{"POST /v1/ledger": 8, "POST /v1/transfer": 2}
	r.eng.traffic = TrafficFunc(func(context.Context, string) (Traffic, error) {
		return Traffic{Rate: 10, Errors: 0.05, Routes: routes, Source: "test"}, nil
	})
	n := 1
	create := func(edit func(*Release)) *Forecast {
		t.Helper()
		return createWithForecast(t, r.eng, &n, func(rel *Release) {
			rel.Spec.MaxDuration = Duration(15 * time.Minute)
			if edit != nil {
				edit(rel)
			}
		}).Status.Forecast
	}
	plain := create(nil)
	t.Logf("POST only, default steps: %s", plain.Warning)
	if !plain.PauseLikely || plain.ShadowAdded != "" {
		t.Fatalf("POST only at 10 req/s: %+v", plain)
	}
	for _, want := range []string{"without a mirror, use the no-mirror profile (--profile no-mirror: steps 5,50,100, stepSamples 75, maxDuration 30m, analysis.alpha 0.02",
		`docs/release.md, "Low traffic without a mirror"`} {
		if !strings.Contains(plain.Warning, want) {
			t.Errorf("warning lacks %q:\n%s", want, plain.Warning)
		}
	}
	if strings.Contains(plain.Warning, "--shadow") {
		t.Errorf("nothing is mirrorable, yet the warning suggests a shadow step:\n%s", plain.Warning)
	}
	tuned := create(func(r *Release) { NoMirrorProfile(&r.Spec) })
	t.Logf("with the profile: expected %s of %s", tuned.Expected.D(), tuned.Budget.D())
	if tuned.PauseLikely || tuned.Never || tuned.Budget.D() != NoMirrorMaxDuration || tuned.Expected.D() > 10*time.Minute || len(tuned.Steps) != 2 {
		t.Errorf("with the profile: %+v", tuned)
	}
	// Mirrorable traffic: a shadow step is the remedy (here added of its
	// own, the rig's router mirroring); refused, both are offered.
	routes = map[string]float64{"GET /v1/ledger": 8, "POST /v1/transfer": 2}
	refused := create(func(r *Release) { r.Spec.AutoShadow = new(bool) })
	if !strings.Contains(refused.Warning, "add --shadow 1m") || !strings.Contains(refused.Warning, "--profile no-mirror") {
		t.Errorf("mirror refused: %s", refused.Warning)
	}
}

// createWithForecast creates shop's next release (v2, v3, … counted by
// n) of /srv/shop-v2 with edit applied to it; the release must come back
// with a forecast.
func createWithForecast(t *testing.T, eng *Engine, n *int, edit func(*Release)) Release {
	t.Helper()
	*n++
	rel := New("shop", fmt.Sprintf("v%d", *n))
	rel.Spec.Binary = "/srv/shop-v2"
	rel.Spec.Supersede = true
	if edit != nil {
		edit(&rel)
	}
	got, err := eng.Create(context.Background(), rel)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Forecast == nil {
		t.Fatal("no forecast")
	}
	return got
}
