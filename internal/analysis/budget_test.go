package analysis

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

// At most MaxRoutes routes are ever judged on their own, the first to
// qualify; once admitted a route stays, so the number of tests the α
// budget is split over is bounded before the release starts.
func TestRoutesAdmittedUpToMaxRoutesAndKept(t *testing.T) {
	cfg := DefaultConfig()
	rng := rand.New(rand.NewPCG(9, 9))
	window := func(routes ...string) Window {
		var w Window
		w.Canary.Routes, w.Stable.Routes = map[string]stats.Counts{}, map[string]stats.Counts{}
		for _, r := range routes {
			var c, s stats.Counts
			synth(rng, &c, 100, 0.01, 50)
			synth(rng, &s, 900, 0.01, 50)
			w.Canary.Routes[r], w.Stable.Routes[r] = c, s
			w.Canary.Total, w.Stable.Total = w.Canary.Total.Add(c), w.Stable.Total.Add(s)
		}
		return w
	}
	var many []string
	for i := range 12 {
		many = append(many, fmt.Sprintf("GET /r%02d", i))
	}
	e := cfg.Extend(NewEvidence(1), window(many...))
	if len(e.Routes) != cfg.MaxRoutes || e.Routes[0] != "GET /r00" || e.Routes[7] != "GET /r07" {
		t.Fatalf("admitted %v, want the first %d", e.Routes, cfg.MaxRoutes)
	}
	// A later step without r00's traffic still judges it; new routes find
	// no room.
	e = cfg.Extend(e, window("GET /r01", "GET /r99"))
	if len(e.Routes) != cfg.MaxRoutes || e.Routes[0] != "GET /r00" {
		t.Fatalf("admitted %v after a second step", e.Routes)
	}
	d := cfg.Evaluate(e, window("GET /r01", "GET /r99"), false)
	judged := map[string]bool{}
	for _, f := range d.Findings {
		judged[f.Scope] = true
	}
	if judged["GET /r99"] || !judged["GET /r00"] || len(judged) != 1+cfg.MaxRoutes { // the total ("*") and the admitted routes
		t.Fatalf("judged scopes %v", judged)
	}
	// The union bound: the total's two tests and the routes' 2R spend α.
	if got := 2*cfg.AlphaTotal(e) + float64(2*cfg.MaxRoutes)*cfg.AlphaFor(e); math.Abs(got-cfg.Alpha) > 1e-15 {
		t.Fatalf("the tests spend %v of α = %v", got, cfg.Alpha)
	}
	if f := e.WithFields(16); math.Abs(2*cfg.AlphaTotal(f)+float64(2*cfg.MaxRoutes+16)*cfg.AlphaFor(f)-cfg.Alpha) > 1e-15 {
		t.Fatal("with 16 fields the tests spend more than α")
	}
	if one := (Config{Alpha: 0.01}); one.AlphaTotal(NewEvidence(1)) != 0.005 {
		t.Fatal("without routes or fields the total's tests get α/2 each")
	}
	cfg.MaxRoutes = -1
	if err := cfg.Validate(); err == nil {
		t.Fatal("negative maxRoutes accepted")
	}
}
