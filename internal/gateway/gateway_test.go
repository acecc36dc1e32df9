package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/websocket"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startGateway serves g on a loopback port until the test ends.
func startGateway(t testing.TB, g *Gateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

// testUpstream is a real HTTP server standing for one instance of a version.
type testUpstream struct {
	addr     string
	srv      *http.Server
	requests atomic.Int64
	lastTP   atomic.Value
}

func startUpstream(t *testing.T, version string) *testUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &testUpstream{addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		u.lastTP.Store(r.Header.Get("traceparent"))
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto)
		fmt.Fprintf(w, "%s %s %s", version, r.URL.Path, body)
	})
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) {
		var msg string
		for websocket.Message.Receive(c, &msg) == nil {
			_ = websocket.Message.Send(c, version+":"+msg)
		}
	}))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	u.srv = &http.Server{Handler: mux, Protocols: &protocols}
	go u.srv.Serve(ln)
	t.Cleanup(func() { u.srv.Close() })
	return u
}

func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// call sends one request through the gateway and returns the version that
// answered.
func call(t testing.TB, c *http.Client, gw, host, method string, hdr map[string]string) (string, int, error) {
	req, err := http.NewRequest(method, "http://"+gw+"/hello", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != 200 {
		return "", resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	v, _, _ := strings.Cut(string(b), " ")
	return v, resp.StatusCode, nil
}

func TestSplitEndToEnd(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	gw := startGateway(t, g)
	if err := g.SetWeights("orders", map[string]int64{"v1": 990_000, "v2": 10_000}); err != nil {
		t.Fatal(err)
	}
	c := newClient()
	got := map[string]int{}
	const n = 5000
	for range n {
		v, _, err := call(t, c, gw, "orders.localhost", "GET", nil)
		if err != nil {
			t.Fatal(err)
		}
		got[v]++
	}
	if got["v2"] != n/100 || got["v1"] != n-n/100 {
		t.Fatalf("1%% split over %d requests through sockets: %v, want v2=%d exactly", n, got, n/100)
	}
	snap, err := StatsSource{g}.Snapshot(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	if snap["v2"].Total.Requests != n/100 || snap["v2"].Routes["/hello"].Requests != n/100 {
		t.Errorf("statistics of v2: %+v, want %d requests in total and on route /hello", snap["v2"].Total, n/100)
	}
	if snap["v1"].Total.ByClass["2xx"] != n-n/100 {
		t.Errorf("v1 2xx count %d, want %d", snap["v1"].Total.ByClass["2xx"], n-n/100)
	}
}

func TestOverrides(t *testing.T) {
	g := New(Options{Log: quietLog(), StickyHeader: "X-User-Id", StickyCookie: "merchant_id"})
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	gw := startGateway(t, g)
	if err := g.SetWeights("orders", map[string]int64{"v1": 1_000_000, "v2": 0}); err != nil {
		t.Fatal(err)
	}
	c := newClient()
	for range 20 {
		v, _, err := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-Pave-Version": "v2"})
		if err != nil || v != "v2" {
			t.Fatalf("X-Pave-Version: v2 reached %q (%v), want v2 at weight 0", v, err)
		}
	}
	if _, status, _ := call(t, c, gw, "orders.localhost", "GET", map[string]string{"X-Pave-Version": "v9"}); status != 503 {
		t.Errorf("override to a version without instances answered %d, want 503", status)
	}

	if err := g.SetWeights("orders", map[string]int64{"v1": 500_000, "v2": 500_000}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for u := range 40 {
		hdr := map[string]string{"X-User-Id": fmt.Sprintf("user-%d", u)}
		first, _, err := call(t, c, gw, "orders.localhost", "GET", hdr)
		if err != nil {
			t.Fatal(err)
		}
		seen[first] = true
		for range 5 {
			if v, _, _ := call(t, c, gw, "orders.localhost", "GET", hdr); v != first {
				t.Fatalf("user-%d moved from %s to %s with a sticky header", u, first, v)
			}
		}
		ck := map[string]string{"Cookie": fmt.Sprintf("merchant_id=m-%d", u)}
		a, _, _ := call(t, c, gw, "orders.localhost", "GET", ck)
		b, _, _ := call(t, c, gw, "orders.localhost", "GET", ck)
		if a != b || a == "" {
			t.Fatalf("merchant m-%d moved from %q to %q with a sticky cookie", u, a, b)
		}
	}
	if !seen["v1"] || !seen["v2"] {
		t.Errorf("40 sticky users at 50/50 all landed on one version: %v", seen)
	}
}

// load sends requests from workers until stop is closed and counts them.
func load(t *testing.T, c *http.Client, gw, host string, workers int, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	var firstErr sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, _, err := call(t, c, gw, host, "GET", nil); err != nil {
					failed.Add(1)
					firstErr.Do(func() { t.Logf("first failure: %v", err) })
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	return ok, failed, wg.Wait
}

// TestInstanceCrashUnderLoad runs two instances as processes and kills
// one with SIGKILL under load, while the gateway still lists it as ready
// (as it would until the runtime notices): retries and ejection keep
// failures under 0.1%.
func TestInstanceCrashUnderLoad(t *testing.T) {
	g := New(Options{Log: quietLog()})
	a, victim := startProcess(t, "v1")
	b, _ := startProcess(t, "v1")
	g.SetEndpoints("orders", "v1", []string{a, b})
	gw := startGateway(t, g)
	stop := make(chan struct{})
	ok, failed, wait := load(t, newClient(), gw, "orders.localhost", 8, stop)
	for ok.Load() < 2000 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	before := ok.Load()
	for ok.Load() < before+5000 {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wait()
	total := ok.Load() + failed.Load()
	if rate := float64(failed.Load()) / float64(total); rate >= 0.001 {
		t.Fatalf("%d of %d requests failed after an instance was killed (%.3f%%), want < 0.1%%", failed.Load(), total, rate*100)
	}
	t.Logf("%d requests, %d failed, after killing one of two instances", total, failed.Load())
}

func TestReconfigurationUnderLoad(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	gw := startGateway(t, g)
	stop := make(chan struct{})
	ok, failed, wait := load(t, newClient(), gw, "orders.localhost", 8, stop)
	// 200 weight changes at 100 a second, endpoint churn of a version
	// with weight and of a third version that never has any.
	tick := time.NewTicker(10 * time.Millisecond)
	for i := range 200 {
		<-tick.C
		c := int64(i%100) * 10_000
		if err := g.SetWeights("orders", map[string]int64{"v1": totalWeight - c, "v2": c}); err != nil {
			t.Fatal(err)
		}
		switch i % 20 {
		case 0:
			g.SetEndpoints("orders", "v3", []string{v2.addr})
		case 5:
			g.SetEndpoints("orders", "v2", []string{v2.addr, v1.addr})
		case 10:
			g.SetEndpoints("orders", "v3", nil)
		case 15:
			g.SetEndpoints("orders", "v2", []string{v2.addr})
		}
	}
	tick.Stop()
	close(stop)
	wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed, %d succeeded during 200 reconfigurations; want 0 failures", failed.Load(), ok.Load())
	}
	if v2.requests.Load() == 0 {
		t.Fatal("v2 got no traffic while its weight went up to 99%")
	}
	if loopSupported && !serveNoEventLoop && g.loopRequests.Load() < uint64(ok.Load()) {
		t.Fatalf("the event loop served %d of %d requests", g.loopRequests.Load(), ok.Load())
	}
}

func TestWebSocketPassThrough(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("chat", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	cfg, err := websocket.NewConfig("ws://chat.localhost/ws", "http://chat.localhost/")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, conn)
	if err != nil {
		t.Fatalf("WebSocket handshake through the gateway: %v", err)
	}
	defer ws.Close()
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != "v1:"+msg {
			t.Fatalf("echo %q, want %q", got, "v1:"+msg)
		}
	}
}

func TestH2CPassThrough(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("grpcish", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &protocols}}
	for range 3 {
		req, _ := http.NewRequest("POST", "http://"+gw+"/rpc", strings.NewReader("ping"))
		req.Host = "grpcish.localhost"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("h2c request through the gateway: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.Header.Get("X-Proto") != "HTTP/2.0" || string(body) != "v1 /rpc ping" {
			t.Fatalf("client proto %s, upstream proto %q, body %q; want HTTP/2 on both sides and %q",
				resp.Proto, resp.Header.Get("X-Proto"), body, "v1 /rpc ping")
		}
	}
	if n := g.Snapshot("grpcish")["v1"].Total.Requests; n != 3 {
		t.Errorf("h2c statistics count %d requests, want 3", n)
	}
}

type recordingLog struct {
	mu   sync.Mutex
	recs []AccessRecord
}

func (l *recordingLog) LogAccess(r *AccessRecord) {
	l.mu.Lock()
	l.recs = append(l.recs, *r)
	l.mu.Unlock()
}

func TestAccessLogAndTracePropagation(t *testing.T) {
	rec := &recordingLog{}
	g := New(Options{Log: quietLog(), AccessLog: rec, Cluster: "seoul-a", Datacenter: "dc1"})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	c := newClient()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if _, _, err := call(t, c, gw, "orders.localhost", "GET", map[string]string{"traceparent": parent, "X-Merchant-Id": "m-42", "Baggage": "tenant=x, caller.service=web;prop=1"}); err != nil {
		t.Fatal(err)
	}
	tp := v1.lastTP.Load().(string)
	if !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || strings.Contains(tp, "00f067aa0ba902b7") || len(tp) != 55 {
		t.Fatalf("upstream got traceparent %q, want the same trace with the gateway's span", tp)
	}
	if _, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil {
		t.Fatal(err)
	}
	fresh := v1.lastTP.Load().(string)
	if len(fresh) != 55 || strings.HasPrefix(fresh, "00-4bf92f") {
		t.Fatalf("a request without traceparent reached upstream with %q, want a new trace", fresh)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.recs)
		rec.mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.recs) != 2 {
		t.Fatalf("%d access records, want 2", len(rec.recs))
	}
	r := rec.recs[0]
	if r.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || r.SpanID != tp[36:52] || r.Service != "orders" || r.Version != "v1" ||
		r.Method != "GET" || r.Route != "/hello" || r.Status != 200 || r.MerchantID != "m-42" || r.Caller != "web" ||
		r.Cluster != "seoul-a" || r.Datacenter != "dc1" || r.Bytes == 0 {
		t.Fatalf("access record %+v does not describe the request", r)
	}
	if rec.recs[1].TraceID != fresh[3:35] {
		t.Errorf("generated trace id %q in the log, %q upstream", rec.recs[1].TraceID, fresh[3:35])
	}
}

func TestBadInputLeavesRoutingInForce(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	good := map[string]int64{"v1": 1_000_000, "v2": 0}
	if err := g.SetWeights("orders", good); err != nil {
		t.Fatal(err)
	}
	if err := g.SetRoutes([]Route{{Host: "api.example", PathPrefix: "/orders", Service: "orders"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]int64{
		{"v1": 990_000, "v2": 20_000},
		{"v1": 1_010_000, "v2": -10_000},
		{"V1!": 1_000_000},
		{},
	} {
		err := g.SetWeights("orders", bad)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("SetWeights(%v) = %v, want ErrInvalid", bad, err)
		}
	}
	if w := g.Weights("orders"); w["v1"] != 1_000_000 || w["v2"] != 0 {
		t.Fatalf("after refused weights: %v, want the previous ones", w)
	}
	err := g.SetRoutes([]Route{
		{Host: "api.example", PathPrefix: "/pay", Service: "payments"},
		{Host: "API.example", PathPrefix: "/pay", Service: "orders"},
	})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "collides") {
		t.Fatalf("colliding routes: %v, want a collision error", err)
	}
	for _, bad := range [][]Route{{{PathPrefix: "orders", Service: "orders"}}, {{PathPrefix: "/../x", Service: "orders"}}, {{PathPrefix: "/", Service: ""}}} {
		if err := g.SetRoutes(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetRoutes(%v) = %v, want ErrInvalid", bad, err)
		}
	}
	if r := g.Routes(); len(r) != 1 || r[0].PathPrefix != "/orders" {
		t.Fatalf("routes after refusals: %v, want the previous one", r)
	}
	for _, bad := range [][]Cluster{
		{{Name: "a", Weight: 500_000, Local: true}, {Name: "b", Weight: 400_000, Endpoints: []string{"127.0.0.1:1"}}},
		{{Name: "a", Weight: 500_000}, {Name: "b", Weight: 500_000, Endpoints: []string{"127.0.0.1:1"}}},
		{{Name: "a", Weight: 1_000_000, Endpoints: []string{"nonsense"}}},
	} {
		if err := g.SetClusterWeights("orders", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetClusterWeights(%v) = %v, want ErrInvalid", bad, err)
		}
	}
	gw := startGateway(t, g)
	c := newClient()
	if v, _, err := call(t, c, gw, "api.example", "GET", nil); err == nil {
		t.Errorf("/hello on api.example reached %s; only /orders is routed there", v)
	}
	req, _ := http.NewRequest("GET", "http://"+gw+"/orders/1", nil)
	req.Host = "api.example:8080"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "v1 /orders/1 " {
		t.Fatalf("explicit route answered %q, want v1", body)
	}
	if _, status, _ := call(t, c, gw, "nothing.localhost", "GET", nil); status != 404 {
		t.Errorf("unknown service answered %d, want 404", status)
	}
}

// TestEdgeSplit runs two gateways: an edge one that keeps 25% locally and
// sends 75% to the other cluster's gateway, which must not split again.
func TestEdgeSplit(t *testing.T) {
	remote := New(Options{Log: quietLog(), Cluster: "busan"})
	rv := startUpstream(t, "busan-v1")
	remote.SetEndpoints("orders", "v1", []string{rv.addr})
	remoteAddr := startGateway(t, remote)
	// The remote gateway is itself in edge mode pointing back; the
	// X-Pave-Edge header must stop the loop.
	edge := New(Options{Log: quietLog(), Cluster: "seoul"})
	lv := startUpstream(t, "seoul-v1")
	edge.SetEndpoints("orders", "v1", []string{lv.addr})
	edgeAddr := startGateway(t, edge)
	if err := remote.SetClusterWeights("orders", []Cluster{{Name: "busan", Weight: 0, Local: true}, {Name: "seoul", Weight: 1_000_000, Endpoints: []string{edgeAddr}}}); err != nil {
		t.Fatal(err)
	}
	if err := edge.SetClusterWeights("orders", []Cluster{{Name: "seoul", Weight: 250_000, Local: true}, {Name: "busan", Weight: 750_000, Endpoints: []string{remoteAddr}}}); err != nil {
		t.Fatal(err)
	}
	c := newClient()
	got := map[string]int{}
	for range 400 {
		v, _, err := call(t, c, edgeAddr, "orders.localhost", "GET", nil)
		if err != nil {
			t.Fatal(err)
		}
		got[v]++
	}
	if got["seoul-v1"] != 100 || got["busan-v1"] != 300 {
		t.Fatalf("edge split %v, want seoul-v1=100 busan-v1=300", got)
	}
	if n := edge.Snapshot("orders")["cluster:busan"].Total.Requests; n != 300 {
		t.Errorf("edge statistics for cluster:busan: %d, want 300", n)
	}
}

func TestPrometheusCollector(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	c := newClient()
	for range 3 {
		if _, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "pave_gateway_requests_total" {
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetValue() == 3 {
					found = true
				}
			}
		}
		if mf.GetName() == "pave_gateway_request_duration_seconds" && mf.GetMetric()[0].GetHistogram().GetSampleCount() != 3 {
			t.Errorf("histogram count %d, want 3", mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	if !found {
		t.Fatalf("no pave_gateway_requests_total sample of 3 in %v", mfs)
	}
	ms := httptest.NewServer(g.MetricsHandler())
	defer ms.Close()
	resp, err := http.Get(ms.URL)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(text), `pave_gateway_requests_total{class="2xx",route="/hello",service="orders",version="v1"} 3`) {
		t.Fatalf("metrics handler output lacks the request counter:\n%s", text)
	}
}

func TestWatchPushesSnapshots(t *testing.T) {
	g := New(Options{Log: quietLog()})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	ch := g.Watch(ctx, "orders", 20*time.Millisecond)
	<-ch
	if _, _, err := call(t, newClient(), gw, "orders.localhost", "GET", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case s := <-ch:
			seen = s["v1"].Total.Requests == 1
		case <-deadline:
			t.Fatal("no pushed snapshot showed the request")
		}
	}
	cancel()
	for range ch {
	}
}

type batchLog struct {
	recordingLog
	batches atomic.Int64
}

func (l *batchLog) LogAccessBatch(rs []*AccessRecord) {
	l.batches.Add(1)
	for _, r := range rs {
		l.LogAccess(r)
	}
}

func TestAccessLogBatches(t *testing.T) {
	rec := &batchLog{}
	g := New(Options{Log: quietLog(), AccessLog: rec})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	stop := make(chan struct{})
	ok, _, wait := load(t, newClient(), gw, "orders.localhost", 8, stop)
	for ok.Load() < 500 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		n := int64(len(rec.recs))
		rec.mu.Unlock()
		if n == ok.Load() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d access records for %d requests", n, ok.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b := rec.batches.Load(); b == 0 || b > ok.Load() {
		t.Fatalf("%d batches for %d records", b, ok.Load())
	}
}

// TestEdgeFailsOverWhenAClusterIsLost kills one cluster's gateway while an
// edge gateway splits 50/50: requests the lost cluster would have served
// are retried in the other one, so none fails, POST included (a refused
// connection never reached the lost cluster).
func TestEdgeFailsOverWhenAClusterIsLost(t *testing.T) {
	clusterGW := func(name string) (string, context.CancelFunc) {
		g := New(Options{Log: quietLog(), Cluster: name})
		u := startUpstream(t, name+"-v1")
		g.SetEndpoints("orders", "v1", []string{u.addr})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = g.Serve(ctx, ln); close(done) }()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return ln.Addr().String(), stop
	}
	seoul, _ := clusterGW("seoul")
	busan, killBusan := clusterGW("busan")
	edge := New(Options{Log: quietLog(), Cluster: "edge"})
	if err := edge.SetClusterWeights("orders", []Cluster{{Name: "seoul", Weight: 500_000, Endpoints: []string{seoul}}, {Name: "busan", Weight: 500_000, Endpoints: []string{busan}}}); err != nil {
		t.Fatal(err)
	}
	edgeAddr := startGateway(t, edge)
	c := newClient()
	got := map[string]int{}
	for range 100 {
		v, status, err := call(t, c, edgeAddr, "orders.localhost", "GET", nil)
		if err != nil || status != 200 {
			t.Fatalf("before the loss: %d %v", status, err)
		}
		got[v]++
	}
	if got["seoul-v1"] != 50 || got["busan-v1"] != 50 {
		t.Fatalf("split before the loss %v, want 50/50", got)
	}
	killBusan()
	got = map[string]int{}
	for i := range 200 {
		method := "GET"
		if i%2 == 1 {
			method = "POST"
		}
		v, status, err := call(t, c, edgeAddr, "orders.localhost", method, nil)
		if err != nil || status != 200 {
			t.Fatalf("request %d (%s) after busan was lost: status %d, %v", i, method, status, err)
		}
		got[v]++
	}
	if got["seoul-v1"] != 200 {
		t.Fatalf("after the loss %v, want every request served by seoul", got)
	}
}

