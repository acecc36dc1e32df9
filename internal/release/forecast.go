package release

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// The forecast (status.forecast): how long each step should take to
// pass a canary as good as stable at the service's traffic, and whether
// that fits the release's time budget. A low-traffic service's release
// that will likely pause for a person says so when it is created, with
// the remedies, rather than after its budget ran out. Before the release
// starts the traffic comes from the TrafficSource (`pave up`'s metrics
// store); while it runs, from the current step's own window. The judges'
// requirements are analysis.Forecast's.

// Traffic is a service's recent live traffic.
type Traffic struct {
	// Rate is requests per second, every version; Errors failed ones.
	Rate, Errors float64
	// Routes is requests per second by route template ("GET /v1/pay"):
	// what a shadow step could mirror.
	Routes map[string]float64
	// Source says where and over what it was measured.
	Source string
}

// TrafficSource tells a service's recent live traffic.
type TrafficSource interface {
	Traffic(ctx context.Context, service string) (Traffic, error)
}

// TrafficFunc adapts a function to TrafficSource.
type TrafficFunc func(ctx context.Context, service string) (Traffic, error)

// Traffic calls f.
func (f TrafficFunc) Traffic(ctx context.Context, service string) (Traffic, error) {
	return f(ctx, service)
}

// WithTraffic lets the engine forecast a release when it is created.
func WithTraffic(t TrafficSource) Option { return func(e *Engine) { e.traffic = t } }

// Forecast is the expected course of a release for a canary as good as
// stable (status.forecast).
type Forecast struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	// Rate is the service's requests per second, ErrorRate stable's
	// error rate, Mirrored the copies per second a shadow step sends.
	Rate      float64 `json:"rate"`
	ErrorRate float64 `json:"errorRate"`
	Mirrored  float64 `json:"mirrored,omitempty"`
	// Steps are the steps still to pass, the current one first.
	Steps []ForecastStep `json:"steps"`
	// Expected is the expected time until the last judged step passes
	// (0 with Never: the judges never decide at this traffic).
	Expected Duration `json:"expected,omitempty"`
	Never    bool     `json:"never,omitempty"`
	// Budget is what the spec allows: what is left of maxDuration, or
	// each step's stepDuration + maxHold.
	Budget Duration `json:"budget"`
	// PauseLikely: the release will likely end undecided, paused for a
	// person (or failed with onHoldTimeout: fail). Warning says why and
	// what would help.
	PauseLikely bool   `json:"pauseLikely"`
	Warning     string `json:"warning,omitempty"`
	// ShadowAdded says that the release added a shadow step of its own
	// at low traffic, and why (addShadowIfLowTraffic).
	ShadowAdded string `json:"shadowAdded,omitempty"`
}

// ForecastStep is one step's expected need.
type ForecastStep struct {
	// Step is the step's index (-1: the shadow step); Weight its share.
	Step   int     `json:"step"`
	Weight Percent `json:"weight"`
	// Expected is the time the step should still take (0 with Never),
	// Samples the canary requests (live and mirrored) it needs in all,
	// Judge what sets it (min-time, min-samples, error-rate, latency).
	Expected Duration `json:"expected,omitempty"`
	Never    bool     `json:"never,omitempty"`
	Samples  uint64   `json:"samples"`
	Judge    string   `json:"judge"`
}

// forecastAtCreate forecasts a new release from the service's recent
// traffic; none when there is no source or nothing to judge.
func (e *Engine) forecastAtCreate(ctx context.Context, r *Release) {
	if e.traffic == nil || r.Status.Stable == "" || len(r.Spec.Steps) < 2 {
		return
	}
	t, err := e.traffic.Traffic(ctx, r.Spec.Service)
	if err != nil {
		e.log.Info("no traffic forecast", "release", r.Metadata.Name, "err", err)
		return
	}
	r.Status.Forecast = r.Spec.forecast(analysis.Evidence{}, t, -1, 0, 0, -1, e.clock.Now().UTC())
	e.addShadowIfLowTraffic(ctx, r, t)
}

