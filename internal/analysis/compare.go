package analysis

import (
	"fmt"
	"math"
	"sort"

	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/stats"
)

// The shadow step's evidence. While a release mirrors stable's requests,
// each window also holds the mirrored pairs (Window.Mirrored): the
// canary's and stable's answers to the same requests, and the comparison
// of their fields. The error and latency judges add the pairs' e-value
// to the live traffic's (both are e-values of the same hypothesis, on
// disjoint requests of the same window), so at low traffic the canary is
// judged on every mirrored request as well as on its own share.
//
// The response-comparison judge runs one sequential sign test per field
// of a route (package shadow explains the Diffy-style counts): among the
// exchanges where exactly one of the secondary stable and the canary
// differs from the primary, the canary is the one with probability 1/2
// while it answers as stable does (H0), and ρ/(1+ρ) when it changes the
// field ρ times as often as stable changes itself (H1, ρ = CompareRatio).
// Each "canary only" exchange multiplies the likelihood ratio by
// 2ρ/(1+ρ), each "stable only" one by 2/(1+ρ). A field is admitted as a
// test when it first differs against the canary alone, up to MaxFields,
// and the release's α budget counts them (budget.go), so noise never
// rolls back more often than α allows.

// JudgeResponse names the response-comparison findings.
const JudgeResponse = "response"

// Mirrored is the mirrored pairs of a window.
type Mirrored struct {
	Canary stats.Version `json:"canary"`
	Stable stats.Version `json:"stable"`
	// Secondary is the second stable answers; the error and latency
	// judges count them with Stable's (under H0 all three answers of a
	// mirrored request are alike, so the conditional tests stay exact
	// and a pair brings two stable samples: θ0 = 1/3 instead of 1/2).
	Secondary stats.Version `json:"secondary,omitzero"`
	// Exchanges counts the requests compared; Fields their differences.
	Exchanges uint64                        `json:"exchanges"`
	Fields    map[string]shadow.FieldCounts `json:"fields,omitempty"`
	// Dropped, TooLarge and NotSafe count requests not mirrored.
	Dropped  uint64 `json:"dropped,omitempty"`
	TooLarge uint64 `json:"tooLarge,omitempty"`
	NotSafe  uint64 `json:"notSafe,omitempty"`
}

// MirroredWindow turns a shadow snapshot window into the judges' input.
func MirroredWindow(s shadow.Snapshot) *Mirrored {
	return &Mirrored{Canary: s.Canary, Stable: s.Stable, Secondary: s.Secondary, Exchanges: s.Exchanges, Fields: s.Fields,
		Dropped: s.Dropped, TooLarge: s.TooLarge, NotSafe: s.NotSafe}
}

// RequestViewer is the page that shows one request by its trace id.
const RequestViewer = "/request.html?trace="

// CompareLLR is the log-likelihood ratio of one field's counts.
func (c Config) CompareLLR(f shadow.FieldCounts) float64 {
	rho := c.CompareRatio
	return float64(f.CanaryOnly)*math.Log(2*rho/(1+rho)) + float64(f.StableOnly)*math.Log(2/(1+rho))
}

// mirroredScope is the pairs of one judged scope.
func mirroredScope(m *Mirrored, s scope) (stats.Counts, stats.Counts) {
	if m == nil {
		return stats.Counts{}, stats.Counts{}
	}
	if s.name == TotalScope {
		return m.Canary.Total, m.Stable.Total.Add(m.Secondary.Total)
	}
	return m.Canary.Routes[s.route], m.Stable.Routes[s.route].Add(m.Secondary.Routes[s.route])
}

