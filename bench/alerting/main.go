// Command alerting is bench/alerting (issue 16): 30 days × 20 services of
// generated traffic at 1-minute resolution with labelled incidents, and
// three rule sets evaluated over it every minute by Prometheus' own rules
// and promql engine (internal/alert/backtest.Replay: one range query per
// rule, alert state by the rule's own Eval at each minute): a plain
// threshold, the rules `sloth generate` (v0.16.0, a separate tool) writes
// for the same SLO, and Pave's SLO rules (internal/alert/slo). It prints
// recall, precision, pages, detection time and budget burnt before
// detection per rule set, and Pave ÷ Sloth.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pave-platform/pave/internal/alert/backtest"
	"github.com/prometheus/prometheus/model/labels"
)

const (
	objective = 0.999
	budget    = 1 - objective
	day       = 1440 // minutes
)

// start is the history's first minute (a Monday).
var start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

type kind string

const (
	fastBurn kind = "fast burn (100% for 5m)"
	slowBurn kind = "slow burn (2% for 6h)"
	outage   kind = "outage, zero traffic (30m)"
	stopped  kind = "series stops (2h)"
	blip     kind = "blip (10% for 30s)"
	night    kind = "night noise (single errors)"
)

// mustDetect: the incidents an alert must catch; the others must stay quiet.
var mustDetect = map[kind]bool{fastBurn: true, slowBurn: true, outage: true, stopped: true}

type incident struct {
	svc        int
	kind       kind
	start, end int // minutes, [start, end)
	errRatio   float64
}

// series is one service's per-minute counters; present is false while
// the series does not exist (instances gone, scrape failing).
type series struct {
	total, errs []float64
	present     []bool
}

// stepwise: -stepwise (backtest.Options.Stepwise).
var stepwise bool

