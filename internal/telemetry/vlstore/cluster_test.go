package vlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// A storage node killed (SIGKILL: what it held in memory is gone) while
// four writers append: every append either fails with ErrUnavailable (the
// intake's retriable 503) or is acknowledged, and every acknowledged line
// is found once the node is back. Appends keep being acknowledged while
// the node is down: vlinsert sends the lines to the other node.
func TestStorageNodeKilledDuringIngestLosesNoAcknowledgedLine(t *testing.T) {
	c, s := openCluster(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Minute)

	var (
		mu        sync.Mutex
		acked     = map[string]bool{} // message of every acknowledged line
		failed    int
		phase     atomic.Int32 // 0 before the kill, 1 node down, 2 node back
		ackedDown int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; ; b++ {
				select {
				case <-stop:
					return
				default:
				}
				logs := make([]telemetry.Log, 50)
				for i := range logs {
					logs[i] = telemetry.Log{Time: t0.Add(time.Duration(b*50+i) * time.Millisecond), Service: fmt.Sprintf("w%d", w),
						Level: "INFO", Message: fmt.Sprintf("w%d b%d l%d", w, b, i), Attrs: telemetry.Attrs{{Key: "batch", Value: fmt.Sprint(b)}}}
				}
				msgs := make([]string, len(logs))
				for i := range logs {
					msgs[i] = logs[i].Message
				}
				p := phase.Load()
				err := s.AppendLogs(ctx, logs)
				mu.Lock()
				switch {
				case err == nil:
					for _, m := range msgs {
						acked[m] = true
					}
					if p == 1 { // sent while the node was down
						ackedDown++
					}
				case errors.Is(err, telemetry.ErrUnavailable):
					failed++
				default:
					t.Errorf("append failed with %v, not ErrUnavailable (the intake would not answer a retriable 503)", err)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(4 * time.Second)
	c.Storage[1].Kill()
	phase.Store(1)
	t.Log("storage node 2 killed")
	time.Sleep(10 * time.Second)
	c.Storage[1].Start(t)
	phase.Store(2)
	t.Log("storage node 2 back")
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d lines acknowledged (%d batches sent while the node was down), %d appends refused", len(acked), ackedDown, failed)
	if len(acked) == 0 || ackedDown == 0 {
		t.Fatalf("%d lines acknowledged, %d batches while a node was down: ingestion should go on", len(acked), ackedDown)
	}
	found := map[string]bool{}
	q := telemetry.Query{Limit: telemetry.MaxLimit}
	for {
		res, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range res.Logs {
			found[l.Message] = true
		}
		if res.Next == "" {
			break
		}
		q.Cursor = res.Next
	}
	lost := 0
	for m := range acked {
		if !found[m] {
			if lost < 5 {
				t.Errorf("acknowledged line %q is lost", m)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged lines lost", lost, len(acked))
	}
}
