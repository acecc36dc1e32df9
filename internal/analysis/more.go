package analysis

import "math"

// moreCanaryRequests is the decision's estimate of the canary requests the
// current step still needs: every holding finding must clear, so the
// largest of their estimates (each finding's "moreCanaryRequests", in
// canary requests of the whole service). 0 when no finding has one.
func moreCanaryRequests(fs []Finding) uint64 {
	var most float64
	for _, f := range fs {
		if f.Verdict != Hold {
			continue
		}
		v, ok := f.Numbers["moreCanaryRequests"]
		if !ok || math.IsNaN(v) || v <= 0 {
			continue
		}
		most = math.Max(most, v)
	}
	if math.IsInf(most, 1) || most > 1e12 {
		return 0 // the evidence points away from a decision: no honest figure
	}
	return uint64(math.Ceil(most))
}

// toServiceRequests scales a route finding's estimate, in requests of that
// route, to canary requests of the whole service.
func toServiceRequests(f *Finding, routeCanary, totalCanary uint64) {
	v, ok := f.Numbers["moreCanaryRequests"]
	if !ok || routeCanary == 0 {
		return
	}
	f.Numbers["moreCanaryRequests"] = v * float64(totalCanary) / float64(routeCanary)
}
