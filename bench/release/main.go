// Command release is the release-safety benchmark: it runs Pave's release
// engine (the real engine code, on a simulated clock) and a baseline that
// reproduces Flagger's documented Istio example side by side on the same
// simulated traffic, and prints detection times, blast radius, false
// rollbacks, time to 100% and the ratios between the two.
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
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
)

// Scenarios at 1,000 requests/s, the canary starting at 1%.
func Scenarios(scale float64) []Scenario {
	runs := func(n int) int { return max(5, int(math.Round(float64(n)*scale))) }
	uniform := func(b Behaviour) func(int) Behaviour { return func(int) Behaviour { return b } }
	base := Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1}
	return []Scenario{
		{Name: "healthy (A/A)", RPS: 1000, Runs: runs(250), Canary: uniform(base)},
		{Name: "errors +5 points", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: "errors +1 point", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.01, LatencyScale: 1})},
		{Name: "p99 +100 ms", RPS: 1000, Runs: runs(100), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1.5})},
		{Name: "route 2% errors +20 points", RPS: 1000, Runs: runs(100), Bad: true, Canary: func(route int) Behaviour {
			if Routes[route].Name == "/api/orders" {
				return Behaviour{ErrorRate: stableErrorRate + 0.20, LatencyScale: 1}
			}
			return base
		}},
		{Name: "low traffic 10 rps, errors +5 points", RPS: 10, Runs: runs(40), Bad: true, Canary: uniform(Behaviour{ErrorRate: stableErrorRate + 0.05, LatencyScale: 1})},
		{Name: "low traffic 10 rps, healthy", RPS: 10, Runs: runs(40), Canary: uniform(base)},
	}
}

// Result gathers one policy's outcomes on one scenario.
type Result struct {
	Scenario Scenario
	Pave     []Outcome
	Flagger  []Outcome
}

const maxSimSeconds = 1200

