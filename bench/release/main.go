// Command release is the release-safety benchmark: it runs Pave's release
// engine (the real engine code, on a simulated clock) and two baselines
// side by side on the same simulated traffic: Flagger's documented Istio
// example, and Flagger configured as tightly as its documentation allows.
// It prints detection times, blast radius, false rollbacks, time to 100%
// and the ratios to each baseline.
//
//	go run ./bench/release            # default run, well under a minute
//	go run ./bench/release -scale 0.2 # quicker, fewer runs
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/release"
)

// Scenarios at 1,000 requests/s, the canary starting at 1%.
func Scenarios(scale float64) []Scenario {
	runs := func(n int) int { return max(5, int(math.Round(float64(n)*scale))) }
	uniform := func(b Behaviour) func(int) Behaviour { return func(int) Behaviour { return b } }
	base := Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1}
	// Load rising over the release: latency and errors of both versions
	// up by 30% over five minutes (50 → 65 ms median).
	drift := func(sec int) float64 { return 1 + 0.3*math.Min(1, float64(sec)/300) }
	// The second datacenter: 0.5 point more errors and 20% slower (about
	// +10 ms at the median) for both versions.
	otherDC := &Behaviour{ErrorRate: 0.005, LatencyScale: 1.2}
	return []Scenario{
		{Name: "healthy (A/A)", RPS: 1000, Runs: runs(250), Canary: uniform(base)},
		{Name: "errors +5 points", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: "errors +1 point", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.01, LatencyScale: 1})},
		{Name: "p99 +100 ms", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1.5})},
		{Name: "latency +20%", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1.2})},
		{Name: "route 2% errors +20 points", RPS: 1000, Runs: runs(100), Bad: true, Canary: func(route int) Behaviour {
			if Routes[route].Name == "POST /v1/pay" {
				return Behaviour{ErrorRate: stableErrorRate + 0.20, LatencyScale: 1}
			}
			return base
		}},
		{Name: "drift under load, healthy (A/A)", RPS: 1000, Runs: runs(250), Canary: uniform(base), Drift: drift},
		{Name: "drift under load, latency +20%", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1.2}), Drift: drift},
		{Name: "two datacenters, healthy (A/A)", RPS: 1000, Runs: runs(100), Canary: uniform(base), SecondDC: otherDC},
		{Name: "two datacenters, +5 points in dc2 only", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(base), SecondDC: otherDC,
			SecondCanary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: "low traffic 10 rps, errors +5 points", RPS: 10, Runs: runs(40), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1}), MaxDuration: lowTrafficBudget},
		{Name: "low traffic 10 rps, healthy", RPS: 10, Runs: runs(40), Canary: uniform(base), MaxDuration: lowTrafficBudget},
		// Issue #20: the same two with a shadow step; the mirror stays on,
		// so every later step is judged on live and mirrored pairs.
		{Name: "low traffic 10 rps, errors +5 points, shadow", RPS: 10, Runs: runs(100), Bad: true, Shadow: true, MaxDuration: lowTrafficBudget,
			Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: "low traffic 10 rps, healthy, shadow", RPS: 10, Runs: runs(100), Shadow: true, MaxDuration: lowTrafficBudget, Canary: uniform(base)},
		// A wrong answer: 200 with the order's total changed on 5% of one
		// route's answers, two noise fields in every version's answers.
		{Name: "wrong answer 5% of one route, shadow", RPS: wrongAnswerRPS, Runs: runs(100), Bad: true, Shadow: true, MaxDuration: lowTrafficBudget,
			Canary: func(route int) Behaviour {
				if Routes[route].Name == "GET /v1/orders/{id}" {
					return Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1, WrongRate: 0.05}
				}
				return base
			}},
		{Name: "noise fields only, healthy (A/A), shadow", RPS: wrongAnswerRPS, Runs: runs(250), Shadow: true, MaxDuration: lowTrafficBudget, Canary: uniform(base)},
		// The two low-traffic scenarios without a shadow step add one of
		// their own (spec.autoShadow, the default with a time budget);
		// these opt out, as before session 10: the canary's share alone.
		{Name: "low traffic 10 rps, errors +5 points, autoShadow off", RPS: 10, Runs: runs(40), Bad: true, NoAutoShadow: true, MaxDuration: lowTrafficBudget,
			Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: "low traffic 10 rps, healthy, autoShadow off", RPS: 10, Runs: runs(40), NoAutoShadow: true, MaxDuration: lowTrafficBudget, Canary: uniform(base)},
		// The canary's share alone, tuned as a user can for low traffic:
		// steps 5, 50, 100 (spec.steps) and an error-rate excess of 1
		// point accepted (spec.analysis.errorFloor: 0.01); +1 point is the
		// canary at that tolerance, which must ship at most β of the time.
		{Name: tunedBad, RPS: 10, Runs: runs(40), Bad: true, NoAutoShadow: true, MaxDuration: lowTrafficBudget, Steps: tunedSteps, ErrorFloor: 0.01,
			Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: tunedOK, RPS: 10, Runs: runs(40), NoAutoShadow: true, MaxDuration: lowTrafficBudget, Steps: tunedSteps, ErrorFloor: 0.01, Canary: uniform(base)},
		{Name: tunedAtTolerance, RPS: 10, Runs: runs(100), Bad: true, NoAutoShadow: true, MaxDuration: lowTrafficBudget, Steps: tunedSteps, ErrorFloor: 0.01,
			Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.01, LatencyScale: 1})},
		// The profile docs/release.md recommends for a service at low
		// traffic that cannot mirror (and `pave release` suggests when it
		// forecasts a pause and nothing is mirrorable): the tuned release
		// above, with its first step held for 75 canary requests (a +5
		// point canary fails about 4 times there, where each failure
		// weighs most), the total judged alone at α = 2% (maxRoutes: 0:
		// the routes' own tests could not decide at this traffic, and
		// their half of α lowers the total's rollback threshold), and a
		// 30m budget. 100 runs each, on the seeds of the tuned rows (the
		// first 40 runs see their traffic).
		{Name: profileBad, SeedsOf: tunedBad, RPS: 10, Runs: runs(100), Bad: true, NoAutoShadow: true, Profile: true,
			Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: profileOK, SeedsOf: tunedOK, RPS: 10, Runs: runs(100), NoAutoShadow: true, Profile: true, Canary: uniform(base)},
		{Name: profileAtTolerance, SeedsOf: tunedAtTolerance, RPS: 10, Runs: runs(100), Bad: true, NoAutoShadow: true, Profile: true,
			Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.01, LatencyScale: 1})},
	}
}

