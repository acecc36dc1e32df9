package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSmallBenchmark runs a small version of the benchmark with fixed seeds
// and asserts its qualitative outcomes: what is caught, what the baseline
// misses, and the false-rollback bound. It never asserts wall-clock times;
// detection times are simulated seconds.
func TestSmallBenchmark(t *testing.T) {
	scs := Scenarios(0.05)
	// Keep the low-traffic scenarios short: they run 1200 simulated seconds.
	var keep []Scenario
	for _, sc := range scs {
		switch {
		case strings.HasPrefix(sc.Name, "low traffic"):
			sc.Runs = 2
		case strings.Contains(sc.Name, "healthy (A/A)"):
			sc.Runs = 20
		}
		if raceEnabled {
			sc.Runs = max(1, sc.Runs/4)
		}
		keep = append(keep, sc)
	}
	results := Run(keep, 42, 2)
	by := map[string][3]Summary{}
	for _, r := range results {
		by[r.Scenario.Name] = [3]Summary{summarize(r.Scenario, r.Outcomes[0]), summarize(r.Scenario, r.Outcomes[1]), summarize(r.Scenario, r.Outcomes[2])}
	}
	healthy := by["healthy (A/A)"]
	if healthy[0].FalseRollbacks > 1 {
		t.Errorf("pave rolled back %d of %d healthy canaries; want at most 1", healthy[0].FalseRollbacks, healthy[0].Runs)
	}
	if healthy[0].Promoted < healthy[0].Runs-1 {
		t.Errorf("pave promoted %d of %d healthy canaries", healthy[0].Promoted, healthy[0].Runs)
	}
	if !(healthy[0].PromoteMedian < healthy[1].PromoteMedian/4) {
		t.Errorf("healthy: pave reached 100%% after %v simulated s, flagger after %v; want under a quarter", healthy[0].PromoteMedian, healthy[1].PromoteMedian)
	}
	for _, name := range []string{"errors +5 points", "errors +1 point", "p99 +100 ms", "latency +20%", "route 2% errors +20 points",
		"drift under load, latency +20%", "two datacenters, +5 points in dc2 only"} {
		s := by[name][0]
		if s.Caught != s.Runs {
			t.Errorf("%s: pave caught %d of %d", name, s.Caught, s.Runs)
		}
	}
	if s := by["errors +5 points"][0]; s.DetectMedian > 20 {
		t.Errorf("+5 points: median detection %v simulated s, want ≤ 20", s.DetectMedian)
	}
	if p, f := by["errors +5 points"][0], by["errors +5 points"][1]; !(p.BlastMedian <= 0.05*f.BlastMedian) {
		t.Errorf("+5 points: blast radius %v vs baseline %v, want ≤ 0.05x", p.BlastMedian, f.BlastMedian)
	}
	if f := by["route 2% errors +20 points"][1]; f.ShippedBad != f.Runs {
		t.Errorf("the baseline should miss the route-local regression (it hides in the aggregate): shipped %d of %d", f.ShippedBad, f.Runs)
	}
	// Flagger at its tightest still judges p99 against an absolute 500 ms:
	// a +20% latency regression passes it.
	if f := by["latency +20%"][2]; f.ShippedBad <= f.Runs/2 {
		t.Errorf("flagger-tight shipped %d of %d latency regressions; its p99 ≤ 500 ms check should pass most", f.ShippedBad, f.Runs)
	}
	// Drift under load and a second, slower datacenter are not the
	// new version's fault.
	for _, name := range []string{"drift under load, healthy (A/A)", "two datacenters, healthy (A/A)"} {
		if s := by[name][0]; s.FalseRollbacks > 1 || s.Promoted < s.Runs-1 {
			t.Errorf("%s: pave rolled back %d and promoted %d of %d", name, s.FalseRollbacks, s.Promoted, s.Runs)
		}
	}
	if f := by["errors +5 points"][1]; f.Caught != f.Runs {
		t.Errorf("the baseline should catch +5 points: %d of %d", f.Caught, f.Runs)
	}
	// Low traffic without a mirror is inconclusive: the engine holds and
	// then pauses for a person; it never promotes on too little evidence.
	for _, name := range []string{"low traffic 10 rps, healthy, autoShadow off", "low traffic 10 rps, errors +5 points, autoShadow off"} {
		if s := by[name][0]; s.Promoted != 0 {
			t.Errorf("%s: pave promoted %d of %d on too little evidence", name, s.Promoted, s.Runs)
		}
	}
	// Issue #20: with a shadow step, a bad canary at 10 req/s and a wrong
	// answer are caught before any user gets the canary; the noise fields
	// are never blamed; healthy releases are promoted without a person.
	// Without spec.shadow, the low-traffic releases add a shadow step of
	// their own (they have a time budget): the same outcomes.
	for _, name := range []string{"low traffic 10 rps, errors +5 points, shadow", "wrong answer 5% of one route, shadow", "low traffic 10 rps, errors +5 points"} {
		if s := by[name][0]; s.Caught != s.Runs || s.UserFailures != 0 {
			t.Errorf("%s: pave caught %d of %d with %d user-facing failures; want all, none", name, s.Caught, s.Runs, s.UserFailures)
		}
	}
	// (The error judge may roll a healthy one back within α: seed 18 of
	// the noise scenario is such a run, an error-rate excess in the shadow
	// step; the full run has 2 of 250.)
	for _, name := range []string{"low traffic 10 rps, healthy, shadow", "noise fields only, healthy (A/A), shadow", "low traffic 10 rps, healthy"} {
		if s := by[name][0]; s.NoiseBlamed != 0 || s.FalseRollbacks > 1 || s.Promoted < s.Runs-1 {
			t.Errorf("%s: pave rolled back %d (%d blaming a noise field) and promoted %d of %d", name, s.FalseRollbacks, s.NoiseBlamed, s.Promoted, s.Runs)
		}
	}
	// Status codes and latency cannot see a wrong answer: the baselines ship it.
	if f := by["wrong answer 5% of one route, shadow"][1]; f.ShippedBad != f.Runs {
		t.Errorf("flagger shipped %d of %d wrong answers; it judges status codes and latency only", f.ShippedBad, f.Runs)
	}
	var out bytes.Buffer
	Report(&out, results)
	for _, want := range []string{"Ratios (pave / baseline", "vs flagger-tight", "Wald's SPRT", "#20: the wrong answer", "Goals:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunsAreDeterministic(t *testing.T) {
	sc := Scenarios(0.1)[1]
	a, b := runPave(sc, 7, 300), runPave(sc, 7, 300)
	if a != b {
		t.Fatalf("same seed, different outcomes:\n%+v\n%+v", a, b)
	}
}
