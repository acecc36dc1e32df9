package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestSteeredRequestsAreNotJudged: pinned and sticky requests are counted
// apart (stats.Version.Unjudged), never in what the judges read (Total and
// Routes); the weighted split's requests are.
func TestSteeredRequestsAreNotJudged(t *testing.T) {
	g := New(Options{Log: quietLog(), StickyHeader: "X-User-Id"}) // loopback may pin by default
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	if err := g.SetWeights("orders", map[string]int64{"v1": 900_000, "v2": 100_000}); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, g)
	c := newClient()
	for i := range 30 {
		if v, _, err := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-Pave-Version": "v2"}); err != nil || v != "v2" {
			t.Fatalf("pinned request %d reached %q: %v", i, v, err)
		}
		if _, _, err := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-User-Id": fmt.Sprint("user-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		if _, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil {
			t.Fatal(err)
		}
	}
	snap := g.Snapshot("orders")
	if judged := snap["v1"].Total.Requests + snap["v2"].Total.Requests; judged != 100 {
		t.Errorf("judged requests %d, want the 100 of the weighted split", judged)
	}
	if n := snap["v2"].Total.Requests; n != 10 {
		t.Errorf("v2 judged requests %d, want exactly 10 of 100 at 10%%", n)
	}
	if n := snap["v2"].Unjudged["pinned"].Requests; n != 30 {
		t.Errorf("pinned requests counted apart: %d, want 30", n)
	}
	if n := snap["v1"].Unjudged["sticky"].Requests + snap["v2"].Unjudged["sticky"].Requests; n != 30 {
		t.Errorf("sticky requests counted apart: %d, want 30", n)
	}
	var routed uint64
	for _, v := range snap {
		for _, r := range v.Routes {
			routed += r.Requests
		}
	}
	if routed != 100 {
		t.Errorf("per-route statistics count %d requests, want only the 100 judged", routed)
	}
}

// TestEjectedInstanceStillChargesItsVersion: a canary with one broken
// replica of two gets that replica ejected, and users see no more errors,
// but the judges still see the version failing about half its requests.
func TestEjectedInstanceStillChargesItsVersion(t *testing.T) {
	var bad atomic.Int64
	badAddr := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		bad.Add(1)
		http.Error(w, "broken", 500)
	})
	good := startUpstream(t, "v2")
	g := New(Options{Log: quietLog(), EjectAfter: 3, EjectFor: time.Minute})
	g.SetEndpoints("orders", "v2", []string{badAddr, good.addr})
	gw := startGateway(t, g)
	c := newClient()
	seen := 0
	for range 200 {
		if _, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil {
			seen++
		}
	}
	if seen != 3 || bad.Load() != 3 {
		t.Fatalf("clients saw %d errors and the broken replica served %d; want 3 and 3 before it was ejected", seen, bad.Load())
	}
	tot := g.Snapshot("orders")["v2"].Total
	if tot.Requests != 200 || tot.ByClass["5xx"] != 3 {
		t.Fatalf("statistics %d requests, %d 5xx; want 200 and 3", tot.Requests, tot.ByClass["5xx"])
	}
	if ej := tot.ByClass["ejected"]; ej < 90 || ej > 100 {
		t.Errorf("requests charged for the ejected replica: %d, want its turns (about 97)", ej)
	}
	if rate := tot.ErrorRate(); rate < 0.45 {
		t.Errorf("the version's error rate for the judges is %.2f; the ejection hid its broken replica", rate)
	}
}

// TestPinningNeedsTrust: off the pin networks and without a tester
// credential the version header is stripped and the request takes the
// split; with the credential it is honoured (and the credential goes no
// further than the gateway).
func TestPinningNeedsTrust(t *testing.T) {
	var checks atomic.Int64
	g := New(Options{Log: quietLog(), PinNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		TesterCheck: func(tok string) bool { checks.Add(1); return tok == "deployer-token" }})
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	if err := g.SetWeights("orders", map[string]int64{"v1": 1_000_000, "v2": 0}); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, g)
	c := newClient()
	for range 5 {
		if v, _, _ := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-Pave-Version": "v2"}); v != "v1" {
			t.Fatalf("an untrusted client pinned %s", v)
		}
		if v, _, _ := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-Pave-Version": "v2", "X-Pave-Tester-Token": "nope"}); v != "v1" {
			t.Fatalf("a wrong credential pinned %s", v)
		}
		if v, _, _ := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-Pave-Version": "v2", "X-Pave-Tester-Token": "deployer-token"}); v != "v2" {
			t.Fatalf("a tester's pin reached %s, want v2", v)
		}
	}
	if n := checks.Load(); n != 2 {
		t.Errorf("the credential check ran %d times for 10 requests with two tokens; want 2 (verdicts are cached)", n)
	}
	snap := g.Snapshot("orders")
	if n := snap["v1"].Total.Requests; n != 10 {
		t.Errorf("unhonoured pins: %d judged requests on v1, want 10 (they took the split)", n)
	}
	if n := snap["v2"].Unjudged["pinned"].Requests; n != 5 {
		t.Errorf("honoured pins counted apart: %d, want 5", n)
	}
}

