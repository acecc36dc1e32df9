package gateway

import (
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
		g := New(Options{Log: quietLog(), AccessLog: rec, AccessLogQueue: 4})
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
	}
}
