// Package analysis holds the release engine's judges: they compare a canary
// version with the stable version over the same time window and say, with
// the numbers behind it, whether the canary may take more traffic (Pass),
// must lose its traffic now (Fail), or whether the evidence does not yet
// suffice either way (Hold).
//
// Three judges run on every evaluation:
//
//   - the kill switch: absolute limits on the canary's error rate and p99
//     latency, acting only once a minimum number of samples was seen;
//   - the error judge: a sequential probability ratio test on which version
//     each failed request came from, valid at every look (see sprt.go);
//   - the latency judge: an anytime-valid sequential test of stochastic
//     order on the latency histograms (see sequential.go), with a tolerance
//     on the effect size as Kayenta has (see mannwhitney.go).
//
// The error and latency judges run on the total and on every route that
// carries enough traffic, so a regression of one endpoint cannot hide in
// the aggregate. Every test is an e-process: evidence multiplies step by
// step, each step judged on its own window only, and one α budget is
// spent over all of them (see Evidence and budget.go).
package analysis

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/pave-platform/pave/internal/stats"
)

// Verdict is the outcome of an evaluation.
type Verdict string

// The verdicts.
const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	Hold Verdict = "hold"
)

// Judge names, as they appear in findings.
const (
	JudgeKillSwitch = "kill-switch"
	JudgeErrors     = "error-rate"
	JudgeLatency    = "latency"
	JudgeSamples    = "min-samples"
)

// TotalScope names the whole service in findings, as opposed to a route.
const TotalScope = "*"

// Config holds the judges' parameters. The zero value is not useful; start
// from DefaultConfig.
type Config struct {
	// Alpha bounds the probability of rolling back a canary that is as good
	// as stable (a false rollback), over the whole release: every step,
	// route, wave and gate, however often the judges look (see budget.go).
	Alpha float64 `json:"alpha"`
	// Beta bounds the probability of promoting a canary whose error rate is
	// ErrorRatio times stable's through the ratio test's acceptance, and
	// that of promoting one whose rate exceeds stable's by ErrorFloor
	// through the floor's (confseq.go); a canary bad both ways, by their
	// union, 2·Beta. Each holds however often the judges look.
	Beta float64 `json:"beta"`
	// ErrorRatio is the alternative hypothesis of the error judge: the
	// canary's error rate is this many times stable's. Smaller values catch
	// smaller regressions but need more samples.
	ErrorRatio float64 `json:"errorRatio"`
	// ErrorFloor is an error-rate excess (0..1) too small to matter: a
	// final step also accepts the canary when its error rate's upper
	// bound is at most stable's lower bound plus this, both confidence
	// sequences at Beta/2. It lets services with almost no errors (where
	// the ratio test has nothing to count) be promoted; 0 turns it off.
	ErrorFloor float64 `json:"errorFloor"`
	// LatencyTolerance is the largest acceptable effect size of the latency
	// judge: P(canary slower than stable) - 0.5. Kayenta's default
	// tolerance plays the same role.
	LatencyTolerance float64 `json:"latencyTolerance"`
	// LatencyZ is the width, in standard errors, of the confidence band
	// around the effect size that must lie below the tolerance before the
	// step that retires stable (acceptance only: rollbacks are decided by
	// the sequential test).
	LatencyZ float64 `json:"latencyZ"`
	// LatencyFloorMs is a latency shift too small to matter: a canary whose
	// p50 and p99 are each within this many milliseconds of stable's is not
	// failed, however certain the rank test is. Without it a new process
	// with cold connection pools fails on sub-millisecond differences.
	LatencyFloorMs float64 `json:"latencyFloorMs"`
	// MinSamples is the number of canary requests below which no judge may
	// pass a step and the kill switch does not act.
	MinSamples uint64 `json:"minSamples"`
	// MaxErrorRate is the kill switch's absolute limit on the canary's
	// error rate (0..1); 0 disables it.
	MaxErrorRate float64 `json:"maxErrorRate"`
	// MaxP99Ms is the kill switch's absolute limit on the canary's p99
	// latency in milliseconds; 0 disables it.
	MaxP99Ms float64 `json:"maxP99Ms"`
	// MinRouteShare is the share of stable's requests (0..1) a route needs
	// to be judged on its own; smaller routes count in the total only.
	MinRouteShare float64 `json:"minRouteShare"`
	// MaxRoutes caps the routes judged on their own over a release (the
	// first to carry MinRouteShare); the α budget is split over them, so
	// the cap keeps each test's share known in advance.
	MaxRoutes int `json:"maxRoutes"`
	// AbortOnAlerts lists the alerts that, firing for the service while
	// the release runs, roll it back: alert names or Alertmanager
	// matchers (severity=page). The release engine applies it
	// (internal/release/alerts.go); empty: alerts never abort.
	AbortOnAlerts []string `json:"abortOnAlerts,omitempty"`
	// MaxFields caps the answer fields judged by the response comparison
	// of a release with a shadow step (compare.go); the α budget counts
	// them.
	MaxFields int `json:"maxFields"`
	// CompareRatio is the response comparison's alternative: the canary
	// changes a field this many times as often as two stables differ in it.
	CompareRatio float64 `json:"compareRatio"`
}

