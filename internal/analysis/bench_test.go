package analysis

import (
	"math/rand/v2"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

// BenchmarkEvaluate measures one evaluation of the judges (kill switch,
// error SPRT and Mann-Whitney on the total and three routes), the work the
// engine does for a release every second.
func BenchmarkEvaluate(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	var w Window
	w.Canary.Routes, w.Stable.Routes = map[string]stats.Counts{}, map[string]stats.Counts{}
	for _, r := range []string{"/", "/api/items", "/api/orders"} {
		var c, s stats.Counts
		synth(rng, &c, 500, 0.01, 50)
		synth(rng, &s, 20000, 0.01, 50)
		w.Canary.Routes[r], w.Stable.Routes[r] = c, s
		w.Canary.Total, w.Stable.Total = w.Canary.Total.Add(c), w.Stable.Total.Add(s)
	}
	cfg := DefaultConfig()
	e := cfg.Extend(Evidence{}, w)
	b.ReportAllocs()
	for b.Loop() {
		if d := cfg.Evaluate(e, w, true); d.Verdict == "" {
			b.Fatal("no verdict")
		}
	}
}
