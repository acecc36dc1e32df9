package analysis

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

// synth draws n requests with error probability p and log-normal latency
// (median ms, sigma 0.6) into c.
func synth(rng *rand.Rand, c *stats.Counts, n int, p, medianMs float64) {
	for range n {
		status := 200
		if rng.Float64() < p {
			status = 500
		}
		c.Observe(status, medianMs*math.Exp(0.6*rng.NormFloat64()))
	}
}

// sequentialRun looks at the judges every second (1000 req/s, the canary at
// share) for up to seconds and reports the first non-pass verdict.
func sequentialRun(seed uint64, cfg Config, share, stableP, canaryP, canaryMedian float64, seconds int) (Verdict, int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var w Window
	w.Canary.Total.Latency = make([]uint64, stats.NumBuckets)
	w.Stable.Total.Latency = make([]uint64, stats.NumBuckets)
	for s := 1; s <= seconds; s++ {
		nc := int(1000 * share)
		synth(rng, &w.Canary.Total, nc, canaryP, canaryMedian)
		synth(rng, &w.Stable.Total, 1000-nc, stableP, 50)
		d := cfg.Evaluate(Evidence{}, w, false)
		if d.Verdict == Fail {
			return Fail, s
		}
	}
	return Pass, seconds
}

func TestErrorJudgeFalsePositiveRate(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	fails := 0
	const runs = 200
	for _, v := range eachRun(runs, func(i int) Verdict { v, _ := sequentialRun(uint64(i), cfg, 0.05, 0.01, 0.01, 50, 60); return v }) {
		if v == Fail {
			fails++
		}
	}
	// Alpha bounds the rate at every look; allow sampling noise (2 of 200
	// is 1%).
	if fails > 2 {
		t.Fatalf("healthy canary failed in %d of %d runs; alpha is %v", fails, runs, cfg.Alpha)
	}
}

func TestErrorJudgePower(t *testing.T) {
	cfg := DefaultConfig()
	caught := 0
	const runs = 100
	for seed := range uint64(runs) {
		if v, _ := sequentialRun(seed, cfg, 0.01, 0.005, 0.055, 50, 60); v == Fail {
			caught++
		}
	}
	if caught < 95 {
		t.Fatalf("+5 points caught in %d of %d runs within 60 s at 1%%; want ≥ 95", caught, runs)
	}
}

func TestLatencyJudge(t *testing.T) {
	cfg := DefaultConfig()
	caught, falseFails := 0, 0
	for seed := range uint64(50) {
		if v, _ := sequentialRun(seed, cfg, 0.02, 0.005, 0.005, 75, 30); v == Fail {
			caught++
		}
		if v, _ := sequentialRun(seed+1000, cfg, 0.02, 0.005, 0.005, 50, 30); v == Fail {
			falseFails++
		}
	}
	if caught < 48 {
		t.Errorf("latency ×1.5 caught in %d of 50 runs", caught)
	}
	if falseFails > 0 {
		t.Errorf("equal latency failed in %d of 50 runs", falseFails)
	}
}

func TestMannWhitneyOnBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	var a, b, c stats.Counts
	synth(rng, &a, 5000, 0, 50)
	synth(rng, &b, 5000, 0, 50)
	synth(rng, &c, 5000, 0, 100)
	if e, se := MannWhitney(a, b); math.Abs(e-0.5) > 4*se {
		t.Errorf("A/A effect %v ± %v, want 0.5", e, se)
	}
	// ln(2)/(0.6·√2) = 0.817 → Φ = 0.79.
	if e, _ := MannWhitney(c, a); math.Abs(e-0.79) > 0.03 {
		t.Errorf("doubled latency: effect %v, want about 0.79", e)
	}
	if e, _ := MannWhitney(stats.Counts{}, a); !math.IsNaN(e) {
		t.Errorf("no samples: effect %v, want NaN", e)
	}
}

func TestKillSwitchMinSampleGuard(t *testing.T) {
	cfg := DefaultConfig()
	var c stats.Counts
	for range 10 {
		c.Observe(503, 10)
	}
	if f := cfg.KillSwitch(c); f.Verdict != Pass || !strings.Contains(f.Reason, "armed after") {
		t.Fatalf("10 of 10 errors below the sample guard: %+v", f)
	}
	for range 40 {
		c.Observe(503, 10)
	}
	f := cfg.KillSwitch(c)
	if f.Verdict != Fail || f.Numbers["errorRate"] != 1 {
		t.Fatalf("50 of 50 errors: %+v", f)
	}
	cfg.MaxErrorRate, cfg.MaxP99Ms = 0, 5
	if f := cfg.KillSwitch(c); f.Verdict != Fail || !strings.Contains(f.Reason, "p99") {
		t.Fatalf("p99 limit: %+v", f)
	}
}

