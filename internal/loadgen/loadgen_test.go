package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFailuresCountedByClass: of the failed answers, only a non-idempotent
// request a gateway marked "upstream" (an instance may have received it)
// counts as unretriable; a GET with that mark, a POST marked "unsent", and
// a service's own 500 count as failures the platform could have avoided.
func TestFailuresCountedByClass(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/lost":
			w.Header().Set("X-Pave-Gateway-Error", "upstream")
			w.Header().Set("X-Pave-Cluster", "busan")
			http.Error(w, "pave gateway: service hello version v1: the upstream closed the connection", http.StatusBadGateway)
		case "/unsent":
			w.Header().Set("X-Pave-Gateway-Error", "unsent")
			http.Error(w, "pave gateway: connection refused", http.StatusBadGateway)
		case "/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	// Each request in turn: POST /lost, GET /lost, POST /unsent,
	// POST /broken, GET /ok.
	kinds := []struct{ method, path string }{{"POST", "/lost"}, {"GET", "/lost"}, {"POST", "/unsent"}, {"POST", "/broken"}, {"GET", "/ok"}}
	g := New(Options{Addr: strings.TrimPrefix(srv.URL, "http://"), Host: "hello.localhost", Rate: 200,
		Request: func(ctx context.Context, i uint64, base string) *http.Request {
			k := kinds[(i-1)%uint64(len(kinds))]
			r, _ := http.NewRequestWithContext(ctx, k.method, base+k.path, strings.NewReader("{}"))
			return r
		}})
	var msgs []string
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var failures = make(chan string, 1000)
	g.OnFailure(func(err error) { failures <- err.Error() })
	go func() { g.Run(ctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for g.Counts().Sent < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d requests sent in 30 s", g.Counts().Sent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	close(failures)
	for m := range failures {
		msgs = append(msgs, m)
	}
	c := g.Counts()
	// Requests 1..Sent went out (Run waits for those in flight): count
	// each kind's.
	var failed, unretriable uint64
	for i := range c.Sent {
		switch kinds[i%uint64(len(kinds))].path {
		case "/lost":
			failed++
			if kinds[i%uint64(len(kinds))].method == "POST" {
				unretriable++
			}
		case "/unsent", "/broken":
			failed++
		}
	}
	if c.Failed != failed || c.Unretriable != unretriable || c.Retriable() != failed-unretriable {
		t.Fatalf("sent %d: failed %d, unretriable %d, retriable %d; want %d, %d, %d", c.Sent, c.Failed, c.Unretriable, c.Retriable(), failed, unretriable, failed-unretriable)
	}
	want := "POST /lost: 502 Bad Gateway (cluster busan, gateway error upstream): pave gateway: service hello version v1: the upstream closed the connection"
	found := false
	for _, m := range msgs {
		found = found || m == want
	}
	if !found {
		t.Errorf("no failure reported as %q in %q", want, msgs[:min(len(msgs), 5)])
	}
	if d := c.Sub(Counts{Sent: 5, Failed: 4, Unretriable: 1}); d.Sent != c.Sent-5 || d.Unretriable != unretriable-1 || d.Retriable() != failed-unretriable-3 {
		t.Errorf("Sub: %+v", d)
	}
}