// Run simulates every scenario with both policies on the same seeds.
func Run(scenarios []Scenario, seed uint64, workers int) []Result {
	out := make([]Result, len(scenarios))
	type job struct{ s, i int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for i, sc := range scenarios {
		out[i] = Result{Scenario: sc, Pave: make([]Outcome, sc.Runs), Flagger: make([]Outcome, sc.Runs)}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				sc := scenarios[j.s]
				s := seed + uint64(j.s)*1_000_003 + uint64(j.i)
				out[j.s].Pave[j.i] = runPave(sc, s, maxSimSeconds)
				out[j.s].Flagger[j.i] = runFlagger(sc, s, maxSimSeconds)
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
	BlastMedian               float64 // canary failed requests until the decision
	PromoteMedian, PromoteP95 float64 // seconds to 100%, over promoted runs
	SamplesMedian             float64 // canary requests until a rollback
	FalseRollbacks            int     // rollbacks of a healthy canary
	ShippedBad                int     // bad canaries promoted
}

func summarize(sc Scenario, os []Outcome) Summary {
	s := Summary{Runs: len(os)}
	var detect, blast, promote, samples []float64
	for _, o := range os {
		blast = append(blast, float64(o.CanaryFailed))
		switch o.Phase {
		case "rolled_back", "failed":
			s.Caught++
			detect = append(detect, o.DecidedAt)
			samples = append(samples, float64(o.CanarySamples))
			if !sc.Bad {
				s.FalseRollbacks++
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
	s.BlastMedian = quantile(blast, 0.5)
	s.PromoteMedian, s.PromoteP95 = quantile(promote, 0.5), quantile(promote, 0.95)
	s.SamplesMedian = quantile(samples, 0.5)
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
	flag.Parse()
	start := time.Now()
	scs := Scenarios(*scale)
	fmt.Fprintf(os.Stderr, "simulating %d scenarios, both policies, on %d workers...\n", len(scs), *workers)
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
	fmt.Fprintf(w, "Release safety: Pave's engine vs Flagger's Istio example, same simulated traffic\n")
	fmt.Fprintf(w, "(stable: %.1f%% errors, latency log-normal median %d ms, p99 200 ms; routes / 50%%, /api/items 48%%, /api/orders 2%%)\n\n",
		100*stableErrorRate, latencyMedianMs)
	fmt.Fprintf(w, "%-38s %-8s %5s %7s %6s %6s %8s %8s %8s %8s %7s\n",
		"scenario", "policy", "runs", "caught", "shipped", "paused", "det.p50", "det.p95", "blast50", "to100%", "samples")
	sums := map[string][2]Summary{}
	for _, r := range results {
		p, f := summarize(r.Scenario, r.Pave), summarize(r.Scenario, r.Flagger)
		sums[r.Scenario.Name] = [2]Summary{p, f}
		for i, s := range []Summary{p, f} {
			name := []string{"pave", "flagger"}[i]
			fmt.Fprintf(w, "%-38s %-8s %5d %7d %6d %6d %8s %8s %8s %8s %7s\n", r.Scenario.Name, name, s.Runs, s.Caught, s.ShippedBad,
				s.Paused, fmtS(s.DetectMedian), fmtS(s.DetectP95), fmtN(s.BlastMedian), fmtS(s.PromoteMedian), fmtN(s.SamplesMedian))
		}
	}
	for _, r := range results {
		if r.Scenario.Bad {
			continue
		}
		for i, o := range r.Pave {
			if o.Phase == "rolled_back" || o.Phase == "failed" {
				fmt.Fprintf(w, "  false rollback in %q run %d at %.0fs: %s\n", r.Scenario.Name, i, o.DecidedAt, o.Reason)
			}
		}
	}
	fmt.Fprintf(w, "\ncaught = rolled back; shipped = a bad canary promoted; det. = seconds from the canary's first weight to the rollback;\n")
	fmt.Fprintf(w, "blast50 = median failed requests served by the new version until the decision; samples = median canary requests until a rollback.\n")

	cfg := analysis.DefaultConfig()
	perTest := cfg.AlphaPerTest()
	fmt.Fprintf(w, "\nSamples to decision vs the SPRT optimum (Wald's expected sample size for an oracle that knows both rates, β=%.2g):\n", cfg.Beta)
	for _, c := range []struct {
		name string
		rate float64
	}{{"errors +5 points", stableErrorRate + 0.05}, {"errors +1 point", stableErrorRate + 0.01}} {
		s := sums[c.name][0]
		opt := waldOptimum(c.rate, perTest, cfg.Beta)
		fmt.Fprintf(w, "  %-20s pave median %6s canary samples; optimum %6.0f at the engine's per-test α=%.2g (%6.0f at α=%.2g); ratio %s\n",
			c.name, fmtN(s.SamplesMedian), opt, perTest, waldOptimum(c.rate, cfg.Alpha, cfg.Beta), cfg.Alpha, ratio(s.SamplesMedian, opt))
	}

	healthy := sums["healthy (A/A)"]
	e5 := sums["errors +5 points"]
	route := sums["route 2% errors +20 points"]
	lat := sums["p99 +100 ms"]
	fmt.Fprintf(w, "\nRatios (pave / flagger, same traffic):\n")
	fmt.Fprintf(w, "  +5 points detection median   %s vs %s = %s\n", fmtS(e5[0].DetectMedian), fmtS(e5[1].DetectMedian), ratio(e5[0].DetectMedian, e5[1].DetectMedian))
	fmt.Fprintf(w, "  +5 points blast radius       %s vs %s = %s\n", fmtN(e5[0].BlastMedian), fmtN(e5[1].BlastMedian), ratio(e5[0].BlastMedian, e5[1].BlastMedian))
	e1 := sums["errors +1 point"]
	fmt.Fprintf(w, "  +1 point blast radius        %s vs %s = %s\n", fmtN(e1[0].BlastMedian), fmtN(e1[1].BlastMedian), ratio(e1[0].BlastMedian, e1[1].BlastMedian))
	fmt.Fprintf(w, "  healthy time to 100%%         %s vs %s = %s\n", fmtS(healthy[0].PromoteMedian), fmtS(healthy[1].PromoteMedian), ratio(healthy[0].PromoteMedian, healthy[1].PromoteMedian))
	fr := func(s Summary) float64 { return float64(s.FalseRollbacks) / float64(s.Runs) }
	fmt.Fprintf(w, "  false rollbacks              %d/%d (%.2f%%) vs %d/%d (%.2f%%)\n", healthy[0].FalseRollbacks, healthy[0].Runs, 100*fr(healthy[0]),
		healthy[1].FalseRollbacks, healthy[1].Runs, 100*fr(healthy[1]))

	goals := []struct {
		name string
		ok   bool
	}{
		{fmt.Sprintf("+5-point errors caught in a median ≤ 20 s at 1%% weight (%s, %d/%d caught)", fmtS(e5[0].DetectMedian), e5[0].Caught, e5[0].Runs),
			e5[0].DetectMedian <= 20 && e5[0].Caught == e5[0].Runs},
		{fmt.Sprintf("blast radius ≤ 0.05x the baseline's on +5 points (%s)", ratio(e5[0].BlastMedian, e5[1].BlastMedian)),
			e5[0].BlastMedian <= 0.05*e5[1].BlastMedian},
		{fmt.Sprintf("route-local regression caught (%d/%d) and missed by the baseline (shipped %d/%d)", route[0].Caught, route[0].Runs, route[1].ShippedBad, route[1].Runs),
			route[0].Caught == route[0].Runs && route[1].ShippedBad > route[1].Runs/2},
		{fmt.Sprintf("latency regression caught (%d/%d)", lat[0].Caught, lat[0].Runs), lat[0].Caught == lat[0].Runs},
		{fmt.Sprintf("false rollbacks ≤ 1%% (%.2f%% over %d healthy runs)", 100*fr(healthy[0]), healthy[0].Runs), fr(healthy[0]) <= 0.01},
		{fmt.Sprintf("healthy releases reach 100%% in ≤ 0.25x the baseline's time (%s)", ratio(healthy[0].PromoteMedian, healthy[1].PromoteMedian)),
			healthy[0].PromoteMedian <= 0.25*healthy[1].PromoteMedian && healthy[0].Promoted == healthy[0].Runs-healthy[0].FalseRollbacks},
	}
	fmt.Fprintf(w, "\nGoals:\n")
	all := true
	for _, g := range goals {
		mark := "met   "
		if !g.ok {
			mark, all = "MISSED", false
		}
		fmt.Fprintf(w, "  [%s] %s\n", mark, g.name)
	}
	fmt.Fprintln(w, strings.Repeat("-", 20))
	return all
}
