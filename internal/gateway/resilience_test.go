package gateway

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func startHandler(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	slow := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	g := New(Options{Log: quietLog(), UpstreamTimeout: 200 * time.Millisecond})
	g.SetEndpoints("slow", "v1", []string{slow})
	gw := startGateway(t, g)
	_, status, _ := call(t, newClient(), gw, "slow.localhost", "GET", nil)
	if status != http.StatusGatewayTimeout {
		t.Fatalf("a hung upstream answered %d, want 504", status)
	}
	if n := g.Snapshot("slow")["v1"].Total.ByClass["failed"]; n != 1 {
		t.Errorf("timed-out request counted %d times as failed, want 1", n)
	}
}

// TestOutlierEjection: an instance that keeps answering 500 is ejected, so
// almost all later traffic reaches the healthy one.
func TestOutlierEjection(t *testing.T) {
	var bad, good atomic.Int64
	badAddr := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		bad.Add(1)
		http.Error(w, "broken", 500)
	})
	goodAddr := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		good.Add(1)
		fmt.Fprint(w, "v1 ok")
	})
	g := New(Options{Log: quietLog(), EjectAfter: 3, EjectFor: time.Minute})
	g.SetEndpoints("orders", "v1", []string{badAddr, goodAddr})
	gw := startGateway(t, g)
	c := newClient()
	failures := 0
	for range 200 {
		if _, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil {
			failures++
		}
	}
	if bad.Load() != 3 || failures != 3 {
		t.Fatalf("the failing instance got %d requests (%d failures seen), want exactly 3 before ejection", bad.Load(), failures)
	}
	if good.Load() != 197 {
		t.Fatalf("healthy instance got %d requests, want 197", good.Load())
	}
}

// TestDialFailureRetriedForPost: nothing reached a refused endpoint, so
// even a POST is retried on another instance.
func TestDialFailureRetriedForPost(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	v1 := startUpstream(t, "v1")
	g := New(Options{Log: quietLog(), EjectAfter: 1000})
	g.SetEndpoints("orders", "v1", []string{deadAddr, v1.addr})
	gw := startGateway(t, g)
	c := newClient()
	for range 20 {
		if _, _, err := call(t, c, gw, "orders.localhost", "POST", nil); err != nil {
			t.Fatalf("POST with one refused instance failed: %v", err)
		}
	}
}

// TestUpstreamTimeoutAfterKeepAlive: a request on a kept-alive upstream
// connection gets its whole UpstreamTimeout, although an earlier request
// on that connection armed an earlier deadline (deadlines are applied
// lazily, see deadline.go), and the timeout still ends in a 504.
func TestUpstreamTimeoutAfterKeepAlive(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var hang atomic.Bool
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		fmt.Fprint(w, "v1 ok")
	})
	const timeout = 400 * time.Millisecond
	g := New(Options{Log: quietLog(), UpstreamTimeout: timeout})
	g.SetEndpoints("orders", "v1", []string{up})
	gw := startGateway(t, g)
	c := newClient()
	if _, status, _ := call(t, c, gw, "orders.localhost", "GET", nil); status != http.StatusOK {
		t.Fatalf("first request: %d", status)
	}
	time.Sleep(timeout / 2) // the deadline armed by the first request is now half spent
	hang.Store(true)
	start := time.Now()
	_, status, _ := call(t, c, gw, "orders.localhost", "GET", nil)
	if status != http.StatusGatewayTimeout {
		t.Fatalf("a hung upstream answered %d, want 504", status)
	}
	if waited := time.Since(start); waited < timeout {
		t.Fatalf("the upstream timeout fired after %v, before the %v it was set to", waited, timeout)
	}
}
