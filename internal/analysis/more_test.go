package analysis

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// MoreCanaryRequests is an honest estimate: on the step before promotion,
// where the judges must accept the canary, the requests the canary then
// actually needed to pass are within a factor of three of the estimate
// given at the first hold past the minimum sample count.
func TestMoreCanaryRequestsEstimatesTheRequestsStillNeeded(t *testing.T) {
	cfg := DefaultConfig()
	var ratios []float64
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		var w Window
		var estimate, at uint64
		for sec := 1; sec <= 600; sec++ {
			synth(rng, &w.Canary.Total, 100, 0.002, 50)
			synth(rng, &w.Stable.Total, 100, 0.002, 50)
			d := cfg.Evaluate(NewEvidence(1), w, true)
			if d.Verdict == Hold && d.MoreCanaryRequests == 0 && w.Canary.Total.Requests >= cfg.MinSamples && w.Canary.Total.Errors+w.Stable.Total.Errors > 0 {
				t.Fatalf("seed %d at %d s: holding without an estimate: %s", seed, sec, d.Reason)
			}
			if d.Verdict == Hold && estimate == 0 && w.Canary.Total.Requests >= cfg.MinSamples && d.MoreCanaryRequests > 0 {
				estimate, at = d.MoreCanaryRequests, w.Canary.Total.Requests
			}
			if d.Verdict == Pass {
				if estimate > 0 {
					ratios = append(ratios, float64(w.Canary.Total.Requests-at)/float64(estimate))
				}
				break
			}
			if d.Verdict == Fail {
				t.Fatalf("seed %d: A/A failed: %s", seed, d.Reason)
			}
		}
	}
	if len(ratios) < 10 {
		t.Fatalf("only %d runs gave an estimate and then passed", len(ratios))
	}
	var within int
	for _, r := range ratios {
		if r >= 1.0/3 && r <= 3 {
			within++
		}
	}
	t.Logf("needed / estimated: %.2f", ratios)
	if within < len(ratios)*8/10 {
		t.Fatalf("needed/estimated within [1/3, 3] in %d of %d runs: %.2f", within, len(ratios), ratios)
	}
}

// Below the minimum sample count the estimate is the shortfall.
func TestMoreCanaryRequestsBelowMinSamples(t *testing.T) {
	cfg := DefaultConfig()
	var w Window
	rng := rand.New(rand.NewPCG(1, 1))
	synth(rng, &w.Canary.Total, 10, 0, 50)
	synth(rng, &w.Stable.Total, 1000, 0, 50)
	if d := cfg.Evaluate(NewEvidence(1), w, false); d.Verdict != Hold || d.MoreCanaryRequests != cfg.MinSamples-10 {
		t.Fatalf("10 of %d samples: %s, more %d", cfg.MinSamples, d.Verdict, d.MoreCanaryRequests)
	}
}

// TestDecisionsEncodeAsJSON: a final step of a service with no errors
// and the floor acceptance off (errorFloor: 0) holds with no honest
// estimate of the requests still needed (+Inf): the decision, stored
// with the release as JSON, must still encode. A release whose status
// failed to encode could not be stored, and its reconcile failed at
// every pass (found by bench/release at -scale 4).
func TestDecisionsEncodeAsJSON(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ErrorFloor = 0
	var w Window
	for range 400 {
		w.Canary.Total.Observe(200, 10)
		w.Stable.Total.Observe(200, 10)
	}
	d := cfg.Evaluate(NewEvidence(1), w, true)
	if d.Verdict != Hold {
		t.Fatalf("no errors, floor off, final step: %s (%s), want hold", d.Verdict, d.Reason)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatalf("the decision does not encode: %v\n%+v", err, d.Findings)
	}
	if d.MoreCanaryRequests != 0 {
		t.Errorf("moreCanaryRequests %d, want 0 (no honest figure)", d.MoreCanaryRequests)
	}
}