// The tuned low-traffic scenarios (no mirror at all).
const (
	tunedBad         = "low traffic 10 rps, errors +5 points, no mirror, tuned"
	tunedOK          = "low traffic 10 rps, healthy, no mirror, tuned"
	tunedAtTolerance = "low traffic 10 rps, errors +1 point, no mirror, tuned"

	profileBad         = "low traffic 10 rps, errors +5 points, no mirror, profile"
	profileOK          = "low traffic 10 rps, healthy, no mirror, profile"
	profileAtTolerance = "low traffic 10 rps, errors +1 point, no mirror, profile"
)

var tunedSteps = []release.Percent{50_000, 500_000}

// lowTrafficBudget is spec.maxDuration of the issue #20 scenarios: a step
// extends its window within it, and a person is asked only at its end.
const lowTrafficBudget = 15 * time.Minute

// wrongAnswerRPS is the wrong-answer scenarios' traffic.
const wrongAnswerRPS = 100

// Policies, in the order of Result.Outcomes.
var policyNames = []string{"pave", "flagger", "flagger-tight"}

// Result gathers each policy's outcomes on one scenario.
type Result struct {
	Scenario Scenario
	Outcomes [3][]Outcome // by policyNames
}

const maxSimSeconds = 1200

// Run simulates every scenario with every policy on the same seeds.
func Run(scenarios []Scenario, seed uint64, workers int) []Result {
	out := make([]Result, len(scenarios))
	type job struct{ s, i int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for i, sc := range scenarios {
		out[i] = Result{Scenario: sc}
		for p := range out[i].Outcomes {
			out[i].Outcomes[p] = make([]Outcome, sc.Runs)
		}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				sc := scenarios[j.s]
				k := j.s
				if sc.Seq > 0 {
					k = sc.Seq - 1
				}
				s := seed + uint64(k)*1_000_003 + uint64(j.i)
				// Long enough for Pave's time budget to run out.
				budget := sc.MaxDuration
				if sc.Profile {
					budget = max(budget, release.NoMirrorMaxDuration)
				}
				limit := max(maxSimSeconds, int(budget.Seconds())+60)
				out[j.s].Outcomes[0][j.i] = runPave(sc, s, limit)
				out[j.s].Outcomes[1][j.i] = runFlagger(flaggerExample, sc, s, limit)
				out[j.s].Outcomes[2][j.i] = runFlagger(flaggerTight, sc, s, limit)
			}
		}()
	}
	for s, sc := range scenarios {
		for i := range sc.Runs {
			jobs <- job{s, i}
		}
	}
	close(jobs)
	wg.Wait()
	return out
}