// stepLogE is one scope's step e-values of the error judge (at ρ and
// ρ², sprt.go) and the latency judge: the live window's and the
// mirrored pairs'.
//
// The error judge compares every canary answer of a route with every
// stable answer of that route in the window: its users' and the mirrored
// copies', and the live answers stable gave the users whose requests
// were mirrored (errorStrata). The latency judge keeps the live window
// and the pairs apart.
func (c Config) stepLogE(w Window, s scope) (errLog, errHigh, latLog float64) {
	cw, sw := s.get(w)
	mc, ms := mirroredScope(w.Mirrored, s)
	hi := c.errorHighRatio()
	for _, st := range errorStrata(w, s) {
		errLog += errorLLRCounts(c.ErrorRatio, st)
		errHigh += errorLLRCounts(hi, st)
	}
	return errLog, errHigh, latencyLogE(cw, sw) + latencyLogE(mc, ms)
}

// errStratum is the requests and failures of both versions in one
// stratum of the error test: answers whose canary share is the same
// throughout the window.
type errStratum struct{ nc, ec, ns, es uint64 }

// errorStrata splits a scope's window into the strata of the error test.
//
// Without a mirror, the window is one stratum: the router splits every
// route's requests alike. With one, a route's canary answers are its
// users' and the mirrored copies', and its stable answers its users',
// the mirrored copies' and the second stable's (the noise learning's):
// under H0 they all fail alike, so a failure of the route is the
// canary's with probability (its canary answers)/(all its answers),
// constant over the window. Pooling them compares each mirrored canary
// answer with three stable answers (the user's, and two copies) instead
// of two, the fewest samples a same-window test can need drop by about a
// sixth (Lai's bound at +5 points on 0.5%: 164 → 136 pairs). Routes are
// separate strata: a route that is never mirrored (POST) has the live
// split's share, a mirrored one about 1/4. The product over strata of
// the conditional likelihood ratios is one (the strata are disjoint), so
// the budget is unchanged. What no route accounts for is one more
// stratum.
func errorStrata(w Window, s scope) []errStratum {
	cw, sw := s.get(w)
	if w.Mirrored == nil {
		return []errStratum{{cw.Requests, cw.Errors, sw.Requests, sw.Errors}}
	}
	m := w.Mirrored
	if s.name != TotalScope {
		mc, ms := mirroredScope(m, s)
		return []errStratum{{cw.Requests + mc.Requests, cw.Errors + mc.Errors, sw.Requests + ms.Requests, sw.Errors + ms.Errors}}
	}
	names := routeNames(w.Canary, w.Stable, m.Canary, m.Stable, m.Secondary)
	out := make([]errStratum, 0, len(names)+1)
	var sum errStratum
	for _, r := range names {
		st := errStratum{
			nc: w.Canary.Routes[r].Requests + m.Canary.Routes[r].Requests,
			ec: w.Canary.Routes[r].Errors + m.Canary.Routes[r].Errors,
			ns: w.Stable.Routes[r].Requests + m.Stable.Routes[r].Requests + m.Secondary.Routes[r].Requests,
			es: w.Stable.Routes[r].Errors + m.Stable.Routes[r].Errors + m.Secondary.Routes[r].Errors,
		}
		sum.nc, sum.ec, sum.ns, sum.es = sum.nc+st.nc, sum.ec+st.ec, sum.ns+st.ns, sum.es+st.es
		out = append(out, st)
	}
	mc, ms := mirroredScope(m, s)
	rest := func(total, routed uint64) uint64 {
		if routed >= total {
			return 0
		}
		return total - routed
	}
	out = append(out, errStratum{rest(cw.Requests+mc.Requests, sum.nc), rest(cw.Errors+mc.Errors, sum.ec),
		rest(sw.Requests+ms.Requests, sum.ns), rest(sw.Errors+ms.Errors, sum.es)})
	return out
}

// errorLLRCounts is errorLLRAt on one stratum.
func errorLLRCounts(rho float64, st errStratum) float64 {
	return errorLLRAt(rho, stats.Counts{Requests: st.nc, Errors: st.ec}, stats.Counts{Requests: st.ns, Errors: st.es})
}

// combinedCounts are a scope's live and mirrored counts together, for
// the bounds and the numbers shown.
func combinedCounts(w Window, s scope) (stats.Counts, stats.Counts) {
	cw, sw := s.get(w)
	mc, ms := mirroredScope(w.Mirrored, s)
	if w.Mirrored == nil {
		return cw, sw
	}
	return cw.Add(mc), sw.Add(ms)
}

