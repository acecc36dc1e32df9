//go:build linux

package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// echoUpstream answers with what it received, as JSON, and takes orders
// from the query: ?status=N answers N, ?route=T reports the template T in
// X-Pave-Route (as kit does), ?mark=M sets X-Pave-Gateway-Error: M. It speaks HTTP/1.1 and h2c.
func echoUpstream(t *testing.T, version string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if rt := r.URL.Query().Get("route"); rt != "" {
			w.Header().Set("X-Pave-Route", rt)
		}
		if m := r.URL.Query().Get("mark"); m != "" {
			w.Header().Set("X-Pave-Gateway-Error", m) // a service posing as a gateway
		}
		status := 200
		if s := r.URL.Query().Get("status"); s != "" {
			fmt.Sscan(s, &status)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(echoed{
			Version: version, Path: r.URL.Path, Body: string(body),
			XFF: r.Header.Values("X-Forwarded-For"), Pin: r.Header.Get("X-Pave-Version"),
			Tester: r.Header.Get("X-Pave-Tester-Token"), User: r.Header.Get("X-User-Id"),
		})
	})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protocols}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type echoed struct {
	Version string   `json:"version"`
	Path    string   `json:"path"`
	Body    string   `json:"body"`
	XFF     []string `json:"xff"`
	Pin     string   `json:"pin"`
	Tester  string   `json:"tester"`
	User    string   `json:"user"`
}

// servingPath is one of the gateway's three ways of serving a request.
type servingPath struct {
	name   string
	opts   func(*Options)
	client *http.Client
	// served checks the path under test did serve the requests.
	served func(t *testing.T, g *Gateway)
}

func servingPaths() []servingPath {
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	h1 := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	}
	return []servingPath{
		{name: "loop", opts: func(*Options) {}, client: h1(), served: func(t *testing.T, g *Gateway) {
			if g.loopRequests.Load() == 0 || g.handovers.Load() != 0 {
				t.Errorf("the event loop served %d requests and handed %d connections over; want all on the loop", g.loopRequests.Load(), g.handovers.Load())
			}
		}},
		{name: "fallback", opts: func(o *Options) { o.NoEventLoop = true }, client: h1(), served: func(t *testing.T, g *Gateway) {
			if g.loopRequests.Load() != 0 {
				t.Errorf("the event loop served %d requests with NoEventLoop", g.loopRequests.Load())
			}
		}},
		{name: "h2c", opts: func(*Options) {}, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &h2}}, served: func(t *testing.T, g *Gateway) {
			if g.loopRequests.Load() != 0 || g.handovers.Load() == 0 {
				t.Errorf("h2c: the loop served %d requests and handed over %d connections; want every connection handed to the h2c server", g.loopRequests.Load(), g.handovers.Load())
			}
		}},
	}
}

// coreResult is what a client and the service see of one request; every
// serving path must produce the same.
type coreResult struct {
	Status     int
	Version    string // X-Pave-Version of the answer
	Marker     string // X-Pave-Gateway-Error
	RouteShown string // X-Pave-Route as the client sees it (must be stripped)
	BodyPrefix string // of a gateway's own error answer
	Upstream   echoed // what the service received ("" version: none reached)
}