func main() {
	days := flag.Int("days", 30, "days of history")
	services := flag.Int("services", 20, "services")
	seed := flag.Uint64("seed", 16, "random seed")
	parallel := flag.Int("parallel", runtime.GOMAXPROCS(0), "replays run at once (one per service and rule set)")
	only := flag.String("sets", "threshold,sloth,pave", "rule sets to evaluate (comma-separated)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.BoolVar(&stepwise, "stepwise", false, "evaluate every rule at every minute as Prometheus' rules manager does (about 15x slower; the default range evaluation gives the same alerts)")
	flag.Parse()
	if *days < 10 || *services < 1 {
		// Each service has nine incidents on separate days after the first.
		fmt.Fprintf(os.Stderr, "bench/alerting: -days %d -services %d: want at least 10 days and 1 service\n", *days, *services)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/alerting:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench/alerting:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *days, *services, *seed, *parallel, strings.Split(*only, ",")); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/alerting:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, days, services int, seed uint64, parallel int, only []string) error {
	// Sloth first: without it there is no comparison to make.
	slothBin, slothVersion := "", "not evaluated"
	if slices.Contains(only, "sloth") {
		var err error
		if slothBin, slothVersion, err = findSloth(); err != nil {
			return err
		}
	}
	n := days * day
	rng := rand.New(rand.NewPCG(seed, 1))
	var incs []incident
	data := make([]series, services)
	for s := range services {
		data[s], incs = generate(rng, s, n, incs)
	}
	if os.Getenv("BENCH_DEBUG") != "" {
		for _, in := range incs {
			if mustDetect[in.kind] {
				fmt.Fprintf(os.Stderr, "incident: %s %s day %.2f for %d min\n", svcName(in.svc), in.kind, float64(in.start)/day, in.end-in.start)
			}
		}
	}
	dir, err := os.MkdirTemp("", "bench-alerting-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sets, err := ruleSets(ctx, dir, services, slothBin, only)
	if err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("bench/alerting: %d services × %d days at 1-minute resolution, SLO %.1f%%, %d labelled incidents\n", services, days, 100*objective, len(incs))
	how := "one range query per rule over the history, alert state by Prometheus' AlertingRule.Eval at every minute"
	if stepwise {
		how = "Prometheus' rules.Group.Eval at every minute"
	}
	fmt.Printf("rules evaluated by internal/alert/backtest: %s; sloth: %s\n", how, slothVersion)
	fmt.Printf("load average at start: %s\n", strings.TrimSpace(string(load)))
	results := map[string]result{}
	for _, rs := range sets {
		t0 := time.Now()
		eps, err := replay(ctx, rs, data, n, parallel)
		if err != nil {
			return fmt.Errorf("%s: %w", rs.name, err)
		}
		results[rs.name] = evaluate(rs.name, eps, data, incs, n, days)
		fmt.Printf("%-10s evaluated in %s\n", rs.name, time.Since(t0).Round(time.Second))
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Printf("load average at end: %s\n\n", strings.TrimSpace(string(load)))
	report(sets, results, incs)
	return nil
}

// toSeries turns one service's per-minute counts into the counters kit
// exports (http_server_requests_total by status class), one sample a
// minute, none while the series is absent.
func toSeries(svc int, d series) []backtest.Series {
	name := svcName(svc)
	ok := backtest.Series{Labels: labels.FromStrings("__name__", "http_server_requests_total", "service", name, "status_class", "2xx")}
	bad := backtest.Series{Labels: labels.FromStrings("__name__", "http_server_requests_total", "service", name, "status_class", "5xx")}
	var good, fail float64
	for m := range d.total {
		good += d.total[m] - d.errs[m]
		fail += d.errs[m]
		if !d.present[m] {
			continue
		}
		t := start.Add(time.Duration(m) * time.Minute).UnixMilli()
		ok.Samples = append(ok.Samples, backtest.Sample{T: t, V: good})
		bad.Samples = append(bad.Samples, backtest.Sample{T: t, V: fail})
	}
	return []backtest.Series{ok, bad}
}

func svcName(s int) string { return fmt.Sprintf("svc%02d", s) }

// replay runs one rule set over every service, each service in its own
// Replay (its rules read only its series), parallel at most at once.
func replay(ctx context.Context, rs ruleSet, data []series, n, parallel int) ([]episode, error) {
	var (
		mu   sync.Mutex
		out  []episode
		errs []error
		wg   sync.WaitGroup
		done int
	)
	sem := make(chan struct{}, max(1, parallel))
	t0 := time.Now()
	for s := range data {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			firings, err := backtest.Replay(ctx, backtest.Options{
				RuleFiles: rs.files[s], Series: toSeries(s, data[s]),
				From: start, To: start.Add(time.Duration(n-1) * time.Minute), Step: time.Minute,
				Severities: []string{"page", "ticket"}, Prune: true, Stepwise: stepwise,
			})
			mu.Lock()
			defer mu.Unlock()
			done++
			fmt.Fprintf(os.Stderr, "\r%-10s %d/%d services replayed (%s)", rs.name, done, len(data), time.Since(t0).Round(time.Second))
			if done == len(data) {
				fmt.Fprintln(os.Stderr)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", svcName(s), err))
				return
			}
			for _, f := range firings {
				out = append(out, episode{svc: s, alert: f.Alert + f.Labels["window"], severity: f.Labels["severity"],
					start: int(f.Start.Sub(start) / time.Minute), end: int(f.End.Sub(start)/time.Minute) + 1})
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].svc != out[j].svc {
			return out[i].svc < out[j].svc
		}
		return out[i].start < out[j].start
	})
	return out, nil
}

// generate makes one service's 30 days: diurnal traffic, a baseline error
// ratio well inside the objective, and its incidents.
func generate(rng *rand.Rand, s, n int, incs []incident) (series, []incident) {
	d := series{total: make([]float64, n), errs: make([]float64, n), present: make([]bool, n)}
	peak := []float64{600, 200, 60}[s%3] // requests a minute at the daily peak
	lowNights := s%5 < 2                 // 8 of 20: about one request a minute at night
	for m := range n {
		h := float64(m%day) / 60
		f := 0.55 + 0.45*math.Sin((h-9)/24*2*math.Pi)
		if lowNights && (h < 6 || h >= 23) {
			f = 1.2 / peak
		}
		d.total[m] = poisson(rng, peak*f)
		d.errs[m] = binomial(rng, d.total[m], 0.0002)
		d.present[m] = true
	}
	// One incident of each must-detect kind, on separate days, daytime.
	daysFree := rng.Perm(n/day - 1)
	next := func() int { dd := daysFree[0]; daysFree = daysFree[1:]; return (dd+1)*day + 10*60 + rng.IntN(6*60) }
	add := func(k kind, start, dur int, ratio float64) {
		in := incident{svc: s, kind: k, start: start, end: start + dur, errRatio: ratio}
		incs = append(incs, in)
		for m := in.start; m < in.end && m < n; m++ {
			switch k {
			case outage:
				d.total[m], d.errs[m] = 0, 0
			case stopped:
				d.present[m] = false
			case blip:
				d.errs[m] = binomial(rng, d.total[m], ratio/2) // 30 s of the minute
			default:
				d.errs[m] = binomial(rng, d.total[m], ratio)
			}
		}
	}
	add(fastBurn, next(), 5, 1)
	add(slowBurn, next(), 6*60, 0.02)
	add(outage, next(), 30, 0)
	add(stopped, next(), 120, 0)
	for range 5 {
		add(blip, next()-rng.IntN(4*60), 1, 0.10)
	}
	if lowNights {
		// Three random single errors a night, every night.
		for dd := range n / day {
			for range 3 {
				m := dd*day + rng.IntN(6*60)
				if d.total[m] > 0 && d.present[m] {
					d.errs[m] = max(d.errs[m], 1)
					incs = append(incs, incident{svc: s, kind: night, start: m, end: m + 1})
				}
			}
		}
	}
	return d, incs
}

func poisson(rng *rand.Rand, l float64) float64 {
	if l > 30 {
		return math.Max(0, math.Round(l+math.Sqrt(l)*rng.NormFloat64()))
	}
	k, p, e := 0.0, 1.0, math.Exp(-l)
	for {
		p *= rng.Float64()
		if p <= e {
			return k
		}
		k++
	}
}

func binomial(rng *rand.Rand, n, p float64) float64 {
	if n*p > 30 && n*(1-p) > 30 {
		return math.Min(n, math.Max(0, math.Round(n*p+math.Sqrt(n*p*(1-p))*rng.NormFloat64())))
	}
	if n*p < 30 {
		return math.Min(n, poisson(rng, n*p))
	}
	return n - math.Min(n, poisson(rng, n*(1-p)))
}

// episode is one alert (one rule's label set) firing from start to end
// (minutes, end exclusive).
type episode struct {
	svc        int
	alert      string
	severity   string
	start, end int
}

type result struct {
	episodes []episode
	detected map[int]int // incident index → minutes to detection
	tp, fp   int
	pageTP   int
	noise    int // page episodes during blips and night noise
	pages    int
	weeks    float64
	burnt    map[int]float64 // incident → share of the monthly budget burnt before detection
	monthly  []float64
}

// grace: an episode starting up to 1h after an incident ends belongs to it.
const grace = 60

// evaluate scores the episodes: every episode (page or ticket) is one
// notification; it is true when it starts during a must-detect incident
// of its service or up to grace after it, false otherwise.
func evaluate(name string, eps []episode, data []series, incs []incident, n, days int) result {
	r := result{episodes: eps, detected: map[int]int{}, burnt: map[int]float64{}, weeks: float64(days) / 7, monthly: make([]float64, len(data))}
	for s, d := range data {
		tot := 0.0
		for m := range n {
			if d.present[m] {
				tot += d.total[m]
			}
		}
		r.monthly[s] = budget * tot * 30 / float64(days)
	}
	for _, e := range eps {
		if e.severity == "page" {
			r.pages++
		}
		match := false
		for i, in := range incs {
			if in.svc != e.svc || !mustDetect[in.kind] || e.start < in.start || e.start >= in.end+grace {
				continue
			}
			match = true
			if prev, ok := r.detected[i]; !ok || e.start-in.start < prev {
				r.detected[i] = e.start - in.start
			}
		}
		if match {
			r.tp++
			if e.severity == "page" {
				r.pageTP++
			}
			continue
		}
		r.fp++
		if os.Getenv("BENCH_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "%s false alert: %s %s %s day %.2f for %d min\n", name, svcName(e.svc), e.alert, e.severity, float64(e.start)/day, e.end-e.start)
		}
		for _, in := range incs {
			if in.svc == e.svc && !mustDetect[in.kind] && e.start >= in.start && e.start < in.end+grace && e.severity == "page" {
				r.noise++
				break
			}
		}
	}
	for i, dt := range r.detected {
		in := incs[i]
		x := data[in.svc]
		errs := 0.0
		for m := in.start; m <= in.start+dt && m < len(x.errs); m++ {
			errs += x.errs[m]
		}
		r.burnt[i] = errs / r.monthly[in.svc]
	}
	return r
}

// workbook is the SRE Workbook's detection time for an error ratio e:
// threshold × long window × budget ÷ e, for the fastest tier it crosses.
func workbook(e float64) float64 {
	best := math.Inf(1)
	for _, t := range []struct{ f, long float64 }{{14.4, 60}, {6, 360}, {1, 3 * day}} {
		if e > t.f*budget {
			best = math.Min(best, t.f*t.long*budget/e)
		}
	}
	return best
}

func report(sets []ruleSet, res map[string]result, incs []incident) {
	kinds := []kind{fastBurn, slowBurn, outage, stopped}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "\t"
	for _, rs := range sets {
		head += rs.name + "\t"
	}
	fmt.Fprintln(tw, head+"pave ÷ sloth\t")
	row := func(label string, f func(result) float64, format string) {
		line := label + "\t"
		for _, rs := range sets {
			line += fmt.Sprintf(format, f(res[rs.name])) + "\t"
		}
		p, s := f(res["pave"]), f(res["sloth"])
		_, hasP := res["pave"]
		_, hasS := res["sloth"]
		ratio := "-"
		if hasP && hasS && s != 0 && !math.IsNaN(s) && !math.IsNaN(p) && !math.IsInf(s, 0) {
			ratio = fmt.Sprintf("%.2f", p/s)
		}
		fmt.Fprintln(tw, line+ratio+"\t")
	}
	for _, k := range kinds {
		row("recall: "+string(k), func(r result) float64 { return recall(r, incs, k) }, "%.2f")
	}
	row("recall (all must-detect)", func(r result) float64 { return recall(r, incs, "") }, "%.2f")
	row("precision (every page and ticket)", func(r result) float64 { return float64(r.tp) / math.Max(1, float64(r.tp+r.fp)) }, "%.3f")
	row("precision of pages", func(r result) float64 { return float64(r.pageTP) / math.Max(1, float64(r.pages)) }, "%.3f")
	row("false alerts (episodes)", func(r result) float64 { return float64(r.fp) }, "%.0f")
	row("pages from blips / night noise", func(r result) float64 { return float64(r.noise) }, "%.0f")
	row("pages per week (20 services)", func(r result) float64 { return float64(r.pages) / r.weeks }, "%.1f")
	for _, k := range kinds {
		row("median detection min: "+string(k), func(r result) float64 { return medianDetect(r, incs, k) }, "%.0f")
	}
	row("median budget burnt before detection %", func(r result) float64 { return 100 * medianBurnt(r) }, "%.2f")
	tw.Flush()
	fmt.Printf("\nWorkbook formula: fast burn %.1f min, slow burn %.1f min (threshold × long window × budget ÷ error ratio)\n",
		workbook(1), workbook(0.02))
	var budgets []string
	for _, k := range []kind{fastBurn, slowBurn, blip} {
		e := map[kind]float64{fastBurn: 5 * 1, slowBurn: 360 * 0.02, blip: 0.5 * 0.1}[k]
		budgets = append(budgets, fmt.Sprintf("%s %.2f%%", k, 100*e/(30*day*budget)))
	}
	fmt.Println("monthly budget an incident burns at constant traffic: " + strings.Join(budgets, ", "))
}

func recall(r result, incs []incident, k kind) float64 {
	n, hit := 0, 0
	for i, in := range incs {
		if !mustDetect[in.kind] || (k != "" && in.kind != k) {
			continue
		}
		n++
		if _, ok := r.detected[i]; ok {
			hit++
		}
	}
	return float64(hit) / math.Max(1, float64(n))
}

func medianDetect(r result, incs []incident, k kind) float64 {
	var v []float64
	for i, dt := range r.detected {
		if incs[i].kind == k {
			v = append(v, float64(dt))
		}
	}
	return median(v)
}

func medianBurnt(r result) float64 {
	var v []float64
	for _, b := range r.burnt {
		v = append(v, b)
	}
	return median(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	return v[len(v)/2]
}