// addShadowIfLowTraffic begins a release with a shadow step of its own
// when all of these hold: it has a time budget (spec.maxDuration: it is
// to decide on its own), no shadow step was asked for and
// spec.autoShadow is not false, the forecast says the budget will likely
// run out, every cluster's router can mirror, some of the service's
// traffic is mirrorable (GET/HEAD, or marked safe in .pave.yaml), and the
// forecast with the shadow step is sooner. At low traffic the canary's
// small share alone cannot decide (docs/release.md, "Low traffic"); the
// mirrored pairs can, before any user is served. The shadow step is the
// default one (DefaultShadowDuration, every mirrorable request), and the
// forecast says it was added (status.forecast.shadowAdded).
func (e *Engine) addShadowIfLowTraffic(ctx context.Context, r *Release, t Traffic) {
	f := r.Status.Forecast
	if f == nil || !f.PauseLikely || r.Spec.Shadow != nil || r.Spec.MaxDuration == 0 || (r.Spec.AutoShadow != nil && !*r.Spec.AutoShadow) {
		return
	}
	seams, err := e.seams(ctx, r)
	if err != nil {
		return
	}
	for _, cs := range r.Status.Clusters {
		if _, ok := seams[cs.Name].Router.(traffic.Mirrorer); !ok {
			return
		}
	}
	trial := r.Spec
	trial.Shadow = &ShadowSpec{IgnoreAnswers: true}
	trial.Shadow.defaults()
	if err := withServiceShadowRules(&trial); err != nil || trial.Shadow.validate() != nil {
		return
	}
	if trial.Shadow.mirrorable(t.Routes) <= 0 {
		return
	}
	g := trial.forecast(analysis.Evidence{}, t, -1, 0, 0, -1, f.At)
	if g.Never || (!f.Never && g.Expected >= f.Expected) {
		return
	}
	g.ShadowAdded = fmt.Sprintf("added a %s shadow step: at %s requests/s the canary's own share would likely not decide within spec.maxDuration (%s, %s); "+
		"%s of stable's requests/s can be mirrored to it and judged before any user is served (spec.autoShadow: false or --shadow 0 opts out)",
		short(trial.Shadow.Duration.D()), rate(f.Rate), short(r.Spec.MaxDuration.D()), outlookOf(f), rate(g.Mirrored))
	r.Spec.Shadow = trial.Shadow
	r.Status.Forecast = g
}

// outlookOf says how long the forecast expects the release to take.
func outlookOf(f *Forecast) string {
	if f.Never {
		return "the judges could not decide at all"
	}
	return "expected " + short(f.Expected.D())
}

// forecastRunning updates the forecast from the current step's window
// once it spans long enough to tell a rate.
func (r *Release) forecastRunning(now time.Time, w analysis.Window) {
	elapsed := now.Sub(r.Status.StepStarted)
	if elapsed < 10*time.Second || r.Status.Gate {
		return
	}
	secs := elapsed.Seconds()
	t := Traffic{Rate: float64(w.Canary.Total.Requests+w.Stable.Total.Requests) / secs, Routes: map[string]float64{},
		Source: fmt.Sprintf("this step's window (%s)", elapsed.Round(time.Second))}
	t.Errors = t.Rate * w.Stable.Total.ErrorRate()
	for _, v := range []map[string]stats.Counts{w.Stable.Routes, w.Canary.Routes} {
		for route, c := range v {
			t.Routes[route] += float64(c.Requests) / secs
		}
	}
	mirrored := -1.0 // no mirror: what one would send
	if w.Mirrored != nil {
		mirrored = float64(w.Mirrored.Canary.Total.Requests) / secs
	}
	from := r.Status.Step
	if r.Status.Shadow != nil && r.Status.Shadow.Active {
		from = -1
	}
	var used time.Duration
	if !r.Status.Started.IsZero() {
		used = now.Sub(r.Status.Started)
	}
	f := r.Spec.forecast(r.Status.Evidence, t, from, elapsed, used, mirrored, now)
	if r.Status.Forecast != nil {
		f.ShadowAdded = r.Status.Forecast.ShadowAdded // said once, at create, and kept
	}
	r.Status.Forecast = f
}

// forecast is the forecast of the steps from step from (-1: the shadow
// step, when the spec has one) on, stepElapsed into the current one and
// used of maxDuration spent; mirrored is the measured mirror rate (< 0:
// estimated from the routes).
func (s Spec) forecast(ev analysis.Evidence, t Traffic, from int, stepElapsed, used time.Duration, mirrored float64, now time.Time) *Forecast {
	return s.project(ev, t, from, stepElapsed, used, mirrored, now, true)
}