// DefaultConfig returns the defaults: a 1% false-rollback budget, 5% miss
// rate at a tripled error rate, a latency tolerance of 0.05.
func DefaultConfig() Config {
	return Config{
		Alpha:            0.01,
		Beta:             0.05,
		ErrorRatio:       3,
		ErrorFloor:       0.001,
		LatencyTolerance: 0.05,
		LatencyZ:         3.5,
		LatencyFloorMs:   5,
		MinSamples:       50,
		MaxErrorRate:     0.2,
		MaxP99Ms:         0,
		MinRouteShare:    0.01,
		MaxRoutes:        8,
		MaxFields:        16,
		CompareRatio:     10,
	}
}

// Validate reports the first out-of-range parameter, naming its field.
func (c Config) Validate() error {
	switch {
	case !(c.Alpha > 0 && c.Alpha < 0.5):
		return fieldErr("alpha", "must be between 0 and 0.5 (exclusive), e.g. 0.01; got %v", c.Alpha)
	case !(c.Beta > 0 && c.Beta < 0.5):
		return fieldErr("beta", "must be between 0 and 0.5 (exclusive), e.g. 0.05; got %v", c.Beta)
	case !(c.ErrorRatio > 1 && c.ErrorRatio <= 1000):
		return fieldErr("errorRatio", "must be above 1 and at most 1000, e.g. 3; got %v", c.ErrorRatio)
	case !(c.ErrorFloor >= 0 && c.ErrorFloor < 1):
		return fieldErr("errorFloor", "must be in [0, 1), e.g. 0.001; got %v", c.ErrorFloor)
	case !(c.LatencyTolerance >= 0 && c.LatencyTolerance < 0.5):
		return fieldErr("latencyTolerance", "must be in [0, 0.5), e.g. 0.05; got %v", c.LatencyTolerance)
	case !(c.LatencyZ > 0 && c.LatencyZ <= 10):
		return fieldErr("latencyZ", "must be in (0, 10], e.g. 3.5; got %v", c.LatencyZ)
	case !(c.LatencyFloorMs >= 0):
		return fieldErr("latencyFloorMs", "must be 0 (disabled) or a positive number of milliseconds, e.g. 5; got %v", c.LatencyFloorMs)
	case !(c.MaxErrorRate >= 0 && c.MaxErrorRate <= 1):
		return fieldErr("maxErrorRate", "must be in [0, 1] (0 disables it); got %v", c.MaxErrorRate)
	case !(c.MaxP99Ms >= 0):
		return fieldErr("maxP99Ms", "must be 0 (disabled) or a positive number of milliseconds; got %v", c.MaxP99Ms)
	case !(c.MinRouteShare >= 0 && c.MinRouteShare <= 1):
		return fieldErr("minRouteShare", "must be in [0, 1]; got %v", c.MinRouteShare)
	case !(c.MaxRoutes >= 0 && c.MaxRoutes <= 100):
		return fieldErr("maxRoutes", "must be in [0, 100] (0 judges the total only), e.g. 8; got %v", c.MaxRoutes)
	case !(c.MaxFields >= 0 && c.MaxFields <= 1000):
		return fieldErr("maxFields", "must be in [0, 1000] (0 turns the response comparison off), e.g. 16; got %v", c.MaxFields)
	case !(c.CompareRatio > 1 && c.CompareRatio <= 1000):
		return fieldErr("compareRatio", "must be above 1 and at most 1000, e.g. 10; got %v", c.CompareRatio)
	}
	return nil
}

// ConfigError names the parameter that was refused.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrInvalidConfig marks refused parameters.
var ErrInvalidConfig = errors.New("invalid analysis parameter")

func fieldErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)}
}

// Window is the canary's and stable's statistics over the same time window.
type Window struct {
	Canary stats.Version `json:"canary"`
	Stable stats.Version `json:"stable"`
	// Mirrored holds the window's mirrored pairs while the release
	// mirrors stable's requests (compare.go); nil otherwise.
	Mirrored *Mirrored `json:"mirrored,omitempty"`
}

