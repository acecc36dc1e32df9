package analysis

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/stats"
)

// mirroredCounts simulates n mirrored exchanges of one route: the noise
// field differs between any two answers with probability noise, the
// changed field differs against the canary alone with probability wrong,
// and the canary fails with probability canaryErr (stable never).
func mirroredCounts(rng *rand.Rand, n int, noise, wrong, canaryErr float64) *Mirrored {
	m := &Mirrored{Fields: map[string]shadow.FieldCounts{}}
	var c, s stats.Counts
	nf := shadow.FieldCounts{Route: "GET /v1/pay", Path: "$.at"}
	wf := shadow.FieldCounts{Route: "GET /v1/pay", Path: "$.amount", Example: &shadow.Example{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Stable: `"10.00"`, Canary: `"10.50"`}}
	for range n {
		st := 200
		if rng.Float64() < canaryErr {
			st = 500
		}
		c.Observe(st, 40+10*rng.Float64())
		s.Observe(200, 40+10*rng.Float64())
		m.Exchanges++
		ds, dc := rng.Float64() < noise, rng.Float64() < noise
		switch {
		case ds && dc:
			nf.Both++
		case ds:
			nf.StableOnly++
		case dc:
			nf.CanaryOnly++
		}
		if rng.Float64() < wrong {
			wf.CanaryOnly++
		}
	}
	m.Canary = stats.Version{Total: c, Routes: map[string]stats.Counts{"GET /v1/pay": c}}
	m.Stable = stats.Version{Total: s, Routes: map[string]stats.Counts{"GET /v1/pay": s}}
	m.Fields[nf.Key()] = nf
	if wf.CanaryOnly > 0 {
		m.Fields[wf.Key()] = wf
	}
	return m
}

// TestShadowStepJudgesMirroredPairs: in a shadow step (no live canary
// traffic) the judges decide on the mirrored pairs alone: a wrong field
// fails naming route, path, trace and values; noise never fails; errors
// of the canary's answers fail the error judge.
func TestShadowStepJudgesMirroredPairs(t *testing.T) {
	c := DefaultConfig()
	ev := NewEvidence(1).WithFields(c.MaxFields)
	rng := rand.New(rand.NewPCG(1, 2))

	d := c.Evaluate(ev, Window{Mirrored: mirroredCounts(rng, 2000, 0.5, 0.05, 0)}, false)
	if d.Verdict != Fail || !strings.Contains(d.Reason, "route GET /v1/pay field $.amount") || !strings.Contains(d.Reason, "/request.html?trace=4bf92f3577b34da6a3ce929d0e0e4736") ||
		!strings.Contains(d.Reason, `stable "10.00", canary "10.50"`) {
		t.Fatalf("a wrong amount on 5%% of the route: %s: %s", d.Verdict, d.Reason)
	}
	for _, f := range d.Findings {
		if f.Judge == JudgeResponse && f.Scope == "GET /v1/pay" && strings.Contains(f.Reason, "$.at") && f.Verdict == Fail {
			t.Fatalf("the noise field failed: %s", f.Reason)
		}
	}

	// Noise only, however loud: 200 releases, none fails.
	for i := range 200 {
		e := ev
		var last Decision
		for range 5 {
			w := Window{Mirrored: mirroredCounts(rng, 400, []float64{0.02, 0.5, 1}[i%3], 0, 0)}
			last = c.Evaluate(e, w, false)
			if last.Verdict == Fail {
				t.Fatalf("noise failed run %d: %s", i, last.Reason)
			}
			e = c.Extend(e, w)
		}
		if last.Verdict != Pass {
			t.Fatalf("healthy shadow step not passing: %s", last.Reason)
		}
	}

	d = c.Evaluate(ev, Window{Mirrored: mirroredCounts(rng, 1000, 0, 0, 0.06)}, false)
	if d.Verdict != Fail || !strings.Contains(d.Reason, "error rate") {
		t.Fatalf("a canary failing 6%% of mirrored requests: %s: %s", d.Verdict, d.Reason)
	}
}

// TestFieldsShareTheAlphaBudget: each test's α shrinks by the fields
// budgeted, and only for a release with a shadow step.
func TestFieldsShareTheAlphaBudget(t *testing.T) {
	c := DefaultConfig()
	if a := c.alphaFor(NewEvidence(1)); a != c.Alpha/32 {
		t.Fatalf("without a shadow step a route's α is %v, want α/32", a)
	}
	if a := c.alphaFor(NewEvidence(1).WithFields(16)); a != c.Alpha/64 {
		t.Fatalf("α per route or field test %v, want α/64", a)
	}
	if a := c.alphaTotal(NewEvidence(1).WithFields(16)); a != c.Alpha/4 {
		t.Fatalf("α of the total's tests %v, want α/4", a)
	}
	e := c.Extend(NewEvidence(1).WithFields(1), Window{Mirrored: &Mirrored{Fields: map[string]shadow.FieldCounts{
		"GET /a $.x": {Route: "GET /a", Path: "$.x", CanaryOnly: 1}, "GET /a $.y": {Route: "GET /a", Path: "$.y", CanaryOnly: 1}}}})
	if len(e.FieldKeys) != 1 || e.FieldKeys[0] != "GET /a $.x" {
		t.Fatalf("admitted fields %v, want the first one only", e.FieldKeys)
	}
}
