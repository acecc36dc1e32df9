package kit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// maxBatch bounds the records in one OTLP request.
const maxBatch = 1024

// senders is how many export requests may be in flight at once. One would
// leave the batcher waiting on each round trip while the queue overflows
// under load.
const senders = 4

type outBatch struct {
	ctx    context.Context
	signal string
	body   []byte
	n      int
}

// exporter sends spans and logs to the OTLP/HTTP receiver. Requests only
// ever do a non-blocking channel send; one goroutine batches and encodes,
// a few send, another re-sends the disk buffer. A batch the receiver does not accept
// (down, timeout, 5xx, 429) is written to the disk buffer before it is
// forgotten. Delivery is at-least-once and unordered: a batch whose
// response was lost is sent again, and buffered batches may arrive after
// newer ones (every record carries its own timestamp).
type exporter struct {
	cfg      Config
	disabled bool
	spans    chan sdktrace.ReadOnlySpan
	logs     chan logRecord
	flushc   chan chan struct{}
	outbox   chan outBatch
	inflight sync.WaitGroup
	done     chan struct{}
	wg       sync.WaitGroup
	httpc    *http.Client
	enc      *otlpEncoder
	spool    *spool
	log      *slog.Logger
	down     atomic.Bool
	closing  atomic.Bool

	// base bounds every export request; close cancels it when its own
	// deadline passes, so a hanging receiver cannot hold shutdown.
	base       context.Context
	cancelBase context.CancelFunc

	closeMu  sync.Mutex
	closeCtx context.Context
	closed   bool

	batches *prometheus.CounterVec // signal, result
	dropped *prometheus.CounterVec // signal, reason
	records *prometheus.CounterVec // signal
	latency prometheus.Histogram
}

type permanentError struct{ error }

func newExporter(cfg Config, reg prometheus.Registerer, out io.Writer) *exporter {
	e := &exporter{
		cfg:      cfg,
		disabled: cfg.ExportDisabled,
		spans:    make(chan sdktrace.ReadOnlySpan, cfg.QueueSize),
		logs:     make(chan logRecord, cfg.QueueSize),
		flushc:   make(chan chan struct{}),
		outbox:   make(chan outBatch, senders),
		done:     make(chan struct{}),
		enc:      newOTLPEncoder(cfg),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kit_export_batches_total",
			Help: "OTLP batches by outcome: sent, spooled (receiver down, written to disk), resent (from disk), rejected (HTTP 400), lost (disk buffer full or unwritable).",
		}, []string{"signal", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kit_export_dropped_records_total",
			Help: "Records not exported: queue_full (the in-memory queue was full), lost (their batch could not be buffered), rejected (the receiver refused the batch as malformed).",
		}, []string{"signal", "reason"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kit_export_records_total", Help: "Records handed to the exporter's batches.",
		}, []string{"signal"}),
	}
	e.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kit_export_request_duration_seconds",
		Help:    "Duration of OTLP/HTTP export requests, failed ones included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	e.base, e.cancelBase = context.WithCancel(context.Background())
	reg.MustRegister(e.batches, e.dropped, e.records, e.latency)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	e.httpc = &http.Client{Transport: transport}
	if e.disabled {
		return e
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
	if err != nil {
		// Export still works while the receiver is up; only the outage
		// buffer is missing, so say so loudly and carry on.
		fmt.Fprintf(out, `{"time":%q,"level":"ERROR","msg":"kit: no disk buffer; telemetry will be lost while the OTLP receiver is down","error":%s}`+"\n",
			time.Now().UTC().Format(time.RFC3339Nano), appendJSONString(nil, err.Error()))
	} else {
		e.spool = sp
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kit_export_spooled_batches", Help: "Batches waiting in the disk buffer.",
		}, func() float64 { return float64(sp.count.Load()) }))
	}
	return e
}

// start launches the background goroutines once the logger exists.
func (e *exporter) start(log *slog.Logger) {
	e.log = log
	if e.disabled {
		return
	}
	e.wg.Add(1)
	go e.run()
	for range senders {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for b := range e.outbox {
				e.deliver(b.ctx, b.signal, b.body, b.n)
				e.inflight.Done()
			}
		}()
	}
	if e.spool != nil {
		e.wg.Add(1)
		go e.resendLoop()
	}
}