func TestInconclusiveHolds(t *testing.T) {
	cfg := DefaultConfig()
	var w Window
	w.Canary.Total.Observe(200, 10)
	w.Stable.Total.Observe(200, 10)
	d := cfg.Evaluate(Evidence{}, w, false)
	if d.Verdict != Hold || !strings.Contains(d.Reason, "1 of 50 canary samples") {
		t.Fatalf("one sample: %+v", d)
	}
	// Enough samples, no errors anywhere: a final step cannot accept
	// the error hypothesis yet, so it holds rather than promotes.
	rng := rand.New(rand.NewPCG(1, 1))
	synth(rng, &w.Canary.Total, 100, 0, 50)
	synth(rng, &w.Stable.Total, 100, 0, 50)
	if d := cfg.Evaluate(Evidence{}, w, true); d.Verdict != Hold {
		t.Fatalf("final step without error evidence: %+v", d)
	}
	if d := cfg.Evaluate(Evidence{}, w, false); d.Verdict != Pass {
		t.Fatalf("intermediate step: %+v", d)
	}
}

func TestRouteRegressionIsJudgedOnItsOwn(t *testing.T) {
	cfg := DefaultConfig()
	rng := rand.New(rand.NewPCG(5, 5))
	var w Window
	w.Canary.Routes = map[string]stats.Counts{}
	w.Stable.Routes = map[string]stats.Counts{}
	for _, r := range []struct {
		name     string
		n        int
		canaryP  float64
		stableP  float64
		canaryMs float64
	}{{"/", 4900, 0.005, 0.005, 50}, {"/orders", 100, 0.3, 0.005, 50}} {
		var c, s stats.Counts
		synth(rng, &c, r.n, r.canaryP, r.canaryMs)
		synth(rng, &s, r.n, r.stableP, 50)
		w.Canary.Routes[r.name], w.Stable.Routes[r.name] = c, s
		w.Canary.Total, w.Stable.Total = w.Canary.Total.Add(c), w.Stable.Total.Add(s)
	}
	d := cfg.Evaluate(Evidence{}, w, false)
	if d.Verdict != Fail || !strings.Contains(d.Reason, "route /orders") {
		t.Fatalf("route regression: %+v", d.Reason)
	}
	var numbers bool
	for _, f := range d.Findings {
		if f.Scope == "/orders" && f.Judge == JudgeErrors && f.Numbers["canaryErrors"] > 0 {
			numbers = true
		}
	}
	if !numbers {
		t.Fatalf("the decision lacks the route's numbers: %+v", d.Findings)
	}
}

func TestEvidenceMultipliesAcrossSteps(t *testing.T) {
	cfg := DefaultConfig()
	w := Window{Canary: stats.Version{Total: stats.Counts{Requests: 100, Errors: 5}}, Stable: stats.Version{Total: stats.Counts{Requests: 9900, Errors: 50}}}
	e := cfg.Extend(NewEvidence(1), w)
	e = cfg.Extend(e, w)
	if got, want := e.LogE[testKey(JudgeErrors, TotalScope)][0], 2*cfg.errorLLR(w.Canary.Total, w.Stable.Total); math.Abs(got-want) > 1e-9 {
		t.Fatalf("log e-value %v, want %v", got, want)
	}
}

// A second segment restarts the product: the average over restarts is
// what the judges compare with the threshold.
func TestSegmentsAverageRestarts(t *testing.T) {
	cfg := DefaultConfig()
	good := Window{Canary: stats.Version{Total: stats.Counts{Requests: 1000, Errors: 0}}, Stable: stats.Version{Total: stats.Counts{Requests: 1000, Errors: 20}}}
	e := cfg.Extend(NewEvidence(3), good)
	key := testKey(JudgeErrors, TotalScope)
	l := cfg.errorLLR(good.Canary.Total, good.Stable.Total)
	if l >= 0 {
		t.Fatalf("a canary with no errors should lower the evidence, got %v", l)
	}
	e = e.StartSegment()
	if got, want := e.combined(key, 0), math.Log((math.Exp(l)+1+1)/3); math.Abs(got-want) > 1e-9 {
		t.Fatalf("combined %v, want %v", got, want)
	}
	if got := e.segment(key); got != 0 {
		t.Fatalf("the new segment's product starts at log 1, got %v", got)
	}
	e = e.StartSegment().StartSegment().StartSegment()
	if e.Started != 3 {
		t.Fatalf("started %d segments of 3", e.Started)
	}
}
func TestWaldASN(t *testing.T) {
	// Hand-computed: p0=0.005, p1=0.015, α=0.00125, β=0.05 → 942.
	if got := WaldASN(0.005, 0.015, 0.015, 0.00125, 0.05); math.Abs(got-942) > 2 {
		t.Errorf("ASN at p1 = %v, want about 942", got)
	}
	// Between the hypotheses the test takes longest.
	mid := WaldASN(0.005, 0.015, 0.009, 0.00125, 0.05)
	if !(mid > 942) {
		t.Errorf("ASN between the hypotheses = %v, want above the ASN at p1", mid)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	c := DefaultConfig()
	c.Beta = 0.7
	err := c.Validate()
	var ce *ConfigError
	if err == nil || !asConfigError(err, &ce) || ce.Field != "beta" {
		t.Fatalf("got %v", err)
	}
}

func asConfigError(err error, target **ConfigError) bool {
	ce, ok := err.(*ConfigError)
	if ok {
		*target = ce
	}
	return ok
}
