package analysis

import (
	"math"

	"github.com/pave-platform/pave/internal/shadow"
)

// One α budget for the whole release.
//
// Every judged test (the error judge and the latency judge, on the total
// and on each admitted route) is an e-process: a non-negative quantity
// with expectation at most 1 at every moment while the canary is as good
// as stable. By Ville's inequality such a process ever reaches 1/a with
// probability at most a, however often it is looked at, so a test that
// rolls back at 1/a is valid under continuous monitoring.
//
// Within a segment of the release (one wave's steps, or one gate) the
// e-value of each step, computed on that step's window alone, multiplies
// into the evidence of the finished steps. A release of W waves has
// J = 2W-1 segments (W waves and W-1 gates). So that the good samples of
// one wave cannot hide a fault that only the next wave's clusters show,
// each test restarts at every segment, and its e-process is the average
// of the J restarted products (a restart not yet begun counts 1):
//
//	E_t = (1/J) · Σ_j  Π_{steps s since segment j began} e_s
//
// An average of test martingales with fixed weights is a test martingale,
// so Ville applies to E_t itself; a fault that appears in segment j alone
// is caught once that segment's product reaches J/a (at worst what a
// Bonferroni split over segments would need, at best less).
//
// With R = MaxRoutes, at most 1+R scopes × 2 judges are ever tested (and,
// in a release with a shadow step, F = MaxFields response comparisons).
// The budget is split unevenly, fixed before the release starts: the two
// tests of the total (errors and latency on the whole service) get α/4
// each, and the 2R route tests and F field tests share the other half,
// α/(2(2R+F)) each (with neither, the total's tests get α/2 each). Most
// regressions show in the total, whose tests then need log 4.5 ≈ 1.5 nats
// less evidence than an even split's α/(2(1+R)) (+5 points of errors: a
// fifth fewer canary requests); a route's or a field's test needs about
// 0.6 nats more. By the union bound the probability that any test ever
// rolls back a canary as good as stable, anywhere in the release, is at
// most 2·α/4 + (2R+F)·α/(2(2R+F)) = α.

// Evidence is what the judges accumulated over the finished steps of a
// release: plain data, stored with the release, so a restarted engine
// resumes the same tests.
type Evidence struct {
	// Segments is J, the number of restarts the release's tests average
	// over (waves plus gates); 0 reads as 1.
	Segments int `json:"segments,omitempty"`
	// Started counts the segments begun so far; 0 reads as 1.
	Started int `json:"started,omitempty"`
	// LogE maps a test ("error-rate *", "latency /v1/pay") to, for each
	// started segment j, the log of the product of the finished steps'
	// e-values since segment j began. A route admitted late has fewer
	// entries: its earlier restarts are at 1.
	LogE map[string][]float64 `json:"logE,omitempty"`
	// Routes are the routes judged on their own, in the order admitted.
	Routes []string `json:"routes,omitempty"`
	// Fields is the number of response-comparison tests budgeted (a
	// release with a shadow step: MaxFields; else 0), FieldKeys those
	// admitted so far ("ROUTE PATH"), in order.
	Fields    int      `json:"fields,omitempty"`
	FieldKeys []string `json:"fieldKeys,omitempty"`
}

// WithFields budgets n response-comparison tests (a release with a
// shadow step); call it before the first step.
func (e Evidence) WithFields(n int) Evidence {
	e.Fields = max(0, n)
	return e
}

// NewEvidence starts the evidence of a release with the given number of
// segments (2·waves - 1).
func NewEvidence(segments int) Evidence {
	return Evidence{Segments: max(1, segments), Started: 1}
}

// Segments is the number of segments of a release in the given number
// of waves: each wave, and a gate between two waves.
func Segments(waves int) int { return max(1, 2*waves-1) }

func (e Evidence) normalized() Evidence {
	e.Segments = max(1, e.Segments)
	e.Started = min(max(1, e.Started), e.Segments)
	return e
}