// Finding is one judge's conclusion on one scope, with its numbers.
type Finding struct {
	Judge   string             `json:"judge"`
	Scope   string             `json:"scope"`
	Verdict Verdict            `json:"verdict"`
	Reason  string             `json:"reason"`
	Numbers map[string]float64 `json:"numbers,omitempty"`
	// Example is a request showing a response-comparison finding.
	Example *Example `json:"example,omitempty"`
}

// Decision is the outcome of one evaluation: the overall verdict, a one
// line reason, and every finding behind it.
type Decision struct {
	Verdict  Verdict   `json:"verdict"`
	Reason   string    `json:"reason"`
	Findings []Finding `json:"findings"`
	// CanaryRequests and StableRequests count the requests of the
	// current step's window.
	CanaryRequests uint64 `json:"canaryRequests"`
	StableRequests uint64 `json:"stableRequests"`
	// MoreCanaryRequests estimates how many more canary requests the
	// current step needs before the judges can decide (0: none, or no
	// estimate). See more.go.
	MoreCanaryRequests uint64 `json:"moreCanaryRequests,omitempty"`
}

// Evaluate judges the evidence of finished steps (and segments) plus the
// current step's window. Each comparison uses that window alone: canary
// and stable are seen under the same load, so a drift of the service's
// latency or errors between steps cannot read as a difference between
// versions. With final set (the next step retires stable) the error and
// latency judges must positively accept the canary; otherwise a step passes
// when no judge fails and the minimum sample count is reached.
func (c Config) Evaluate(e Evidence, current Window, final bool) Decision {
	d := Decision{CanaryRequests: current.Canary.Total.Requests, StableRequests: current.Stable.Total.Requests}
	add := func(f Finding) { d.Findings = append(d.Findings, f) }

	canaryTotal, _ := combinedCounts(current, scope{name: TotalScope})
	d.CanaryRequests = canaryTotal.Requests
	add(c.killSwitch(canaryTotal))

	e = e.normalized()
	alphaEach := c.alphaFor(e)
	for _, s := range c.judgedScopes(e.Routes, current) {
		alpha := alphaEach
		if s.name == TotalScope {
			alpha = c.alphaTotal(e)
		}
		cw, sw := combinedCounts(current, s)
		stepErr, stepErrHigh, stepLat := c.stepLogE(current, s)
		errLog := e.errorMixture(s.name, stepErr, stepErrHigh)
		segment := e.segment(testKey(JudgeErrors, s.name)) + stepErr
		ef := c.errorFinding(s.name, errLog, segment, alpha, cw, sw, final && s.name == TotalScope)
		latLog := e.combined(testKey(JudgeLatency, s.name), stepLat)
		lf := c.latencyFinding(s.name, latLog, alpha, cw, sw, final && s.name == TotalScope)
		if s.name != TotalScope {
			toServiceRequests(&ef, cw.Requests, canaryTotal.Requests)
			toServiceRequests(&lf, cw.Requests, canaryTotal.Requests)
		}
		add(ef)
		add(lf)
	}
	for _, f := range c.compareFindings(e, current, alphaEach) {
		add(f)
	}

	var fails, holds []string
	for _, f := range d.Findings {
		switch f.Verdict {
		case Fail:
			fails = append(fails, f.Reason)
		case Hold:
			holds = append(holds, f.Reason)
		}
	}
	if len(fails) == 0 && canaryTotal.Requests < c.MinSamples {
		f := Finding{Judge: JudgeSamples, Scope: TotalScope, Verdict: Hold,
			Reason: fmt.Sprintf("inconclusive: %d of %d canary samples in this step", canaryTotal.Requests, c.MinSamples),
			Numbers: map[string]float64{"samples": float64(canaryTotal.Requests), "minSamples": float64(c.MinSamples),
				"moreCanaryRequests": float64(c.MinSamples - canaryTotal.Requests)}}
		add(f)
		holds = append([]string{f.Reason}, holds...)
	}
	switch {
	case len(fails) > 0:
		d.Verdict, d.Reason = Fail, strings.Join(fails, "; ")
	case len(holds) > 0:
		d.Verdict, d.Reason = Hold, strings.Join(holds, "; ")
		d.MoreCanaryRequests = moreCanaryRequests(d.Findings)
	default:
		d.Verdict = Pass
		_, stableTotal := combinedCounts(current, scope{name: TotalScope})
		d.Reason = fmt.Sprintf("no judge objects: canary error rate %.3f%% vs stable %.3f%%, p99 %.0f ms vs %.0f ms over %d canary requests in this step",
			100*canaryTotal.ErrorRate(), 100*stableTotal.ErrorRate(),
			nanZero(canaryTotal.Quantile(0.99)), nanZero(stableTotal.Quantile(0.99)), canaryTotal.Requests)
		if current.Mirrored != nil {
			d.Reason += fmt.Sprintf(" (%d of them mirrored, %d answers compared)", current.Mirrored.Canary.Total.Requests, current.Mirrored.Exchanges)
		}
	}
	finiteNumbers(d.Findings)
	return d
}

