package gateway

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stalledLog is an access logger stuck (a busy store) until released; it
// spills what the queue has no room for when spill is set.
type stalledLog struct {
	release chan struct{}
	spill   bool
	mu      sync.Mutex
	logged  int
	spilled atomic.Int64
}

func (l *stalledLog) LogAccess(*AccessRecord) {
	<-l.release
	l.mu.Lock()
	l.logged++
	l.mu.Unlock()
}

func (l *stalledLog) SpillAccess(*AccessRecord) bool {
	if !l.spill {
		return false
	}
	l.spilled.Add(1)
	return true
}

// TestAccessRecordsOverflowingTheQueueAreSpilledNotDropped fills the
// gateway's in-memory queue behind a stalled logger: every record beyond
// it goes to the logger's spill, none is dropped; a logger that cannot
// spill has them counted as dropped.
func TestAccessRecordsOverflowingTheQueueAreSpilledNotDropped(t *testing.T) {
	for _, spill := range []bool{true, false} {
		rec := &stalledLog{release: make(chan struct{}), spill: spill}
		var logged syncBuffer
		g := New(Options{Log: slog.New(slog.NewTextHandler(&logged, nil)), AccessLog: rec, AccessLogQueue: 4})
		v1 := startUpstream(t, "v1")
		g.SetEndpoints("orders", "v1", []string{v1.addr})
		gw := startGateway(t, g)
		c := newClient()
		const requests = 40
		for i := 0; i < requests; i++ {
			if _, _, err := call(t, c, gw, "orders.localhost", "GET", nil); err != nil {
				t.Fatal(err)
			}
		}
		close(rec.release)
		// At most the queue and the record the logger holds are not
		// spilled: 40 - 4 - 1.
		deadline := time.Now().Add(5 * time.Second)
		for {
			rec.mu.Lock()
			logged := rec.logged
			rec.mu.Unlock()
			total := int64(logged) + rec.spilled.Load() + int64(g.accessDropped.Load())
			if total == requests {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("spill=%v: %d logged + %d spilled + %d dropped, want %d", spill, logged, rec.spilled.Load(), g.accessDropped.Load(), requests)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if spill {
			if d := g.accessDropped.Load(); d != 0 || rec.spilled.Load() < requests-5 {
				t.Fatalf("with a spill: %d dropped, %d spilled; want 0 dropped, ≥ %d spilled", d, rec.spilled.Load(), requests-5)
			}
		} else if d := g.accessDropped.Load(); d < requests-5 {
			t.Fatalf("without a spill: %d dropped, want ≥ %d counted", d, requests-5)
		}
		// What is lost is visible: in the metrics and in the log.
		rr := httptest.NewRecorder()
		g.MetricsHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
		wantMetric := fmt.Sprintf("pave_gateway_access_log_dropped_total %d\n", g.accessDropped.Load())
		if !strings.Contains(rr.Body.String(), wantMetric) {
			t.Errorf("spill=%v: /metrics lacks %q", spill, wantMetric)
		}
		warned := strings.Contains(logged.String(), "access records lost")
		if warned != !spill {
			t.Errorf("spill=%v: a loss warning in the log: %v, want %v\n%s", spill, warned, !spill, logged.String())
		}
	}
}

// syncBuffer is a log destination the gateway's goroutines write while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
