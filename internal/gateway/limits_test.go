package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowlorisIsCutOffAndOthersAreServed: 64 clients trickle request
// heads (and 16 a body) a byte at a time; the gateway closes each after
// ReadHeaderTimeout (ClientTimeout for the body) and answers everyone
// else promptly meanwhile (bounds generous for a shared machine). Run on the event loop and, by
// TestGoroutinePathSuite, on the fasthttp path.
func TestSlowlorisIsCutOffAndOthersAreServed(t *testing.T) {
	g := New(Options{Log: quietLog(), ReadHeaderTimeout: 400 * time.Millisecond, ClientTimeout: 1200 * time.Millisecond})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)

	type slow struct {
		conn   net.Conn
		prefix string
		closed chan time.Duration
	}
	start := time.Now()
	var slows []*slow
	for i := range 80 {
		c, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s := &slow{conn: c, closed: make(chan time.Duration, 1), prefix: "GET /x HTTP/1.1\r\nHost: orders.localhost\r\nX-Slow: "}
		if i >= 64 { // a complete head, then a body that never comes
			s.prefix = "POST /x HTTP/1.1\r\nHost: orders.localhost\r\nContent-Length: 100\r\n\r\n"
		}
		slows = append(slows, s)
		go func() {
			// Trickle a byte every 50 ms until the gateway closes.
			_, _ = io.WriteString(c, s.prefix)
			for range 200 {
				time.Sleep(50 * time.Millisecond)
				if _, err := c.Write([]byte("a")); err != nil {
					break
				}
			}
		}()
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.Copy(io.Discard, c) // a 408 may come before the close
			if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				s.closed <- time.Since(start)
			}
		}()
	}
	// Meanwhile everyone else is served.
	c := newClient()
	for i := range 40 {
		t0 := time.Now()
		if v, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil || v != "v1" {
			t.Fatalf("request %d beside slow clients: %q %v", i, v, err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("request %d took %v beside slow clients", i, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, s := range slows {
		limit := 6 * time.Second
		select {
		case d := <-s.closed:
			if i < 64 && d > 3*time.Second {
				t.Errorf("slow head %d was closed after %v, want about ReadHeaderTimeout (400ms)", i, d)
			}
		case <-time.After(limit):
			t.Fatalf("slow client %d (%q...) still connected after %v", i, s.prefix[:4], limit)
		}
	}
	if n := v1.requests.Load(); n != 40 {
		t.Errorf("the upstream got %d requests, want only the 40 complete ones", n)
	}
}

// TestOversizedBodyIsRefused: a request body over MaxBodyBytes is answered
// 413 without reaching the service, declared or chunked, HTTP/1 or h2c,
// and the gateway keeps serving others.
func TestOversizedBodyIsRefused(t *testing.T) {
	g := New(Options{Log: quietLog(), MaxBodyBytes: 1 << 20})
	var mu sync.Mutex
	var got []int
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var both http.Protocols
	both.SetHTTP1(true)
	both.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &both, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, int(n))
		mu.Unlock()
		io.WriteString(w, "v1 ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	g.SetEndpoints("orders", "v1", []string{addr})
	gw := startGateway(t, g)
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	clients := map[string]*http.Client{"http/1.1": newClient(), "h2c": {Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &h2}}}
	big := bytes.Repeat([]byte("x"), 2<<20)
	for name, c := range clients {
		for _, chunked := range []bool{false, true} {
			var body io.Reader = bytes.NewReader(big)
			if chunked {
				body = io.MultiReader(bytes.NewReader(big)) // no length: chunked (HTTP/1) or a stream (h2c)
			}
			req, _ := http.NewRequest("POST", "http://"+gw+"/upload", body)
			req.Host = "orders.localhost"
			resp, err := c.Do(req)
			if err != nil {
				// A server may close instead of reading the rest; then
				// the client sees a broken write, also a refusal.
				if !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
					t.Fatalf("%s chunked=%v: %v", name, chunked, err)
				}
			} else {
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestEntityTooLarge {
					t.Errorf("%s chunked=%v: 2 MiB body over a 1 MiB limit answered %d, want 413", name, chunked, resp.StatusCode)
				}
			}
			req, _ = http.NewRequest("POST", "http://"+gw+"/small", strings.NewReader("hello"))
			req.Host = "orders.localhost"
			resp, err = c.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s: a small request after the big one: %v %v %s", name, resp.StatusCode, err, b)
			}
			resp.Body.Close()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, n := range got {
		if n > 1<<20 {
			t.Errorf("the service received a body of %d bytes, over the limit", n)
		}
	}
	if len(got) < 4 {
		t.Errorf("the service got %d requests, want at least the 4 small ones", len(got))
	}
	if tot := g.Snapshot("orders")["v1"].Total; tot.Errors != 0 {
		t.Errorf("refused bodies were charged to the version as %d errors", tot.Errors)
	}
}
