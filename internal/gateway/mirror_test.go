package gateway

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/shadow"
)

// startJSONUpstream is an instance of a payments service: a JSON answer
// with a timestamp and a random id (noise), and an amount; wrong makes
// the amount on /v1/wrong differ (the canary's regression).
func startJSONUpstream(t *testing.T, version string, wrong bool, delay time.Duration) string {
	t.Helper()
	addr, _ := startJSONUpstreamBodies(t, version, wrong, delay)
	return addr
}

// startJSONUpstreamBodies is startJSONUpstream that also tells the
// request bodies it received, by "METHOD PATH".
func startJSONUpstreamBodies(t *testing.T, version string, wrong bool, delay time.Duration) (string, func() map[string][]string) {
	t.Helper()
	var mu sync.Mutex
	bodies := map[string][]string{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		b, _ := io.ReadAll(r.Body)
		if len(b) > 0 {
			mu.Lock()
			bodies[r.Method+" "+r.URL.Path] = append(bodies[r.Method+" "+r.URL.Path], string(b))
			mu.Unlock()
		}
		amount := "10.00"
		if wrong && r.URL.Path == "/v1/wrong" {
			amount = "10.50"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Served-By", version)
		fmt.Fprintf(w, `{"at":%d,"id":"%x","amount":"%s","version":"same"}`, time.Now().UnixNano(), rand.Uint64(), amount)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]string{}
		for k, v := range bodies {
			out[k] = append([]string(nil), v...)
		}
		return out
	}
}

// TestMirrorNeverDelaysUsers: a canary that answers in 2 s with a queue
// of 2 copies: users still get stable's answer at once, the copies that
// do not fit are dropped and counted.
func TestMirrorNeverDelaysUsers(t *testing.T) {
	g := New(Options{Log: quietLog()})
	g.SetEndpoints("pay", "v1", []string{startJSONUpstream(t, "v1", false, 0)})
	g.SetEndpoints("pay", "v2", []string{startJSONUpstream(t, "v2", false, 2*time.Second)})
	if err := g.SetWeights("pay", map[string]int64{"v1": 1_000_000}); err != nil {
		t.Fatal(err)
	}
	if err := g.SetMirror("pay", &Mirror{Stable: "v1", Canary: "v2", Queue: 2, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, g)
	c := newClient()
	var slowest time.Duration
	for range 50 {
		start := time.Now()
		req, _ := http.NewRequest("GET", "http://"+gw+"/v1/ok", nil)
		req.Host = "pay.localhost"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		slowest = max(slowest, time.Since(start))
	}
	snap, _ := g.ShadowSnapshot("pay")
	if snap.Dropped == 0 || snap.Mirrored+snap.Dropped != 50 {
		t.Errorf("mirrored %d, dropped %d; want drops, and 50 in all", snap.Mirrored, snap.Dropped)
	}
	// 50 requests behind a 2 s canary would take 100 s if the mirror
	// waited; a loaded machine still answers each well under 2 s.
	if slowest >= 2*time.Second {
		t.Errorf("the slowest user request took %s: the mirror delayed it", slowest)
	}
	if err := g.SetMirror("pay", nil); err != nil {
		t.Fatal(err)
	}
	if g.MirrorOf("pay") != nil {
		t.Error("the mirror is still on")
	}
	if _, ok := g.ShadowSnapshot("pay"); !ok {
		t.Error("the counts of the mirror turned off are gone")
	}
}

func TestSetMirrorRefusesBadInput(t *testing.T) {
	g := New(Options{Log: quietLog()})
	for _, m := range []*Mirror{
		{Stable: "v1", Canary: "v1"},
		{Stable: "v1", Canary: "V2"},
		{Stable: "v1", Canary: "v2", Share: -1},
		{Stable: "v1", Canary: "v2", Settings: shadow.Settings{ExpectedChanges: []shadow.ExpectedChange{{Path: "fee"}}}},
	} {
		if err := g.SetMirror("pay", m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	if g.MirrorOf("pay") != nil {
		t.Error("a refused mirror is on")
	}
}
