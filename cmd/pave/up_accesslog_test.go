package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/telemetry"
)

// busyStore is the real telemetry store that refuses writes (as it does
// while flushing falls behind) until busy is cleared.
type busyStore struct {
	*telemetry.Embedded
	busy atomic.Bool
}

func (b *busyStore) Busy() bool { return b.busy.Load() || b.Embedded.Busy() }

func (b *busyStore) AppendLogs(ctx context.Context, logs []telemetry.Log) error {
	if b.busy.Load() {
		return telemetry.ErrBusy
	}
	return b.Embedded.AppendLogs(ctx, logs)
}

// TestGatewayAccessLogSpoolsWhileTelemetryIsBusy: records the store
// refuses and records the gateway's queue had no room for wait on disk
// and are all stored, once, when the store takes writes again.
func TestGatewayAccessLogSpoolsWhileTelemetryIsBusy(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	tel, err := telemetry.Open(ctx, telemetry.Options{Dir: filepath.Join(dir, "telemetry"), MaintainEvery: -1, ColdAfter: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Close()
	store := &busyStore{Embedded: tel}
	store.busy.Store(true)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := newGatewayAccessLog(ctx, store, filepath.Join(dir, "access-spool"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	now := time.Now().Add(-time.Minute)
	rec := func(i int) *gateway.AccessRecord {
		return &gateway.AccessRecord{Time: now.Add(time.Duration(i) * time.Millisecond), TraceID: fmt.Sprintf("%032x", i+1),
			SpanID: fmt.Sprintf("%016x", i+1), Service: "orders", Version: "v1", Method: "GET", Route: fmt.Sprintf("/r%d", i), Status: 200}
	}
	const batches, per, spilled = 3, 100, 10
	for b := 0; b < batches; b++ {
		recs := make([]*gateway.AccessRecord, per)
		for i := range recs {
			recs[i] = rec(b*per + i)
		}
		a.LogAccessBatch(recs)
	}
	for i := 0; i < spilled; i++ {
		if !a.SpillAccess(rec(batches*per + i)) {
			t.Fatal("SpillAccess refused a record with an empty spool")
		}
	}
	const total = batches*per + spilled
	if n, _ := a.spool.Pending(); n != total {
		t.Fatalf("%d records spooled while telemetry was busy, want %d", n, total)
	}
	res, err := tel.Query(ctx, telemetry.Query{Service: "orders", Limit: telemetry.MaxLimit})
	if err != nil || len(res.Logs) != 0 {
		t.Fatalf("the busy store holds %d records (%v), want none yet", len(res.Logs), err)
	}

	store.busy.Store(false)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n, _ := a.spool.Pending(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			n, _ := a.spool.Pending()
			t.Fatalf("%d records still spooled 60s after telemetry recovered", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err = tel.Query(ctx, telemetry.Query{Service: "orders", Limit: telemetry.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range res.Logs {
		if seen[l.TraceID] {
			t.Fatalf("record %s stored twice", l.TraceID)
		}
		seen[l.TraceID] = true
	}
	if len(seen) != total {
		t.Fatalf("%d records stored after the spool drained, want %d", len(seen), total)
	}
	// Back to the direct path: with the spool empty and the store taking
	// writes, a new batch is stored at once.
	a.LogAccessBatch([]*gateway.AccessRecord{rec(total)})
	if n, _ := a.spool.Pending(); n != 0 {
		t.Fatalf("a record was spooled although telemetry takes writes")
	}
	if a.spool.Lost() != 0 {
		t.Fatalf("%d records lost", a.spool.Lost())
	}
}

// The gateway's access line names the route as the service's own line
// does: the path template, with the method apart.
func TestAccessRecordRouteAsKitNamesIt(t *testing.T) {
	for template, want := range map[string]string{
		"GET /v1/greetings/{name}": "/v1/greetings/{name}",
		"/v1/greetings/{name}":     "/v1/greetings/{name}",
		"/v1":                      "/v1",
		"unmatched":                "unmatched",
	} {
		l := accessLogRecord(&gateway.AccessRecord{Method: "GET", Route: template, Status: 200})
		if l.Route != want || l.Message != "GET "+want {
			t.Errorf("route %q: record route %q message %q, want %q and %q", template, l.Route, l.Message, want, "GET "+want)
		}
	}
}