// Summary are a policy's figures on one scenario.
type Summary struct {
	Runs                      int
	Caught, Promoted, Paused  int
	DetectMedian, DetectP95   float64 // seconds, over caught runs
	BlastMedian               float64 // user-facing failures from the canary until the decision: failed requests and wrong answers
	ServedMedian              float64 // user requests served by the canary until the decision
	UserFailures              uint64  // user-facing failures from the canary, summed over the runs
	PromoteMedian, PromoteP95 float64 // seconds to 100%, over promoted runs
	SamplesMedian             float64 // canary requests until a rollback (users' and mirrored)
	SamplesMean               float64
	FalseRollbacks            int // rollbacks of a healthy canary
	NoiseBlamed               int // false rollbacks that blamed a noise field ($.servedAt, $.cache)
	ShippedBad                int // bad canaries promoted
}

func summarize(sc Scenario, os []Outcome) Summary {
	s := Summary{Runs: len(os)}
	var detect, blast, served, promote, samples []float64
	for _, o := range os {
		blast = append(blast, float64(o.CanaryFailed+o.CanaryWrong))
		served = append(served, float64(o.CanaryServed))
		s.UserFailures += o.CanaryFailed + o.CanaryWrong
		switch o.Phase {
		case "rolled_back", "failed":
			s.Caught++
			detect = append(detect, o.DecidedAt)
			samples = append(samples, float64(o.CanarySamples))
			if !sc.Bad {
				s.FalseRollbacks++
				if strings.Contains(o.Reason, "$.servedAt") || strings.Contains(o.Reason, "$.cache") {
					s.NoiseBlamed++
				}
			}
		case "promoted":
			s.Promoted++
			promote = append(promote, o.DecidedAt)
			if sc.Bad {
				s.ShippedBad++
			}
		case "paused":
			s.Paused++
		}
	}
	s.DetectMedian, s.DetectP95 = quantile(detect, 0.5), quantile(detect, 0.95)
	s.BlastMedian, s.ServedMedian = quantile(blast, 0.5), quantile(served, 0.5)
	s.PromoteMedian, s.PromoteP95 = quantile(promote, 0.5), quantile(promote, 0.95)
	s.SamplesMedian = quantile(samples, 0.5)
	s.SamplesMean = math.NaN()
	if len(samples) > 0 {
		var sum float64
		for _, v := range samples {
			sum += v
		}
		s.SamplesMean = sum / float64(len(samples))
	}
	return s
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func main() {
	scale := flag.Float64("scale", 1, "multiplies the number of runs per scenario (healthy: 250 at 1)")
	seed := flag.Uint64("seed", 1, "first random seed; runs are deterministic for a seed")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "simulations in parallel")
	only := flag.String("only", "", "run only the scenarios whose name matches this regular expression (goals of the others are not judged)")
	flag.Parse()
	start := time.Now()
	scs := Scenarios(*scale)
	for i := range scs {
		scs[i].Seq = i + 1 // the seeds of the whole run, also in a -only subset
	}
	seqOf := map[string]int{}
	for _, sc := range scs {
		seqOf[sc.Name] = sc.Seq
	}
	for i := range scs {
		if n := scs[i].SeedsOf; n != "" {
			scs[i].Seq = seqOf[n] // the same traffic as that scenario's runs
		}
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintf(os.Stderr, "-only: %v\n", err)
			os.Exit(2)
		}
		scs = slices.DeleteFunc(scs, func(sc Scenario) bool { return !re.MatchString(sc.Name) })
		if len(scs) == 0 {
			fmt.Fprintf(os.Stderr, "-only %q matches no scenario; names:\n", *only)
			for _, sc := range Scenarios(1) {
				fmt.Fprintf(os.Stderr, "  %s\n", sc.Name)
			}
			os.Exit(2)
		}
	}
	fmt.Fprintf(os.Stderr, "simulating %d scenarios, three policies, on %d workers...\n", len(scs), *workers)
	results := Run(scs, *seed, *workers)
	ok := Report(os.Stdout, results)
	fmt.Printf("\n(simulated in %.1fs of wall time)\n", time.Since(start).Seconds())
	if !ok {
		os.Exit(1)
	}
}