// project is forecast, with the warning's remedies when advise is set
// (the remedies' own forecasts are projected without).
func (s Spec) project(ev analysis.Evidence, t Traffic, from int, stepElapsed, used time.Duration, mirrored float64, now time.Time, advise bool) *Forecast {
	f := &Forecast{At: now, Source: t.Source, Rate: t.Rate}
	if t.Rate > 0 {
		f.ErrorRate = t.Errors / t.Rate
	}
	load := analysis.Load{Rate: t.Rate, ErrorRate: f.ErrorRate}
	if s.Shadow != nil {
		load.Mirrored = mirrored
		if mirrored < 0 {
			load.Mirrored = s.Shadow.mirrorable(t.Routes)
		}
		f.Mirrored = load.Mirrored
	}
	if ev.Segments == 0 {
		ev = analysis.NewEvidence(1)
		if s.Shadow != nil {
			ev = ev.WithFields(s.Analysis.MaxFields)
		}
	}
	plan, idx := s.plan(from)
	needs := s.Analysis.Forecast(ev, load, plan)
	var total float64
	for i, n := range needs {
		st := ForecastStep{Step: idx[i], Judge: n.Judge}
		if idx[i] >= 0 {
			st.Weight = s.Steps[idx[i]]
		}
		if math.IsInf(n.Seconds, 1) || n.Seconds > 1e9 {
			st.Never, f.Never = true, true
		} else {
			left := n.Seconds
			if i == 0 {
				left = math.Max(0, left-stepElapsed.Seconds())
			}
			st.Expected = Duration(time.Duration(left * float64(time.Second)).Round(time.Second))
			st.Samples = uint64(math.Ceil(n.Samples - 1e-6)) // 100 samples, not 101 after a float round trip
			total += left
		}
		f.Steps = append(f.Steps, st)
	}
	if !f.Never {
		f.Expected = Duration(time.Duration(total * float64(time.Second)).Round(time.Second))
	}
	// The budget: the engine pauses a step held past maxHold after its
	// stepDuration, or, with maxDuration, when the release's time is up.
	var over *ForecastStep
	if s.MaxDuration > 0 {
		f.Budget = Duration(max(0, s.MaxDuration.D()-used))
		f.PauseLikely = f.Never || f.Expected > f.Budget
	} else {
		for i, n := range needs {
			limit := s.StepDuration.D() + s.MaxHold.D()
			if idx[i] < 0 {
				limit = max(s.StepDuration.D(), s.Shadow.Duration.D()) + s.MaxHold.D()
			}
			f.Budget += Duration(limit)
			if over == nil && (math.IsInf(n.Seconds, 1) || n.Seconds > limit.Seconds()) {
				over = &f.Steps[i]
			}
		}
		f.PauseLikely = over != nil
	}
	if f.PauseLikely && advise {
		f.Warning = s.warning(f, over, t, from, now)
	}
	return f
}

// plan lists the judged steps from step from on: the shadow step, then
// each step before 100% (the one before 100% must accept the canary).
func (s Spec) plan(from int) ([]analysis.StepPlan, []int) {
	var plan []analysis.StepPlan
	var idx []int
	if from < 0 && s.Shadow != nil {
		plan = append(plan, analysis.StepPlan{Mirrored: true, MinSeconds: s.Shadow.Duration.D().Seconds(), MinSamples: s.Shadow.Samples})
		idx = append(idx, -1)
	}
	for k := max(from, 0); k < len(s.Steps) && int64(s.Steps[k]) < traffic.Total; k++ {
		final := k+1 < len(s.Steps) && int64(s.Steps[k+1]) == traffic.Total
		plan = append(plan, analysis.StepPlan{Share: float64(s.Steps[k]) / float64(traffic.Total), Mirrored: s.Shadow != nil,
			Final: final, MinSeconds: s.StepDuration.D().Seconds(), MinSamples: s.StepSamples})
		idx = append(idx, k)
	}
	return plan, idx
}

// mirrorable is the requests per second a shadow step would copy: the
// routes whose method is GET or HEAD, or that are marked safe, times the
// share asked for. A route counted without its method ("/v1" when the
// service reports no templates) is not counted: the forecast errs on the
// side of warning.
func (sh *ShadowSpec) mirrorable(routes map[string]float64) float64 {
	var sum float64
	for route, rate := range routes {
		method, path, ok := strings.Cut(route, " ")
		if ok && shadow.Mirrorable(method, route, path, sh.SafeRoutes) {
			sum += rate
		}
	}
	share := 1.0
	if sh.Percent > 0 {
		share = float64(sh.Percent) / float64(traffic.Total)
	}
	return sum * share
}