// edgeOverBusan runs seoul's gateway with a healthy instance, busan's with
// the one instance at busanInstance, and an edge splitting 50/50 between
// them that never ejects busan (each request's fate is its own).
func edgeOverBusan(t *testing.T, busanInstance string) (edge, busanGW string) {
	t.Helper()
	seoul := New(Options{Log: quietLog(), Cluster: "seoul"})
	seoul.SetEndpoints("orders", "v1", []string{startUpstream(t, "seoul-v1").addr})
	busan := New(Options{Log: quietLog(), Cluster: "busan", Retries: -1})
	busan.SetEndpoints("orders", "v1", []string{busanInstance})
	busanGW = startGateway(t, busan)
	e := New(Options{Log: quietLog(), Cluster: "edge", EjectAfter: 1000})
	if err := e.SetClusterWeights("orders", []Cluster{{Name: "seoul", Weight: 500_000, Endpoints: []string{startGateway(t, seoul)}},
		{Name: "busan", Weight: 500_000, Endpoints: []string{busanGW}}}); err != nil {
		t.Fatal(err)
	}
	return startGateway(t, e), busanGW
}

// answer sends one request and returns the answer's status, its
// X-Pave-Gateway-Error and X-Pave-Cluster, and its body.
func answer(t *testing.T, c *http.Client, addr, method string) (status int, mark, cluster, body string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+"/pay", strings.NewReader(`{"amount":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "orders.localhost"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Pave-Gateway-Error"), resp.Header.Get("X-Pave-Cluster"), string(b)
}

// TestEdgeRetriesRequestsThatReachedNoInstance: busan's gateway is up but
// its instance is gone (nothing listens), so every attempt there is
// refused before a byte is sent and busan answers 502 marked unsent. The
// edge then sends every request to seoul, POST included: it never
// reached an instance, so repeating it cannot repeat a side effect.
func TestEdgeRetriesRequestsThatReachedNoInstance(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens: every attempt is refused
	edge, busan := edgeOverBusan(t, deadAddr)
	c := newClient()
	if status, mark, _, body := answer(t, c, busan, "POST"); status != 502 || mark != "unsent" {
		t.Fatalf("busan's own answer to a POST it could send nowhere: %d, mark %q (%s), want 502 marked unsent", status, mark, body)
	}
	for i := range 40 {
		method := "GET"
		if i%2 == 1 {
			method = "POST"
		}
		if status, _, cluster, body := answer(t, c, edge, method); status != 200 || cluster != "seoul" || !strings.HasPrefix(body, "seoul-v1") {
			t.Fatalf("%s %d: %d from cluster %q (%s), want it served by seoul", method, i, status, cluster, body)
		}
	}
}

// TestEdgeNeverRepeatsAPostAnInstanceMayHaveSeen: busan's instance reads
// each request whole and dies without answering (its connection closes),
// as one killed mid-request by the loss of its cluster. A GET is retried
// in seoul; a POST is not (the instance may have acted on it): its client
// gets busan's 502, marked upstream, which is how a load generator or a
// failover drill tells this unavoidable loss from a failover that failed.
func TestEdgeNeverRepeatsAPostAnInstanceMayHaveSeen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var seen atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					_, _ = io.ReadAll(req.Body)
					seen.Add(1)
				}
			}()
		}
	}()
	edge, _ := edgeOverBusan(t, ln.Addr().String())
	c := newClient()
	for i := range 20 {
		if status, _, cluster, body := answer(t, c, edge, "GET"); status != 200 || cluster != "seoul" {
			t.Fatalf("GET %d: %d from cluster %q (%s), want it retried in seoul", i, status, cluster, body)
		}
	}
	lost := 0
	for i := range 20 {
		status, mark, cluster, body := answer(t, c, edge, "POST")
		switch {
		case status == 200 && cluster == "seoul":
		case status == 502 && mark == "upstream" && cluster == "busan":
			lost++
		default:
			t.Fatalf("POST %d: %d, mark %q, cluster %q (%s); want seoul's 200 or busan's 502 marked upstream", i, status, mark, cluster, body)
		}
	}
	if lost != 10 {
		t.Errorf("%d of 20 POSTs got busan's 502, want 10 (half went to busan, none repeated in seoul)", lost)
	}
	if n := seen.Load(); n < 10+10 {
		t.Errorf("busan's instance read %d requests, want at least 20 (every GET's first attempt and every POST of its half)", n)
	}
}