// finiteNumbers drops the numbers a finding cannot state (an estimate
// of +Inf more requests: the evidence points away from a decision):
// findings are stored with the release as JSON, which has no infinity,
// and the reason already says it in words.
func finiteNumbers(fs []Finding) {
	for _, f := range fs {
		for k, v := range f.Numbers {
			if math.IsInf(v, 0) || math.IsNaN(v) {
				delete(f.Numbers, k)
			}
		}
	}
}

// KillSwitch evaluates the absolute limits alone, for a caller that checks
// them more often than it runs the comparison.
func (c Config) KillSwitch(canary stats.Counts) Finding { return c.killSwitch(canary) }

func (c Config) killSwitch(canary stats.Counts) Finding {
	f := Finding{Judge: JudgeKillSwitch, Scope: TotalScope, Verdict: Pass, Numbers: map[string]float64{
		"samples": float64(canary.Requests), "minSamples": float64(c.MinSamples),
		"errorRate": canary.ErrorRate(), "maxErrorRate": c.MaxErrorRate,
	}}
	p99 := canary.Quantile(0.99)
	if !math.IsNaN(p99) {
		f.Numbers["p99Ms"] = p99
	}
	if c.MaxP99Ms > 0 {
		f.Numbers["maxP99Ms"] = c.MaxP99Ms
	}
	if canary.Requests < c.MinSamples {
		f.Reason = fmt.Sprintf("kill switch armed after %d samples (%d so far)", c.MinSamples, canary.Requests)
		return f
	}
	if c.MaxErrorRate > 0 && canary.ErrorRate() > c.MaxErrorRate {
		f.Verdict = Fail
		f.Reason = fmt.Sprintf("kill switch: canary error rate %.2f%% is above the limit %.2f%% (%d errors in %d requests)",
			100*canary.ErrorRate(), 100*c.MaxErrorRate, canary.Errors, canary.Requests)
		return f
	}
	if c.MaxP99Ms > 0 && !math.IsNaN(p99) && p99 > c.MaxP99Ms {
		f.Verdict = Fail
		f.Reason = fmt.Sprintf("kill switch: canary p99 latency %.0f ms is above the limit %.0f ms (%d requests)", p99, c.MaxP99Ms, canary.Requests)
		return f
	}
	f.Reason = "within absolute limits"
	return f
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// scope selects the total or one route of a window.
type scope struct {
	name  string
	route string
}

func (s scope) get(w Window) (stats.Counts, stats.Counts) {
	if s.name == TotalScope {
		return w.Canary.Total, w.Stable.Total
	}
	return w.Canary.Routes[s.route], w.Stable.Routes[s.route]
}

// scopes lists the total and every route seen in a window, sorted.
func scopes(w Window) []scope {
	out := []scope{{name: TotalScope}}
	for _, r := range routeNames(w.Canary, w.Stable) {
		out = append(out, scope{name: r, route: r})
	}
	return out
}

// judgedScopes is the total and the routes judged on their own: those
// admitted by earlier steps and, up to MaxRoutes in all, those carrying
// MinRouteShare of the current window. When only one route exists it is
// the total already.
func (c Config) judgedScopes(admitted []string, w Window) []scope {
	out := []scope{{name: TotalScope}}
	for _, r := range c.admitRoutes(admitted, w) {
		out = append(out, scope{name: r, route: r})
	}
	return out
}

// admitRoutes extends the admitted routes with the current window's
// qualifying ones, in name order, up to MaxRoutes.
func (c Config) admitRoutes(admitted []string, w Window) []string {
	out := append([]string(nil), admitted...)
	sc := scopes(w)
	if len(sc) <= 2 && len(out) == 0 {
		return out
	}
	in := map[string]bool{}
	for _, r := range out {
		in[r] = true
	}
	total := w.Canary.Total.Requests + w.Stable.Total.Requests
	for _, s := range sc[1:] {
		if len(out) >= c.MaxRoutes {
			break
		}
		ca, sa := s.get(w)
		if !in[s.route] && total > 0 && float64(ca.Requests+sa.Requests) >= c.MinRouteShare*float64(total) {
			out = append(out, s.route)
			in[s.route] = true
		}
	}
	return out
}

// routeNames lists, sorted, every route any of vs has counts for.
func routeNames(vs ...stats.Version) []string {
	seen := map[string]bool{}
	for _, v := range vs {
		for r := range v.Routes {
			seen[r] = true
		}
	}
	names := make([]string, 0, len(seen))
	for r := range seen {
		names = append(names, r)
	}
	sort.Strings(names)
	return names
}
