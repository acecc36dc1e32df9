package main

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// runtimeOutput is the local runtime's OutputSink: it hands the lines local
// instances write to the telemetry store in batches, so `pave logs` shows
// crashes, panics and the output of services that do not use kit.
//
// kit's own JSON log records on stdout are skipped: kit exports the same
// records over OTLP, with trace ids, and storing both would show each line
// twice.
type runtimeOutput struct {
	store interface {
		AppendLogs(context.Context, []telemetry.Log) error
	}
	cluster    string
	datacenter string
	log        *slog.Logger

	mu      sync.Mutex
	buf     []telemetry.Log
	dropped int
}

// maxBufferedLines bounds memory while the store is busy; lines beyond are
// dropped and counted (they stay in the instance's log file).
const maxBufferedLines = 50000

func (o *runtimeOutput) Line(service, version, instance, stream string, line []byte) {
	if stream == "stdout" && isKitRecord(line, service) {
		return
	}
	level := "INFO"
	if stream == "stderr" {
		level = "ERROR"
	}
	rec := telemetry.Log{
		Time: time.Now().UTC(), Service: service, Version: version, Level: level, Message: string(line), Kind: "app",
		Cluster: o.cluster, Datacenter: o.datacenter, Attrs: telemetry.Attrs{{Key: "instance", Value: instance}, {Key: "stream", Value: stream}},
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) >= maxBufferedLines {
		o.dropped++
		return
	}
	o.buf = append(o.buf, rec)
}

func isKitRecord(line []byte, service string) bool {
	return bytes.HasPrefix(line, []byte("{")) && bytes.Contains(line, []byte(`"service":"`+service+`"`))
}

// Run flushes the buffered lines every 500ms until ctx ends, then once more.
func (o *runtimeOutput) Run(ctx context.Context) error {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			o.flush(fctx)
			return nil
		case <-t.C:
			o.flush(ctx)
		}
	}
}

func (o *runtimeOutput) flush(ctx context.Context) {
	o.mu.Lock()
	batch, dropped := o.buf, o.dropped
	o.buf, o.dropped = nil, 0
	o.mu.Unlock()
	if dropped > 0 {
		o.log.Warn("service output lines dropped while the telemetry store was behind; they are in the instance log files", "lines", dropped)
	}
	if len(batch) == 0 {
		return
	}
	if err := o.store.AppendLogs(ctx, batch); err != nil {
		// Keep the batch for the next tick (ErrBusy, a full disk): the
		// buffer bound still applies.
		o.log.Warn("service output not stored yet; retrying", "lines", len(batch), "err", err)
		o.mu.Lock()
		if len(o.buf)+len(batch) <= maxBufferedLines {
			o.buf = append(batch, o.buf...)
		} else {
			o.dropped += len(batch)
		}
		o.mu.Unlock()
	}
}