// StartSegment begins the next segment (a wave or a gate): from now on
// every test also runs a fresh product. Beyond the declared number of
// segments nothing restarts, so the budget holds even then.
func (e Evidence) StartSegment() Evidence {
	e = e.normalized()
	if e.Started < e.Segments {
		e.Started++
	}
	return e
}

// Extend folds a finished step's window into the evidence.
func (c Config) Extend(e Evidence, w Window) Evidence {
	e = e.normalized()
	out := Evidence{Segments: e.Segments, Started: e.Started, LogE: map[string][]float64{}, Routes: c.admitRoutes(e.Routes, w),
		Fields: e.Fields, FieldKeys: e.FieldKeys}
	for k, v := range e.LogE {
		out.LogE[k] = append([]float64(nil), v...)
	}
	fold := func(k string, l float64) {
		v := out.LogE[k]
		for len(v) < out.Started {
			v = append(v, 0)
		}
		for j := range v {
			v[j] += l
		}
		out.LogE[k] = v
	}
	for _, s := range c.judgedScopes(e.Routes, w) {
		errLog, errHigh, latLog := c.stepLogE(w, s)
		fold(testKey(JudgeErrors, s.name), errLog)
		fold(errorHighKey(s.name), errHigh)
		fold(testKey(JudgeLatency, s.name), latLog)
	}
	if e.Fields > 0 {
		out.FieldKeys = admitFields(e.FieldKeys, e.Fields, w.Mirrored)
		for _, k := range out.FieldKeys {
			var f shadow.FieldCounts
			if w.Mirrored != nil {
				f = w.Mirrored.Fields[k]
			}
			fold(testKey(JudgeResponse, k), c.CompareLLR(f))
		}
	}
	return out
}

// combined is the log of a test's e-process with the current step's log
// e-value folded in: the average over the J restarts.
func (e Evidence) combined(key string, step float64) float64 {
	e = e.normalized()
	v := e.LogE[key]
	terms := make([]float64, e.Segments)
	for j := range e.Segments {
		switch {
		case j < len(v):
			terms[j] = v[j] + step
		case j < e.Started:
			terms[j] = step // admitted after segment j began: its product starts now
		default:
			terms[j] = 0 // not begun: 1
		}
	}
	return logMeanExp(terms)
}

// segment is the log of the product since the current segment began,
// without the current step.
func (e Evidence) segment(key string) float64 {
	e = e.normalized()
	if v := e.LogE[key]; len(v) >= e.Started {
		return v[e.Started-1]
	}
	return 0
}

// alphaTotal is the share of α of each of the total's two tests: α/4,
// or α/2 when nothing else is tested.
func (c Config) alphaTotal(e Evidence) float64 {
	if c.otherTests(e) == 0 {
		return c.Alpha / 2
	}
	return c.Alpha / 4
}

// alphaFor is the share of α of each route's and each response field's
// test: the other half of α, split evenly over 2·MaxRoutes + e.Fields.
func (c Config) alphaFor(e Evidence) float64 {
	return c.Alpha / float64(2*max(1, c.otherTests(e)))
}

// otherTests is how many tests besides the total's the release budgets.
func (c Config) otherTests(e Evidence) int { return 2*c.MaxRoutes + e.Fields }

// AlphaTotal is the share of α of each of the total's two tests (the
// benchmark compares the error test with Wald's SPRT at it).
func (c Config) AlphaTotal(e Evidence) float64 { return c.alphaTotal(e) }

// AlphaFor is the share of α of each route's and field's test.
func (c Config) AlphaFor(e Evidence) float64 { return c.alphaFor(e) }

func testKey(judge, scope string) string { return judge + " " + scope }

// logMeanExp is log(mean(exp(x))) without overflow.
func logMeanExp(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, v)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - m)
	}
	return m + math.Log(s/float64(len(x)))
}