func fmtS(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0fs", v)
}

func fmtN(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fx", a/b)
}

// Report prints the tables and the goals; it returns whether every goal
// was met.
func Report(w io.Writer, results []Result) bool {
	fmt.Fprintf(w, "Release safety: Pave's engine vs Flagger's Istio example and Flagger at its tightest, same simulated traffic\n")
	fmt.Fprintf(w, "(stable: %.1f%% errors, latency log-normal median %d ms, p99 200 ms; routes %s 50%%, %s 48%%, %s 2%%)\n",
		100*stableErrorRate, latencyMedianMs, Routes[0].Name, Routes[1].Name, Routes[2].Name)
	fmt.Fprintf(w, "(flagger: interval 1m, threshold 5, stepWeight 10 to 50; flagger-tight: stepWeights [1 5 10 25 50], interval 10s, threshold 2;\n")
	fmt.Fprintf(w, " both: success rate ≥ 99%% and p99 ≤ 500 ms over 1m)\n\n")
	fmt.Fprintf(w, "%-44s %-13s %5s %7s %6s %6s %8s %8s %8s %8s %8s %7s\n",
		"scenario", "policy", "runs", "caught", "shipped", "paused", "det.p50", "det.p95", "blast50", "served50", "to100%", "samples")
	sums := map[string][3]Summary{}
	for _, r := range results {
		var ss [3]Summary
		for p := range ss {
			ss[p] = summarize(r.Scenario, r.Outcomes[p])
			s := ss[p]
			fmt.Fprintf(w, "%-44s %-13s %5d %7d %6d %6d %8s %8s %8s %8s %8s %7s\n", r.Scenario.Name, policyNames[p], s.Runs, s.Caught, s.ShippedBad,
				s.Paused, fmtS(s.DetectMedian), fmtS(s.DetectP95), fmtN(s.BlastMedian), fmtN(s.ServedMedian), fmtS(s.PromoteMedian), fmtN(s.SamplesMedian))
		}
		sums[r.Scenario.Name] = ss
	}
	for _, r := range results {
		if r.Scenario.Bad {
			continue
		}
		for i, o := range r.Outcomes[0] {
			switch o.Phase {
			case "rolled_back", "failed":
				fmt.Fprintf(w, "  false rollback in %q run %d at %.0fs: %s\n", r.Scenario.Name, i, o.DecidedAt, o.Reason)
			case "paused":
				fmt.Fprintf(w, "  paused in %q run %d at %.0fs: %s\n", r.Scenario.Name, i, o.DecidedAt, o.Reason)
			}
		}
	}
	fmt.Fprintf(w, "\ncaught = rolled back; shipped = a bad canary promoted; det. = seconds from the canary's first weight to the rollback;\n")
	fmt.Fprintf(w, "blast50 = median failed requests served by the new version until the decision; samples = median canary requests until a rollback.\n")

	cfg := analysis.DefaultConfig()
	fmt.Fprintf(w, "\nSamples to decision vs Wald's SPRT (expected sample size at the true rate, β=%.2g), mean over caught runs:\n", cfg.Beta)
	fmt.Fprintf(w, "  same test = Wald's SPRT of the engine's own hypotheses (p0 = stable's %.1f%%, p1 = %g × p0) at the engine's per-test α;\n", 100*stableErrorRate, cfg.ErrorRatio)
	fmt.Fprintf(w, "  oracle = an SPRT that also knows the canary's true rate (p1 = the true rate), for reference;\n")
	fmt.Fprintf(w, "  window bound = the fewest samples any test can need at that α that, like the engine's, compares the canary with\n")
	fmt.Fprintf(w, "    stable's answers of the same window and knows neither rate (k stable answers per canary one; see windowBound).\n")
	type waldRow struct {
		name  string
		rate  float64
		alpha float64
		k     float64 // stable answers per canary answer where it is decided
	}
	// The error test on the total gets α/4 of the release's budget
	// (analysis.Config.AlphaTotal), with or without a shadow step.
	alpha := cfg.AlphaTotal(analysis.NewEvidence(1))
	shadowAlpha := cfg.AlphaTotal(analysis.NewEvidence(1).WithFields(cfg.MaxFields))
	waldRatios := map[string]float64{}
	for _, c := range []waldRow{
		{"errors +5 points", stableErrorRate + 0.05, alpha, 99},                                  // the 1% step
		{"errors +1 point", stableErrorRate + 0.01, alpha, 99},                                   // mostly the 1% step
		{"low traffic 10 rps, errors +5 points, shadow", stableErrorRate + 0.05, shadowAlpha, 3}, // the shadow step: the user's stable answer and 2 mirrored ones a pair
	} {
		ss, ok := sums[c.name]
		if !ok {
			continue
		}
		s := ss[0]
		same := analysis.WaldASN(stableErrorRate, cfg.ErrorRatio*stableErrorRate, c.rate, c.alpha, cfg.Beta)
		oracle := waldOptimum(c.rate, c.alpha, cfg.Beta)
		waldRatios[c.name] = s.SamplesMean / same
		bound := windowBound(stableErrorRate, c.rate, c.k, c.alpha)
		fmt.Fprintf(w, "  %-44s pave mean %6s (median %6s) canary samples; same test %5.0f, ratio %s; oracle %5.0f, ratio %s; window bound (k=%g) %5.0f, ratio %s (α per test %.2g)\n",
			c.name, fmtN(s.SamplesMean), fmtN(s.SamplesMedian), same, ratio(s.SamplesMean, same), oracle, ratio(s.SamplesMean, oracle),
			c.k, bound, ratio(s.SamplesMean, bound), c.alpha)
	}

	fr := func(s Summary) float64 { return float64(s.FalseRollbacks) / float64(max(1, s.Runs)) }
	e5 := sums["errors +5 points"]
	e1 := sums["errors +1 point"]
	healthy := sums["healthy (A/A)"]
	fmt.Fprintf(w, "\nRatios (pave / baseline, same traffic):            vs flagger example         vs flagger-tight\n")
	row := func(name string, get func(Summary) float64, f func(float64) string, ss [3]Summary) {
		fmt.Fprintf(w, "  %-36s %-8s %8s vs %-6s = %-8s %8s vs %-6s = %s\n", name, "", f(get(ss[0])), f(get(ss[1])), ratio(get(ss[0]), get(ss[1])),
			f(get(ss[0])), f(get(ss[2])), ratio(get(ss[0]), get(ss[2])))
	}
	det := func(s Summary) float64 { return s.DetectMedian }
	blast := func(s Summary) float64 { return s.BlastMedian }
	promote := func(s Summary) float64 { return s.PromoteMedian }
	have := func(names ...string) bool {
		for _, n := range names {
			if _, ok := sums[n]; !ok {
				return false
			}
		}
		return true
	}
	if have("errors +5 points") {
		row("+5 points detection median", det, fmtS, e5)
		row("+5 points blast radius", blast, fmtN, e5)
	}
	if have("errors +1 point") {
		row("+1 point blast radius", blast, fmtN, e1)
	}
	if have("healthy (A/A)") {
		row("healthy time to 100%", promote, fmtS, healthy)
	}
	const (
		low5, lowOK       = "low traffic 10 rps, errors +5 points", "low traffic 10 rps, healthy"
		low5Sh, lowOKSh   = "low traffic 10 rps, errors +5 points, shadow", "low traffic 10 rps, healthy, shadow"
		wrong, noiseAA    = "wrong answer 5% of one route, shadow", "noise fields only, healthy (A/A), shadow"
		healthyAA, e5Name = "healthy (A/A)", "errors +5 points"
	)
	for _, n := range []string{low5, low5Sh, wrong, tunedBad, profileBad} {
		if have(n) {
			row(n+" blast", blast, fmtN, sums[n])
		}
	}
	for _, n := range []string{lowOK, lowOKSh, noiseAA, tunedOK, profileOK} {
		if have(n) {
			row(n+" to 100%", promote, fmtS, sums[n])
		}
	}
	aaNames := []string{healthyAA, "drift under load, healthy (A/A)", "two datacenters, healthy (A/A)", noiseAA}
	for _, name := range aaNames {
		if !have(name) {
			continue
		}
		ss := sums[name]
		fmt.Fprintf(w, "  false rollbacks, %-41s %d/%d (%.2f%%) vs %d/%d (%.2f%%) vs %d/%d (%.2f%%)\n", name, ss[0].FalseRollbacks, ss[0].Runs, 100*fr(ss[0]),
			ss[1].FalseRollbacks, ss[1].Runs, 100*fr(ss[1]), ss[2].FalseRollbacks, ss[2].Runs, 100*fr(ss[2]))
	}

	route := sums["route 2% errors +20 points"]
	lat := sums["p99 +100 ms"]
	lat20 := sums["latency +20%"]
	driftAA := sums["drift under load, healthy (A/A)"]
	driftLat := sums["drift under load, latency +20%"]
	dcAA := sums["two datacenters, healthy (A/A)"]
	dcBad := sums["two datacenters, +5 points in dc2 only"]
	var falseAll, runsAll int
	for _, name := range aaNames {
		falseAll += sums[name][0].FalseRollbacks
		runsAll += sums[name][0].Runs
	}
	type goal struct {
		name     string
		ok, skip bool
	}
	var goals []goal
	add := func(name string, ok bool, needs ...string) {
		goals = append(goals, goal{name: name, ok: ok, skip: !have(needs...)})
	}
	add(fmt.Sprintf("+5-point errors caught in a median ≤ 20 s at 1%% weight (%s, %d/%d caught)", fmtS(e5[0].DetectMedian), e5[0].Caught, e5[0].Runs),
		e5[0].DetectMedian <= 20 && e5[0].Caught == e5[0].Runs, e5Name)
	for p := 1; p <= 2; p++ {
		add(fmt.Sprintf("blast radius ≤ 0.05x %s's on +5 points (%s)", policyNames[p], ratio(e5[0].BlastMedian, e5[p].BlastMedian)),
			e5[0].BlastMedian <= 0.05*e5[p].BlastMedian, e5Name)
		add(fmt.Sprintf("route-local regression caught (%d/%d) and missed by %s (shipped %d/%d)", route[0].Caught, route[0].Runs, policyNames[p], route[p].ShippedBad, route[p].Runs),
			route[0].Caught == route[0].Runs && route[p].ShippedBad > route[p].Runs/2, "route 2% errors +20 points")
		add(fmt.Sprintf("healthy releases reach 100%% in ≤ 0.25x %s's time (%s)", policyNames[p], ratio(healthy[0].PromoteMedian, healthy[p].PromoteMedian)),
			healthy[0].PromoteMedian <= 0.25*healthy[p].PromoteMedian && healthy[0].Promoted == healthy[0].Runs-healthy[0].FalseRollbacks, healthyAA)
	}
	add(fmt.Sprintf("latency regressions caught (p99 +100 ms %d/%d; +20%% %d/%d; +20%% under drift %d/%d)", lat[0].Caught, lat[0].Runs, lat20[0].Caught, lat20[0].Runs, driftLat[0].Caught, driftLat[0].Runs),
		lat[0].Caught == lat[0].Runs && lat20[0].Caught == lat20[0].Runs && driftLat[0].Caught == driftLat[0].Runs,
		"p99 +100 ms", "latency +20%", "drift under load, latency +20%")
	add(fmt.Sprintf("a fault in the second datacenter only is caught (%d/%d)", dcBad[0].Caught, dcBad[0].Runs), dcBad[0].Caught == dcBad[0].Runs, "two datacenters, +5 points in dc2 only")
	add(fmt.Sprintf("false rollbacks ≤ α = 1%% over every A/A scenario (%d/%d = %.2f%%; drift %d/%d, two datacenters %d/%d)", falseAll, runsAll,
		100*float64(falseAll)/float64(max(1, runsAll)), driftAA[0].FalseRollbacks, driftAA[0].Runs, dcAA[0].FalseRollbacks, dcAA[0].Runs),
		float64(falseAll) <= 0.01*float64(runsAll), healthyAA)

	// Issue #20's goals.
	add(fmt.Sprintf("#20: +5-point errors caught in a median ≤ 10 s at 1,000 req/s (%s)", fmtS(e5[0].DetectMedian)), e5[0].DetectMedian <= 10, e5Name)
	for _, c := range []struct{ bad, ok, label string }{{low5Sh, lowOKSh, "with a shadow step"}, {low5, lowOK, "without a shadow step asked for (one added)"},
		{tunedBad, tunedOK, "with no mirror at all, steps 5,50 and errorFloor 1 point"},
		{profileBad, profileOK, "with no mirror at all, the no-mirror profile"}} {
		b, h := sums[c.bad], sums[c.ok]
		for p := 1; p <= 2; p++ {
			add(fmt.Sprintf("#20: 10 req/s %s: ≥ 95%% of bad releases caught (%d/%d) with a blast radius ≤ 0.25x %s's (%s vs %s failed user requests; %s vs %s user requests served)",
				c.label, b[0].Caught, b[0].Runs, policyNames[p], fmtN(b[0].BlastMedian), fmtN(b[p].BlastMedian), fmtN(b[0].ServedMedian), fmtN(b[p].ServedMedian)),
				float64(b[0].Caught) >= 0.95*float64(b[0].Runs) && b[0].BlastMedian <= 0.25*b[p].BlastMedian, c.bad)
			add(fmt.Sprintf("#20: 10 req/s %s: ≥ 95%% of healthy releases promoted without a person (%d/%d, %d paused) within 1.0x %s's time (%s vs %s)",
				c.label, h[0].Promoted, h[0].Runs, h[0].Paused, policyNames[p], fmtS(h[0].PromoteMedian), fmtS(h[p].PromoteMedian)),
				float64(h[0].Promoted) >= 0.95*float64(h[0].Runs) && h[0].PromoteMedian <= h[p].PromoteMedian, c.ok)
		}
	}
	for _, c := range []struct{ name, label string }{{tunedAtTolerance, "steps 5,50 and errorFloor 1 point"}, {profileAtTolerance, "the no-mirror profile"}} {
		at := sums[c.name]
		add(fmt.Sprintf("#20: with no mirror at all, %s: a canary at the tolerance (+1 point) ships ≤ β = %g%% (%d/%d)",
			c.label, 100*analysis.DefaultConfig().Beta, at[0].ShippedBad, at[0].Runs), float64(at[0].ShippedBad) <= analysis.DefaultConfig().Beta*float64(at[0].Runs), c.name)
	}
	wa, aa := sums[wrong], sums[noiseAA]
	add(fmt.Sprintf("#20: the wrong answer caught in every run (%d/%d) with 0 user-facing failures (%d; flagger %d, flagger-tight %d)",
		wa[0].Caught, wa[0].Runs, wa[0].UserFailures, wa[1].UserFailures, wa[2].UserFailures), wa[0].Caught == wa[0].Runs && wa[0].UserFailures == 0, wrong)
	// The goal is about the noise fields: a rollback that blamed
	// one. The error and latency judges may still roll a healthy canary
	// back within α; those are counted (and judged ≤ α) apart.
	add(fmt.Sprintf("#20: 0 false rollbacks from noise fields in the healthy runs (%d/%d blamed a noise field)", aa[0].NoiseBlamed, aa[0].Runs),
		aa[0].NoiseBlamed == 0, noiseAA)
	add(fmt.Sprintf("#20: false rollbacks of any judge in those runs ≤ α = %g%% (%d/%d = %.2f%%)", 100*analysis.DefaultConfig().Alpha, aa[0].FalseRollbacks, aa[0].Runs,
		100*float64(aa[0].FalseRollbacks)/float64(max(1, aa[0].Runs))), float64(aa[0].FalseRollbacks) <= analysis.DefaultConfig().Alpha*float64(aa[0].Runs), noiseAA)
	for _, n := range []string{e5Name, "errors +1 point", low5Sh} {
		add(fmt.Sprintf("#20: samples to decision within 1.5x Wald's SPRT of the same hypotheses at the engine's α, %s (%.2fx)", n, waldRatios[n]), waldRatios[n] <= 1.5, n)
	}
	fmt.Fprintf(w, "\nGoals:\n")
	all := true
	for _, g := range goals {
		mark := "met   "
		switch {
		case g.skip:
			mark = "not run"
		case !g.ok:
			mark, all = "MISSED", false
		}
		fmt.Fprintf(w, "  [%s] %s\n", mark, g.name)
	}
	fmt.Fprintln(w, strings.Repeat("-", 20))
	return all
}