// admitFields extends the admitted fields with those of the window that
// differed against the canary alone, in key order, up to the budget.
func admitFields(admitted []string, budget int, m *Mirrored) []string {
	out := append([]string(nil), admitted...)
	if m == nil {
		return out
	}
	in := map[string]bool{}
	for _, k := range out {
		in[k] = true
	}
	keys := make([]string, 0, len(m.Fields))
	for k, f := range m.Fields {
		if f.CanaryOnly > 0 && !in[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(out) >= budget {
			break
		}
		out = append(out, k)
	}
	return out
}

// compareFindings judges each admitted field. A field never admitted
// (the budget was full) is reported as a hold when it differs.
func (c Config) compareFindings(e Evidence, w Window, alpha float64) []Finding {
	if e.Fields == 0 {
		return nil
	}
	upper := math.Log(1 / alpha)
	var out []Finding
	fields := admitFields(e.FieldKeys, e.Fields, w.Mirrored)
	for _, k := range fields {
		var f shadow.FieldCounts
		if w.Mirrored != nil {
			f = w.Mirrored.Fields[k]
		}
		step := c.CompareLLR(f)
		logE := e.combined(testKey(JudgeResponse, k), step)
		route, path := f.Route, f.Path
		if route == "" && path == "" {
			route, path = splitFieldKey(k)
		}
		fd := Finding{Judge: JudgeResponse, Scope: route, Verdict: Pass, Numbers: map[string]float64{
			"llr": logE, "failAt": upper, "alpha": alpha, "compareRatio": c.CompareRatio,
			"canaryOnly": float64(f.CanaryOnly), "stableOnly": float64(f.StableOnly), "both": float64(f.Both), "expected": float64(f.Expected),
		}}
		what := fmt.Sprintf("route %s field %s: the canary differed from stable in %d mirrored requests where two stables agreed, two stables differed in %d where the canary agreed",
			route, path, f.CanaryOnly, f.StableOnly)
		if x := f.Example; x != nil {
			what += fmt.Sprintf("; e.g. request %s%s: stable %s, canary %s", RequestViewer, x.TraceID, x.Stable, x.Canary)
		}
		switch {
		case logE >= upper:
			fd.Verdict = Fail
			fd.Reason = fmt.Sprintf("response comparison: %s; log e-value %.2f ≥ %.2f (α per test %.2g)", what, logE, upper, alpha)
		case logE >= upper/2:
			fd.Verdict = Hold
			fd.Reason = fmt.Sprintf("response comparison suspect: %s; log e-value %.2f is past half of %.2f, holding the step", what, logE, upper)
			if per := math.Log(2 * c.CompareRatio / (1 + c.CompareRatio)); per > 0 && w.Mirrored != nil && w.Mirrored.Exchanges > 0 {
				rate := float64(f.CanaryOnly) / float64(w.Mirrored.Exchanges)
				if rate > 0 {
					fd.Numbers["moreCanaryRequests"] = (upper - logE) / per / rate
				}
			}
		default:
			fd.Reason = fmt.Sprintf("response comparison: %s; log e-value %.2f below %.2f", what, logE, upper)
		}
		if f.Example != nil {
			fd.Example = &Example{TraceID: f.Example.TraceID, Path: path, Stable: f.Example.Stable, Canary: f.Example.Canary}
		}
		out = append(out, fd)
	}
	return out
}

func splitFieldKey(k string) (route, path string) {
	// The path never holds a space outside quotes; the route may ("GET /x").
	for i := len(k) - 1; i >= 0; i-- {
		if k[i] == ' ' && i+1 < len(k) && (k[i+1] == '$' || k[i+1] == 's' || k[i+1] == 'h') {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

// Example is a request that shows a response-comparison finding: its
// trace id (open it in the request viewer), the field and both values.
type Example struct {
	TraceID string `json:"traceId,omitempty"`
	Path    string `json:"path"`
	Stable  string `json:"stable"`
	Canary  string `json:"canary"`
}