// enqueueLog never blocks: a full queue drops and counts.
func (e *exporter) enqueueLog(r logRecord) {
	if e.disabled {
		return
	}
	select {
	case e.logs <- r:
	default:
		e.dropped.WithLabelValues("logs", "queue_full").Inc()
	}
}

// OnStart is part of sdktrace.SpanProcessor.
func (e *exporter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd is part of sdktrace.SpanProcessor; it never blocks.
func (e *exporter) OnEnd(s sdktrace.ReadOnlySpan) {
	if e.disabled || !s.SpanContext().IsSampled() {
		return
	}
	select {
	case e.spans <- s:
	default:
		e.dropped.WithLabelValues("traces", "queue_full").Inc()
	}
}

// Shutdown is part of sdktrace.SpanProcessor; App.Close stops the exporter.
func (e *exporter) Shutdown(context.Context) error { return nil }

// ForceFlush sends (or buffers) everything queued so far.
func (e *exporter) ForceFlush(ctx context.Context) error {
	if e.disabled {
		return nil
	}
	reply := make(chan struct{})
	select {
	case e.flushc <- reply:
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close flushes what is queued and stops. Sends are bounded by ctx; what
// cannot be sent in time goes to the disk buffer.
func (e *exporter) close(ctx context.Context) error {
	e.closeMu.Lock()
	if e.closed {
		e.closeMu.Unlock()
		return nil
	}
	e.closed = true
	e.closeCtx = ctx
	e.closing.Store(true)
	e.closeMu.Unlock()
	stop := context.AfterFunc(ctx, e.cancelBase)
	defer stop()
	close(e.done)
	e.wg.Wait()
	e.cancelBase()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kit: telemetry flush cut short (what was not sent is in %s): %w", e.cfg.SpoolDir, err)
	}
	return nil
}

func (e *exporter) run() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.ExportInterval)
	defer t.Stop()
	spans := make([]sdktrace.ReadOnlySpan, 0, maxBatch)
	logs := make([]logRecord, 0, maxBatch)
	flush := func(ctx context.Context) {
		if len(spans) > 0 {
			e.sendSpans(ctx, spans)
			clear(spans)
			spans = spans[:0]
		}
		if len(logs) > 0 {
			e.sendLogs(ctx, logs)
			clear(logs)
			logs = logs[:0]
		}
	}
	drainQueued := func(ctx context.Context) {
		for {
			select {
			case s := <-e.spans:
				if spans = append(spans, s); len(spans) >= maxBatch {
					flush(ctx)
				}
			case l := <-e.logs:
				if logs = append(logs, l); len(logs) >= maxBatch {
					flush(ctx)
				}
			default:
				flush(ctx)
				return
			}
		}
	}
	for {
		select {
		case s := <-e.spans:
			if spans = append(spans, s); len(spans) >= maxBatch {
				flush(e.base)
			}
		case l := <-e.logs:
			if logs = append(logs, l); len(logs) >= maxBatch {
				flush(e.base)
			}
		case <-t.C:
			flush(e.base)
		case reply := <-e.flushc:
			drainQueued(e.base)
			e.inflight.Wait()
			close(reply)
		case <-e.done:
			e.closeMu.Lock()
			ctx := e.closeCtx
			e.closeMu.Unlock()
			drainQueued(ctx)
			e.inflight.Wait()
			close(e.outbox)
			return
		}
	}
}

func (e *exporter) sendSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) {
	body := e.enc.encodeSpans(spans)
	e.records.WithLabelValues("traces").Add(float64(len(spans)))
	e.inflight.Add(1)
	e.outbox <- outBatch{ctx, "traces", body, len(spans)}
}

func (e *exporter) sendLogs(ctx context.Context, logs []logRecord) {
	body := e.enc.encodeLogs(logs)
	e.records.WithLabelValues("logs").Add(float64(len(logs)))
	e.inflight.Add(1)
	e.outbox <- outBatch{ctx, "logs", body, len(logs)}
}

