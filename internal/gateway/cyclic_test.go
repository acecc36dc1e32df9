package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCyclicClientThroughTheGateway is the failure end to end: a
// client whose every Nth request is POST /v1/pay (a health checker, a
// batch job, pave demo's traffic) against a service without kit whose
// routes are configured (its .pave.yaml's list). Both routes start with
// /v1, so only the templates tell them apart; the split then gives the
// canary exactly its share of each route's requests over whole blocks,
// where smooth round-robin sent every POST /v1/pay to one version.
func TestCyclicClientThroughTheGateway(t *testing.T) {
	for _, c := range []struct {
		canary int64 // ppm
		period int
		n      int
	}{{500_000, 2, 1000}, {100_000, 50, 3000}, {10_000, 2, 4000}} {
		t.Run(fmt.Sprintf("%d%%/period %d", c.canary/10_000, c.period), func(t *testing.T) {
			g := New(Options{Log: quietLog()})
			if err := g.SetServiceRoutes("shop", []string{"GET /v1/orders/{id}", "POST /v1/pay"}); err != nil {
				t.Fatal(err)
			}
			g.SetEndpoints("shop", "v1", []string{startUpstream(t, "v1").addr})
			g.SetEndpoints("shop", "v2", []string{startUpstream(t, "v2").addr})
			if err := g.SetWeights("shop", map[string]int64{"v1": totalWeight - c.canary, "v2": c.canary}); err != nil {
				t.Fatal(err)
			}
			gw := startGateway(t, g)
			client := newClient()
			pay, payOnCanary := 0, 0
			for i := range c.n {
				method, path := "GET", fmt.Sprintf("/v1/orders/%d", i)
				if i%c.period == 0 {
					method, path = "POST", "/v1/pay"
				}
				req, _ := http.NewRequest(method, "http://"+gw+path, strings.NewReader("x"))
				req.Host = "shop.localhost"
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if method == "POST" {
					pay++
					if resp.Header.Get("X-Pave-Version") == "v2" {
						payOnCanary++
					}
				}
			}
			block := int(totalWeight / c.canary) // requests per block; the canary has one slot in it
			if want := pay / block; payOnCanary < want || payOnCanary > want+1 {
				t.Errorf("POST /v1/pay: %d of %d requests on the canary, want %d (one per %d)", payOnCanary, pay, want, block)
			}
			snap := g.Snapshot("shop")
			if got := snap["v2"].Routes["POST /v1/pay"].Requests; got != uint64(payOnCanary) {
				t.Errorf("the canary's statistics count %d POST /v1/pay requests, it served %d (routes %v)", got, payOnCanary, keys(snap["v2"].Routes))
			}
		})
	}
}