// warning says why the release will likely pause and what would help,
// each remedy with the forecast it would have.
func (s Spec) warning(f *Forecast, over *ForecastStep, t Traffic, from int, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "at %s requests/s (%s) ", rate(f.Rate), f.Source)
	where := func(st *ForecastStep) string {
		if st.Step < 0 {
			return "the shadow step"
		}
		return fmt.Sprintf("step %d (%s)", st.Step+1, st.Weight)
	}
	switch {
	case f.Rate == 0:
		b.WriteString("the judges get no samples")
	case over != nil && over.Never:
		fmt.Fprintf(&b, "the judges cannot decide %s", where(over))
	case over != nil:
		fmt.Fprintf(&b, "%s needs about %d canary requests (%s), about %s, more than its stepDuration + maxHold (%s)",
			where(over), over.Samples, over.Judge, short(over.Expected.D()), short(s.StepDuration.D()+s.MaxHold.D()))
	case f.Never:
		b.WriteString("the judges cannot decide within the release")
	default:
		fmt.Fprintf(&b, "the steps need about %s, more than the %s left of maxDuration", short(f.Expected.D()), short(f.Budget.D()))
	}
	verb := "pause for a person"
	if s.OnHoldTimeout == "fail" {
		verb = "fail undecided"
	}
	fmt.Fprintf(&b, ": the release will likely %s.", verb)
	// The remedies are a new release's: each with its own forecast from
	// the same traffic (while a release runs its spec is set; a person
	// decides when its time is up, or aborts and releases again).
	var remedies []string
	fresh := analysis.Evidence{}
	mirror := false
	if s.Shadow == nil {
		alt := s
		alt.Shadow = &ShadowSpec{}
		alt.Shadow.defaults()
		if g := alt.project(fresh, t, -1, 0, 0, -1, now, false); g.Mirrored > 0 {
			mirror = true
			remedies = append(remedies, fmt.Sprintf("add --shadow 1m (mirrors %s requests/s of stable's GET/HEAD traffic to the new version; %s)", rate(g.Mirrored), outlook(g)))
		}
	}
	// Without a mirror (nothing mirrorable, or one refused), the tuning
	// that decides on the canary's share alone (forecast_nomirror.go).
	if s.Shadow == nil && (!mirror || (s.AutoShadow != nil && !*s.AutoShadow)) && !s.isNoMirrorProfile() {
		alt := s
		NoMirrorProfile(&alt)
		if g := alt.project(fresh, t, -1, 0, 0, -1, now, false); !g.Never && (f.Never || g.Expected < f.Expected) {
			remedies = append(remedies, fmt.Sprintf("without a mirror, use the no-mirror profile (--profile no-mirror: %s; docs/release.md, \"Low traffic without a mirror\"; %s)",
				noMirrorSummary, outlook(g)))
		}
	}
	if all := s.project(fresh, t, -1, 0, 0, -1, now, false); !all.Never {
		remedies = append(remedies, fmt.Sprintf("raise --max-duration to %s or more (spec.maxDuration)", short(budgetFor(all))))
	}
	if len(s.Steps) > 2 {
		alt := s
		alt.Steps = []Percent{Percent(traffic.Total / 2), Percent(traffic.Total)}
		if g := alt.project(fresh, t, -1, 0, 0, -1, now, false); !g.Never && (f.Never || g.Expected < f.Expected) {
			remedies = append(remedies, fmt.Sprintf("use fewer steps (--steps 50,100, though a bad canary then serves half the users at once; %s)", outlook(g)))
		}
	}
	switch {
	case len(remedies) == 0:
	case from < 0:
		b.WriteString(" To ship on its own: " + strings.Join(remedies, "; or ") + ".")
	default:
		b.WriteString(" A new release would ship on its own if it: " + strings.Join(remedies, "; or ") + ".")
	}
	return b.String()
}

// budgetFor is the maxDuration a release of that forecast should get:
// twice the expected time (the expectation is a mean: room for the
// slower half), to the minute.
func budgetFor(f *Forecast) time.Duration {
	return (2 * f.Expected.D()).Round(time.Minute) + time.Minute
}

// outlook is a remedy's forecast in words, with the time budget it
// still needs.
func outlook(f *Forecast) string {
	switch {
	case f.Never:
		return "still undecidable"
	case f.PauseLikely:
		return "about " + short(f.Expected.D()) + ", so with --max-duration " + short(budgetFor(f)) + " or more"
	default:
		return "about " + short(f.Expected.D()) + " in all"
	}
}

func rate(r float64) string {
	if r >= 10 || r == 0 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.2g", r)
}

// short writes a duration to the minute past an hour.
func short(d time.Duration) string {
	if d >= time.Hour {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