func (e *exporter) url(signal string) string {
	if signal == "traces" {
		return e.cfg.TracesURL
	}
	return e.cfg.LogsURL
}

func (e *exporter) deliver(ctx context.Context, signal string, body []byte, n int) {
	// While the receiver is known to be down, batches go straight to disk
	// instead of waiting out a timeout each; the re-send loop finds out when
	// it is back. On close every batch gets one direct attempt.
	if e.spool == nil || !e.down.Load() || e.closing.Load() {
		err := e.post(ctx, signal, body)
		if err == nil {
			e.batches.WithLabelValues(signal, "sent").Inc()
			e.markUp()
			return
		}
		var perm permanentError
		if errors.As(err, &perm) {
			e.batches.WithLabelValues(signal, "rejected").Inc()
			e.dropped.WithLabelValues(signal, "rejected").Add(float64(n))
			e.log.Error("kit: OTLP receiver rejected a batch; dropping it", "signal", signal, "error", err)
			return
		}
		e.markDown(err)
	}
	if e.spool == nil {
		e.batches.WithLabelValues(signal, "lost").Inc()
		e.dropped.WithLabelValues(signal, "lost").Add(float64(n))
		return
	}
	if err := e.spool.write(signal, body); err != nil {
		e.batches.WithLabelValues(signal, "lost").Inc()
		e.dropped.WithLabelValues(signal, "lost").Add(float64(n))
		e.log.Error("kit: cannot buffer telemetry on disk; records lost", "signal", signal, "records", n, "error", err)
		return
	}
	e.batches.WithLabelValues(signal, "spooled").Inc()
}

func (e *exporter) markDown(err error) {
	if !e.down.Swap(true) {
		e.log.Warn("kit: OTLP receiver unreachable; buffering telemetry on disk until it returns",
			"endpoint", e.cfg.OTLPEndpoint, "spool_dir", e.cfg.SpoolDir, "error", err)
	}
}

func (e *exporter) markUp() {
	if e.down.Swap(false) {
		e.log.Info("kit: OTLP receiver reachable again", "endpoint", e.cfg.OTLPEndpoint)
	}
}

func (e *exporter) post(ctx context.Context, signal string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ExportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url(signal), bytes.NewReader(body))
	if err != nil {
		return permanentError{fmt.Errorf("OTLP endpoint %q: %w", e.url(signal), err)}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	start := time.Now()
	defer func() { e.latency.Observe(time.Since(start).Seconds()) }()
	resp, err := e.httpc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusBadRequest:
		return permanentError{fmt.Errorf("%s answered %s", e.url(signal), resp.Status)}
	}
	return fmt.Errorf("%s answered %s", e.url(signal), resp.Status)
}

// resendLoop empties the disk buffer whenever the receiver takes batches,
// starting at once so a restarted service sends what its predecessor left.
func (e *exporter) resendLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.RetryInterval)
	defer t.Stop()
	for {
		e.resend()
		select {
		case <-t.C:
		case <-e.done:
			return
		}
	}
}

func (e *exporter) resend() {
	names, err := e.spool.list()
	if err != nil {
		e.log.Error("kit: cannot read the disk buffer", "error", err)
		return
	}
	for _, name := range names {
		select {
		case <-e.done:
			return
		default:
		}
		body, err := e.spool.read(name)
		if err != nil {
			e.log.Error("kit: cannot read a buffered batch", "file", name, "error", err)
			continue
		}
		if body == nil {
			continue
		}
		signal := signalOf(name)
		if signal != "traces" && signal != "logs" {
			continue
		}
		err = e.post(e.base, signal, body)
		var perm permanentError
		switch {
		case err == nil:
			e.batches.WithLabelValues(signal, "resent").Inc()
			e.spool.remove(name, len(body))
			e.markUp()
		case errors.As(err, &perm):
			e.batches.WithLabelValues(signal, "rejected").Inc()
			e.log.Error("kit: OTLP receiver rejected a buffered batch; removing it", "file", name, "error", err)
			e.spool.remove(name, len(body))
		default:
			e.markDown(err)
			return
		}
	}
}

// ensure the exporter satisfies the SDK's interface.
var _ sdktrace.SpanProcessor = (*exporter)(nil)