// TestRouteTemplates: without kit, a service's route list keys the
// statistics by template; what matches none falls back to the first
// segment; a version keeps at most maxRoutesPerVersion keys.
func TestRouteTemplates(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	if err := g.SetServiceRoutes("orders", []string{"GET /v1/orders/{id}", "POST /v1/orders", "/static/", "GET /v1/orders/new"}); err != nil {
		t.Fatal(err)
	}
	if err := g.SetServiceRoutes("orders", []string{"GET v1/x"}); err == nil {
		t.Fatal("a pattern without a leading slash was accepted")
	}
	gw := startGateway(t, g)
	c := newClient()
	send := func(method, path string) {
		req, _ := http.NewRequest(method, "http://"+gw+path, nil)
		req.Host = "orders.localhost"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i := range 5 {
		send("GET", fmt.Sprint("/v1/orders/", i))
	}
	send("GET", "/v1/orders/new")
	send("POST", "/v1/orders")
	send("GET", "/static/app.js")
	send("GET", "/v1/payments/3")
	for i := range 100 {
		send("GET", fmt.Sprint("/scan", i))
	}
	routes := g.Snapshot("orders")["v1"].Routes
	for key, want := range map[string]uint64{"GET /v1/orders/{id}": 5, "GET /v1/orders/new": 1, "POST /v1/orders": 1, "/static/": 1, "/v1": 1} {
		if got := routes[key].Requests; got != want {
			t.Errorf("route %q: %d requests, want %d (routes %v)", key, got, want, keys(routes))
		}
	}
	if len(routes) > maxRoutesPerVersion+1 || routes[otherRoute].Requests == 0 {
		t.Errorf("%d route keys, %d under %q: the bound did not hold", len(routes), routes[otherRoute].Requests, otherRoute)
	}
}

// TestLearnedTemplatesSplitPerRoute: the template a service reports is
// learned, so later requests are split by it before they are answered.
func TestLearnedTemplatesSplitPerRoute(t *testing.T) {
	b := newRouteBook()
	if k := b.key([]byte("GET"), []byte("/v1/orders/9")); k != nil {
		t.Fatalf("an empty book matched %q", k)
	}
	s := &service{book: b}
	if got := s.reportedRoute([]byte("GET /v1/orders/{id}"), []byte("/v1")); string(got) != "GET /v1/orders/{id}" {
		t.Fatalf("reported route %q", got)
	}
	if got := s.reportedRoute([]byte("bad\x01key"), []byte("/v1")); string(got) != "/v1" {
		t.Fatalf("an invalid reported route was used: %q", got)
	}
	if k := b.key([]byte("GET"), []byte("/v1/orders/9")); string(k) != "GET /v1/orders/{id}" {
		t.Fatalf("after learning, /v1/orders/9 keys as %q", k)
	}
	if k := b.key([]byte("HEAD"), []byte("/v1/orders/9")); string(k) != "GET /v1/orders/{id}" {
		t.Fatalf("HEAD keys as %q; GET patterns take HEAD as ServeMux does", k)
	}
}

func TestRoutePatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, method, path string
		want                  bool
	}{
		{"GET /v1/orders/{id}", "GET", "/v1/orders/42", true},
		{"GET /v1/orders/{id}", "POST", "/v1/orders/42", false},
		{"GET /v1/orders/{id}", "GET", "/v1/orders/", false},
		{"GET /v1/orders/{id}", "GET", "/v1/orders/42/x", false},
		{"GET /v1/orders/{id}", "GET", "/v1/orders", false},
		{"/v1/orders", "DELETE", "/v1/orders", true},
		{"/v1/orders", "GET", "/v1/orders/", false},
		{"/static/", "GET", "/static/a/b.js", true},
		{"/static/", "GET", "/static/", true},
		{"/static/", "GET", "/static", false},
		{"/files/{path...}", "GET", "/files/a/b", true},
		{"/", "GET", "/anything", true},
		{"/{$}", "GET", "/", true},
		{"/{$}", "GET", "/x", false},
		{"/v1/{$}", "GET", "/v1/", true},
		{"/v1/{$}", "GET", "/v1/x", false},
		{"/a/{x}/c", "GET", "/a/b/c", true},
		{"/a/{x}/c", "GET", "/a//c", false},
	} {
		p, err := parseRoutePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := p.match([]byte(tc.method), []byte(tc.path)); got != tc.want {
			t.Errorf("%q against %s %s: %v, want %v", tc.pattern, tc.method, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"v1/x", "get /x", "/a/{x}y", "/{$}/x", "/{p...}/x", "/a//b"} {
		if _, err := parseRoutePattern(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
