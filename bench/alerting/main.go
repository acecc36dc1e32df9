// Command alerting is bench/alerting (issue 16): 30 days × 20 services of
// generated traffic at 1-minute resolution with labelled incidents, and
// three rule sets evaluated over it every minute: a plain threshold, the
// rules Sloth v0.16.0 generates for the same SLO, and Pave's SLO rules
// (internal/alert/slo). It prints recall, precision, pages, detection time
// and budget burnt before detection per rule set, and Pave ÷ Sloth.
//
// The rules are evaluated from per-minute counters (windows as sums of the
// recorded minutes), not by Prometheus' engine: see README.md, "Fidelity".
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	objective = 0.999
	budget    = 1 - objective
	day       = 1440 // minutes
)

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

func main() {
	days := flag.Int("days", 30, "days of history")
	services := flag.Int("services", 20, "services")
	seed := flag.Uint64("seed", 16, "random seed")
	flag.Parse()
	n := *days * day
	rng := rand.New(rand.NewPCG(*seed, 1))
	var incs []incident
	data := make([]series, *services)
	started := time.Now()
	for s := range *services {
		data[s], incs = generate(rng, s, n, incs)
	}
	gen := time.Since(started)
	sets := []ruleSet{threshold{}, sloth{}, pave{}}
	fmt.Printf("bench/alerting: %d services × %d days at 1-minute resolution, SLO %.1f%%, %d labelled incidents (generated in %s)\n\n",
		*services, *days, 100*objective, len(incs), gen.Round(time.Millisecond))
	results := map[string]result{}
	for _, rs := range sets {
		t0 := time.Now()
		results[rs.name()] = evaluate(rs, data, incs, n, *days)
		fmt.Printf("%-10s evaluated in %s\n", rs.name(), time.Since(t0).Round(time.Millisecond))
	}
	fmt.Println()
	report(sets, results, incs)
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

// window holds prefix sums of one service's counters, so every range
// [t-w, t) costs O(1).
type window struct {
	tot, err, pres []float64
}

func prefix(d series) window {
	w := window{tot: make([]float64, len(d.total)+1), err: make([]float64, len(d.total)+1), pres: make([]float64, len(d.total)+1)}
	for i := range d.total {
		p := 0.0
		if d.present[i] {
			p = 1
			w.tot[i+1], w.err[i+1] = w.tot[i]+d.total[i], w.err[i]+d.errs[i]
		} else {
			w.tot[i+1], w.err[i+1] = w.tot[i], w.err[i]
		}
		w.pres[i+1] = w.pres[i] + p
	}
	return w
}

// sum returns requests and errors over the w minutes ending at t
// (inclusive), and whether the series had any sample there.
func (x window) sum(t, w int) (tot, errs float64, ok bool) {
	a := max(0, t+1-w)
	return x.tot[t+1] - x.tot[a], x.err[t+1] - x.err[a], x.pres[t+1]-x.pres[a] > 0
}

// ratio is a recorded error ratio: no value without samples or requests
// (PromQL's 0/0 is NaN, and a comparison with NaN is false).
func (x window) ratio(t, w int) (float64, bool) {
	tot, errs, ok := x.sum(t, w)
	if !ok || tot == 0 {
		return 0, false
	}
	return errs / tot, true
}

// An alert is one rule's condition with `for` and `keep_firing_for`.
type alert struct {
	name, severity string
	forM, keepM    int
	cond           func(x window, t int) bool
}

type ruleSet interface {
	name() string
	alerts() []alert
}

type threshold struct{}

func (threshold) name() string { return "threshold" }
func (threshold) alerts() []alert {
	return []alert{{name: "ErrorRatioHigh", severity: "page", forM: 5, cond: func(x window, t int) bool {
		r, ok := x.ratio(t, 5)
		return ok && r > 0.01
	}}}
}

// sloth is the shape Sloth v0.16.0 generates (slo:sli_error:ratio_rate*
// recordings, alerts without `for`, no traffic guard, no absent guard).
type sloth struct{}

func (sloth) name() string { return "sloth" }
func (sloth) alerts() []alert {
	both := func(f float64, long, short int) func(x window, t int) bool {
		return func(x window, t int) bool {
			l, ok1 := x.ratio(t, long)
			s, ok2 := x.ratio(t, short)
			return ok1 && ok2 && l > f*budget && s > f*budget
		}
	}
	or := func(a, b func(window, int) bool) func(window, int) bool {
		return func(x window, t int) bool { return a(x, t) || b(x, t) }
	}
	return []alert{
		{name: "SlothPage", severity: "page", cond: or(both(14.4, 60, 5), both(6, 360, 30))},
		{name: "SlothTicket", severity: "ticket", cond: or(both(3, day, 120), both(1, 3*day, 360))},
	}
}

// pave is internal/alert/slo's rule file for one availability SLO with the
// default minFailures (3).
type pave struct{}

func (pave) name() string { return "pave" }
func (pave) alerts() []alert {
	burn := func(f float64, long, short, keep int, sev string) alert {
		minReq := math.Ceil(3 / (f * budget))
		return alert{name: fmt.Sprintf("ErrorBudgetBurn/%dm", long), severity: sev, keepM: keep, cond: func(x window, t int) bool {
			l, ok1 := x.ratio(t, long)
			s, ok2 := x.ratio(t, short)
			tot, _, _ := x.sum(t, long)
			return ok1 && ok2 && l > f*budget && s > f*budget && tot >= minReq
		}}
	}
	return []alert{
		burn(14.4, 60, 5, 5, "page"),
		burn(6, 360, 30, 10, "page"),
		burn(1, 3*day, 360, 30, "ticket"),
		{name: "SLOTrafficStopped", severity: "page", keepM: 5, cond: func(x window, t int) bool {
			if t < 70 {
				return false
			}
			quiet, _, ok := x.sum(t, 10)
			before, _, _ := x.sum(t-10, 60)
			return ok && quiet == 0 && before >= 120
		}},
		{name: "SLOSeriesAbsent", severity: "page", forM: 10, keepM: 10, cond: func(x window, t int) bool {
			_, _, recent := x.sum(t, 5) // absent(): no sample within the 5m lookback
			_, _, day1 := x.sum(t, day)
			return !recent && day1
		}},
	}
}

// episode is one alert firing from start to end (minutes).
type episode struct {
	svc        int
	alert      string
	severity   string
	start, end int
}

func run(a alert, x window, svc, n int) []episode {
	var out []episode
	held, lastTrue, firing := 0, -1, false
	var cur episode
	for t := range n {
		c := a.cond(x, t)
		if c {
			held++
			lastTrue = t
		} else {
			held = 0
		}
		switch {
		case !firing && c && held > a.forM:
			firing, cur = true, episode{svc: svc, alert: a.name, severity: a.severity, start: t}
		case firing && !c && t-lastTrue > a.keepM:
			cur.end = t
			out = append(out, cur)
			firing = false
		}
	}
	if firing {
		cur.end = n
		out = append(out, cur)
	}
	return out
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

const grace = 60 // an episode starting up to 1h after an incident ends belongs to it

func evaluate(rs ruleSet, data []series, incs []incident, n, days int) result {
	r := result{detected: map[int]int{}, burnt: map[int]float64{}, weeks: float64(days) / 7, monthly: make([]float64, len(data))}
	for s, d := range data {
		x := prefix(d)
		r.monthly[s] = budget * x.tot[n] * 30 / float64(days)
		for _, a := range rs.alerts() {
			r.episodes = append(r.episodes, run(a, x, s, n)...)
		}
	}
	for _, e := range r.episodes {
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
		if os.Getenv("BENCH_DEBUG") != "" && rs.name() == "pave" {
			fmt.Fprintf(os.Stderr, "false alert: svc %d %s %s day %.2f for %d min\n", e.svc, e.alert, e.severity, float64(e.start)/day, e.end-e.start)
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
		head += rs.name() + "\t"
	}
	fmt.Fprintln(tw, head+"pave ÷ sloth\t")
	row := func(label string, f func(result) float64, format string) {
		line := label + "\t"
		for _, rs := range sets {
			line += fmt.Sprintf(format, f(res[rs.name()])) + "\t"
		}
		p, s := f(res["pave"]), f(res["sloth"])
		ratio := "-"
		if s != 0 && !math.IsNaN(s) && !math.IsNaN(p) && !math.IsInf(s, 0) {
			ratio = fmt.Sprintf("%.2f", p/s)
		}
		fmt.Fprintln(tw, line+ratio+"\t")
	}
	for _, k := range kinds {
		row("recall: "+string(k), func(r result) float64 { return recall(r, incs, k) }, "%.2f")
	}
	row("recall (all must-detect)", func(r result) float64 { return recall(r, incs, "") }, "%.2f")
	row("precision", func(r result) float64 { return float64(r.tp) / math.Max(1, float64(r.tp+r.fp)) }, "%.3f")
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