// TestLoopFallbackAndH2CBehaveAlike runs the same cases over HTTP/1
// through the event loop, HTTP/1 through the fasthttp fallback, and h2c,
// and expects identical results: routing, who may pin, the forwarding
// headers, retries, error answers and their marker, the route template
// read and stripped, and what the statistics count.
func TestLoopFallbackAndH2CBehaveAlike(t *testing.T) {
	tester := "t0ken-of-a-deployer"
	type tcase struct {
		name   string
		method string
		host   string
		path   string
		hdr    map[string]string
		want   coreResult
	}
	cases := []tcase{
		{"weighted split", "GET", "orders.localhost", "/v1/orders/7", map[string]string{"X-Forwarded-For": "203.0.113.9"},
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/v1/orders/7", XFF: []string{"203.0.113.9, 127.0.0.1"}}}},
		{"untrusted pin is stripped and ignored", "GET", "orders.localhost", "/a", map[string]string{"X-Pave-Version": "v2"},
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", XFF: []string{"127.0.0.1"}}}},
		{"untrusted sticky key is ignored", "GET", "orders.localhost", "/a", map[string]string{"X-User-Id": "u-1"},
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", XFF: []string{"127.0.0.1"}, User: "u-1"}}},
		{"bad tester credential: not pinned", "GET", "orders.localhost", "/a", map[string]string{"X-Pave-Version": "v2", "X-Pave-Tester-Token": "guess"},
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", XFF: []string{"127.0.0.1"}}}},
		{"tester pins; credential stripped", "POST", "orders.localhost", "/a", map[string]string{"X-Pave-Version": "v2", "X-Pave-Tester-Token": tester},
			coreResult{Status: 200, Version: "v2", Upstream: echoed{Version: "v2", Path: "/a", Body: "x", XFF: []string{"127.0.0.1"}, Pin: "v2"}}},
		{"pinned to a version without instances", "GET", "orders.localhost", "/a", map[string]string{"X-Pave-Version": "v9", "X-Pave-Tester-Token": tester},
			coreResult{Status: 503, Marker: "no-backend", BodyPrefix: `pave gateway: service orders: version "v9" asked for by header has no ready instances`}},
		{"unknown host", "GET", "nobody.localhost", "/a", nil,
			coreResult{Status: 404, BodyPrefix: "pave gateway: no service for host nobody.localhost"}},
		{"refused instance: POST retried", "POST", "refusing.localhost", "/a", nil,
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", Body: "x", XFF: []string{"127.0.0.1"}}}},
		{"instance closes without answering: GET retried", "GET", "closing.localhost", "/a", nil,
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", XFF: []string{"127.0.0.1"}}}},
		// Every attempt refused: nothing reached an instance (unsent).
		{"no instance reachable", "GET", "dead.localhost", "/a", nil,
			coreResult{Status: 502, Marker: "unsent", BodyPrefix: "pave gateway: service dead version v1: "}},
		{"service's 5xx passes through", "GET", "orders.localhost", "/a?status=503", nil,
			coreResult{Status: 503, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", XFF: []string{"127.0.0.1"}}}},
		// Only a gateway marks its own answers: a service's mark would
		// make an edge repeat a POST in another cluster.
		{"a service's gateway mark is stripped", "POST", "orders.localhost", "/a?status=502&mark=unsent", nil,
			coreResult{Status: 502, Version: "v1", Upstream: echoed{Version: "v1", Path: "/a", Body: "x", XFF: []string{"127.0.0.1"}}}},
		{"route template read and stripped", "GET", "orders.localhost", "/v1/items/5?route=GET+/v1/items/{id}", nil,
			coreResult{Status: 200, Version: "v1", Upstream: echoed{Version: "v1", Path: "/v1/items/5", XFF: []string{"127.0.0.1"}}}},
	}
	results := map[string][]coreResult{}
	counted := map[string]string{} // by path: statistics and access records, summarised
	for _, sp := range servingPaths() {
		t.Run(sp.name, func(t *testing.T) {
			access := &batchLog{}
			o := Options{Log: quietLog(), StickyHeader: "X-User-Id", PinNetworks: []netip.Prefix{}, EjectAfter: 1000,
				TesterCheck: func(tok string) bool { return tok == tester }, AccessLog: access}
			sp.opts(&o)
			if sp.name == "loop" && serveNoEventLoop {
				t.Fatal("the loop case ran with NoEventLoop forced")
			}
			g := New(o)
			g.SetEndpoints("orders", "v1", []string{echoUpstream(t, "v1")})
			g.SetEndpoints("orders", "v2", []string{echoUpstream(t, "v2")})
			if err := g.SetWeights("orders", map[string]int64{"v1": 1_000_000, "v2": 0}); err != nil {
				t.Fatal(err)
			}
			g.SetEndpoints("refusing", "v1", []string{freeAddr(t), echoUpstream(t, "v1")})
			g.SetEndpoints("dead", "v1", []string{freeAddr(t)})
			g.SetEndpoints("closing", "v1", []string{closingUpstream(t), echoUpstream(t, "v1")})
			gw := startGateway(t, g)
			sent := 0
			for _, tc := range cases {
				var got coreResult
				// The refusing service has a dead instance first in turn
				// half of the time: repeat to meet it.
				for range 4 {
					var reqBody io.Reader
					if tc.method != "GET" {
						reqBody = strings.NewReader("x")
					}
					req, _ := http.NewRequest(tc.method, "http://"+gw+tc.path, reqBody)
					req.Host = tc.host
					for k, v := range tc.hdr {
						req.Header.Set(k, v)
					}
					resp, err := sp.client.Do(req)
					if err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					if tc.host != "nobody.localhost" { // no service: nothing to record it under
						sent++
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					got = coreResult{Status: resp.StatusCode, Version: resp.Header.Get("X-Pave-Version"),
						Marker: resp.Header.Get("X-Pave-Gateway-Error"), RouteShown: resp.Header.Get("X-Pave-Route")}
					if resp.Header.Get("Content-Type") == "application/json" {
						if err := json.Unmarshal(body, &got.Upstream); err != nil {
							t.Fatalf("%s: %v: %s", tc.name, err, body)
						}
					} else if tc.want.BodyPrefix != "" && strings.HasPrefix(string(body), tc.want.BodyPrefix) {
						got.BodyPrefix = tc.want.BodyPrefix
					} else {
						got.BodyPrefix = string(body)
					}
					if fmt.Sprint(got) != fmt.Sprint(tc.want) {
						break // the first difference is reported
					}
					if tc.method == "POST" && tc.path == "/a" && tc.host == "orders.localhost" {
						break
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
				}
				results[tc.name] = append(results[tc.name], got)
			}
			// What the statistics count: the pinned request apart, never
			// judged; the template reported by the service as the route.
			snap := g.Snapshot("orders")
			if n := snap["v2"].Unjudged["pinned"].Requests; n != 1 {
				t.Errorf("pinned requests counted apart: %d, want 1", n)
			}
			if n := snap["v2"].Total.Requests; n != 0 {
				t.Errorf("v2 judged requests %d, want 0 (only a pinned one reached it)", n)
			}
			if n := snap["v1"].Routes["GET /v1/items/{id}"].Requests; n != 4 {
				t.Errorf("requests under the reported template: %d, want 4 (routes %v)", n, keys(snap["v1"].Routes))
			}
			sp.served(t, g)
			counted[sp.name] = countedSummary(t, g, access, sent)
		})
	}
	for name, summary := range counted {
		if summary != counted["loop"] {
			t.Errorf("statistics and access records differ between loop and %s:\nloop: %s\n%s: %s", name, counted["loop"], name, summary)
		}
	}
	for name, rs := range results {
		for i := 1; i < len(rs); i++ {
			if fmt.Sprint(rs[i]) != fmt.Sprint(rs[0]) {
				t.Errorf("%s: the serving paths differ: %+v vs %+v", name, rs[0], rs[i])
			}
		}
	}
}

// countedSummary waits for one access record per request sent and
// summarises what the gateway counted, without times and latencies: the
// statistics of every service (requests, errors and classes by version,
// route and unjudged kind) and the access records (service, version,
// method, route, status), sorted.
func countedSummary(t *testing.T, g *Gateway, access *batchLog, sent int) string {
	t.Helper()
	var recs []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		access.mu.Lock()
		recs = recs[:0]
		for _, r := range access.recs {
			recs = append(recs, fmt.Sprintf("%s %s %s %q %d", r.Service, r.Version, r.Method, r.Route, r.Status))
		}
		access.mu.Unlock()
		if len(recs) >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(recs) != sent {
		t.Errorf("%d access records for %d requests", len(recs), sent)
	}
	sort.Strings(recs)
	var b strings.Builder
	for _, service := range []string{"orders", "refusing", "dead", "closing"} {
		snap := g.Snapshot(service)
		for _, v := range slices.Sorted(maps.Keys(snap)) {
			c := snap[v]
			fmt.Fprintf(&b, "%s/%s total %d/%d %v;", service, v, c.Total.Requests, c.Total.Errors, c.Total.ByClass)
			for _, r := range slices.Sorted(maps.Keys(c.Routes)) {
				fmt.Fprintf(&b, " route %q %d/%d;", r, c.Routes[r].Requests, c.Routes[r].Errors)
			}
			for _, k := range slices.Sorted(maps.Keys(c.Unjudged)) {
				fmt.Fprintf(&b, " unjudged %s %d/%d;", k, c.Unjudged[k].Requests, c.Unjudged[k].Errors)
			}
		}
	}
	return b.String() + " records: " + strings.Join(recs, ", ")
}

// closingUpstream accepts connections, reads what comes and closes them
// without an answer: an instance dying with the request in hand.
func closingUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				var b [4096]byte
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, _ = c.Read(b[:])
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
