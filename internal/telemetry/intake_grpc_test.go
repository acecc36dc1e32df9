package telemetry

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// startGRPC serves a GRPCIntake on a loopback port until the test ends,
// and checks that Serve then stops cleanly.
func startGRPC(t *testing.T, store Store, lim Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewGRPCIntake(store, lim, nil).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after its context ended: %v, want nil", err)
		}
	})
	return ln.Addr().String()
}

var noRetryLogs = otlploggrpc.RetryConfig{Enabled: false}

func logExporter(t *testing.T, addr string, retry otlploggrpc.RetryConfig) *sdklog.LoggerProvider {
	t.Helper()
	exp, err := otlploggrpc.New(context.Background(), otlploggrpc.WithEndpoint(addr), otlploggrpc.WithInsecure(),
		otlploggrpc.WithCompressor("gzip"), otlploggrpc.WithRetry(retry))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "orders"), attribute.String("service.version", "v7"),
		attribute.String("pave.cluster", "east"), attribute.String("pave.datacenter", "dc2"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	t.Cleanup(func() { lp.Shutdown(context.Background()) })
	return lp
}

// requestContext carries the trace the SDK stamps on log records and uses
// as the parent of new spans.
func requestContext() context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

// emitSample sends, through the SDK, the two lines sampleLogs builds for
// the HTTP tests: an access line and a warning.
func emitSample(lp *sdklog.LoggerProvider, extraAttrs int) {
	logger := lp.Logger("orders")
	var access otellog.Record
	access.SetTimestamp(t0)
	access.SetSeverity(otellog.SeverityInfo)
	access.SetBody(attribute.StringValue("POST /v1/orders 502"))
	access.AddAttributes(attribute.String("log.kind", "access"), attribute.String("route", "/v1/orders"), attribute.Int("status", 502),
		attribute.Float64("duration_ms", 12.5), attribute.String("caller", "web"), attribute.String("merchant_id", "m42"))
	for i := 0; i < extraAttrs; i++ {
		access.AddAttributes(attribute.String(fmt.Sprintf("extra%d", i), "v"))
	}
	logger.Emit(requestContext(), access)
	var app otellog.Record
	app.SetTimestamp(t0.Add(-time.Millisecond))
	app.SetSeverityText("warning")
	app.SetBody(attribute.StringValue("upstream refused"))
	app.AddAttributes(attribute.String("psp", "acme"))
	logger.Emit(context.Background(), app)
}

func TestGRPCIntakeSDKLogsAndSpansGzipDurableOnAck(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil) // FlushInterval 1h: acknowledged records are in the WAL only
	addr := startGRPC(t, slowStore{s}, Limits{})
	ctx := context.Background()

	lp := logExporter(t, addr, noRetryLogs)
	emitSample(lp, 0)
	if err := lp.ForceFlush(ctx); err != nil {
		t.Fatalf("OTLP/gRPC logs export: %v", err)
	}
	afterLogs := crashCopy(t, dir)

	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithCompressor("gzip"), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "orders"))))
	defer tp.Shutdown(ctx)
	_, span := tp.Tracer("orders").Start(requestContext(), "POST /v1/orders", trace.WithTimestamp(t0),
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.Int("http.response.status_code", 502)))
	span.SetStatus(otelcodes.Error, "upstream refused")
	span.End(trace.WithTimestamp(t0.Add(12 * time.Millisecond)))
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatalf("OTLP/gRPC traces export: %v", err)
	}

	afterSpans := crashCopy(t, dir)

	if n := afterLogs.Stats().Records; n != 2 {
		t.Fatalf("copy taken when the logs were acknowledged holds %d records, want the 2 lines", n)
	}
	for name, st := range map[string]Store{"live": s, "copy taken at the last acknowledgement": afterSpans} {
		res := mustQuery(t, st, "service=orders&where=status%3D502")
		if len(res.Logs) != 1 {
			t.Fatalf("%s: want the access line once, got %+v", name, res.Logs)
		}
		l := res.Logs[0]
		if l.Route != "/v1/orders" || l.Status != 502 || l.DurationMS != 12.5 || l.Caller != "web" || l.MerchantID != "m42" ||
			l.Cluster != "east" || l.Datacenter != "dc2" || l.Version != "v7" || l.Kind != "access" ||
			l.TraceID != "0102030405060708090a0b0c0d0e0f10" || l.SpanID != "0102030405060708" || l.Level != "INFO" || !l.Time.Equal(t0) {
			t.Fatalf("%s: access line decoded as %+v", name, l)
		}
		res = mustQuery(t, st, "level=warn")
		if len(res.Logs) != 1 || res.Logs[0].Attrs.Map()["psp"] != "acme" || res.Logs[0].Level != "WARN" || res.Logs[0].Message != "upstream refused" {
			t.Fatalf("%s: app line: %+v", name, res.Logs)
		}
		tr, err := st.Trace(ctx, "0102030405060708090a0b0c0d0e0f10")
		if err != nil || len(tr.Spans) != 1 || len(tr.Logs) != 1 {
			t.Fatalf("%s: trace: %v %+v", name, err, tr)
		}
		got := tr.Spans[0]
		if got.Name != "POST /v1/orders" || got.Status != "error" || got.StatusText != "upstream refused" || got.Kind != "server" ||
			got.ParentID != "0102030405060708" || got.Service != "orders" || got.End.Sub(got.Start) != 12*time.Millisecond ||
			got.Attrs.Map()["http.response.status_code"] != "502" {
			t.Fatalf("%s: span decoded as %+v", name, got)
		}
	}
}

// crashCopy opens a copy of the store's directory as it is on disk now,
// as a crash would leave it: the WAL replay must bring back every
// acknowledged record.
func crashCopy(t *testing.T, dir string) *Embedded {
	t.Helper()
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	return openTest(t, crashed, nil)
}

// slowStore makes every append take a while, so that an intake
// acknowledging before the append returned would be caught by the copy.
type slowStore struct{ Store }

func (s slowStore) AppendLogs(ctx context.Context, logs []Log) error {
	time.Sleep(100 * time.Millisecond)
	return s.Store.AppendLogs(ctx, logs)
}

func (s slowStore) AppendSpans(ctx context.Context, spans []Span) error {
	time.Sleep(100 * time.Millisecond)
	return s.Store.AppendSpans(ctx, spans)
}

// refusingStore refuses the first refusals appends with err, then passes
// them to the real store.
type refusingStore struct {
	Store
	err      error
	refusals int32
	calls    atomic.Int32
}

func (r *refusingStore) AppendLogs(ctx context.Context, logs []Log) error {
	if r.calls.Add(1) <= r.refusals {
		return r.err
	}
	return r.Store.AppendLogs(ctx, logs)
}

func (r *refusingStore) AppendSpans(ctx context.Context, spans []Span) error {
	if r.calls.Add(1) <= r.refusals {
		return r.err
	}
	return r.Store.AppendSpans(ctx, spans)
}

func TestGRPCIntakeBackPressureIsRetriedBySDK(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	rs := &refusingStore{Store: s, err: ErrBusy, refusals: 1}
	addr := startGRPC(t, rs, Limits{})
	// The SDK retries only what the server marks retryable; the delay it
	// waits is the server's RetryInfo (1s), not these intervals.
	lp := logExporter(t, addr, otlploggrpc.RetryConfig{Enabled: true, InitialInterval: 10 * time.Millisecond,
		MaxInterval: 100 * time.Millisecond, MaxElapsedTime: time.Minute})
	emitSample(lp, 0)
	if err := lp.ForceFlush(context.Background()); err != nil {
		t.Fatalf("export after one busy answer: %v", err)
	}
	if n := rs.calls.Load(); n != 2 {
		t.Fatalf("store saw %d appends, want 2 (refused, then retried)", n)
	}
	if res := mustQuery(t, s, "service=orders"); len(res.Logs) != 2 {
		t.Fatalf("want both lines stored once, got %d", len(res.Logs))
	}
}

func rawLogsClient(t *testing.T, addr string) collogs.LogsServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return collogs.NewLogsServiceClient(cc)
}

func oneLogRequest(traceID []byte) *collogs.ExportLogsServiceRequest {
	return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "orders"}}}}},
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{TimeUnixNano: uint64(t0.UnixNano()), TraceId: traceID,
			Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "hello"}}}}}},
	}}}
}

func retryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.RetryDelay.AsDuration()
		}
	}
	return 0
}

func TestGRPCIntakeBackPressureStatus(t *testing.T) {
	for name, tc := range map[string]struct {
		err   error
		delay time.Duration
	}{
		"busy":        {ErrBusy, time.Second},
		"disk full":   {fmt.Errorf("%w: wal: no space left on device", ErrUnavailable), 5 * time.Second},
		"store close": {fmt.Errorf("%w: store is closed", ErrUnavailable), 5 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			rs := &refusingStore{Store: openTest(t, t.TempDir(), nil), err: tc.err, refusals: 1 << 30}
			_, err := rawLogsClient(t, startGRPC(t, rs, Limits{})).Export(context.Background(), oneLogRequest(nil))
			st := status.Convert(err)
			if st.Code() != codes.Unavailable || retryDelay(st) != tc.delay || st.Message() != tc.err.Error() {
				t.Fatalf("got %v (retry after %v), want Unavailable with RetryInfo %v and message %q", st, retryDelay(st), tc.delay, tc.err)
			}
		})
	}
}

func TestGRPCIntakeRejectionsNameTheProblem(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	addr := startGRPC(t, s, Limits{MaxAttrs: 20, MaxBodyBytes: 4096})
	ctx := context.Background()

	// Through the SDK: too many attributes on a record.
	lp := logExporter(t, addr, noRetryLogs)
	emitSample(lp, 30)
	// The SDK wraps the status; status.Convert finds it, with the whole
	// error as its message.
	err := lp.ForceFlush(ctx)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "resourceLogs[0].scopeLogs[0].logRecords[0]") ||
		!strings.Contains(st.Message(), "limit of 20") {
		t.Fatalf("too many attributes: %v", err)
	}

	// Through the SDK, gzip on: a message over the limit once decompressed
	// (it compresses far below 4096 bytes). No RetryInfo: resending the
	// same batch cannot help.
	big := logExporter(t, addr, noRetryLogs)
	var r otellog.Record
	r.SetTimestamp(t0)
	r.SetBody(attribute.StringValue(strings.Repeat("a", 8000)))
	big.Logger("orders").Emit(ctx, r)
	err = big.ForceFlush(ctx)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") ||
		!strings.Contains(st.Message(), "4096") || retryDelay(st) != 0 {
		t.Fatalf("oversized: %v", err)
	}

	// A raw OTLP client can send what the SDK never would: a 3-byte trace id.
	_, err = rawLogsClient(t, addr).Export(ctx, oneLogRequest([]byte{1, 2, 3}))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "ExportLogsServiceRequest") || !strings.Contains(st.Message(), "TraceID") {
		t.Fatalf("3-byte trace id: %v", err)
	}

	// A span without ids.
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = coltrace.NewTraceServiceClient(cc).Export(ctx, &coltrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "no ids"}}}}}}})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "resourceSpans[0].scopeSpans[0].spans[0]: traceId and spanId are required") {
		t.Fatalf("span without ids: %v", err)
	}

	if n := s.Stats().Records; n != 0 {
		t.Fatalf("rejected requests stored %d records", n)
	}
}

// gateStore holds each append until released, to stop the server mid-call.
type gateStore struct {
	Store
	entered, release chan struct{}
}

func (g gateStore) AppendLogs(ctx context.Context, logs []Log) error {
	g.entered <- struct{}{}
	<-g.release
	return g.Store.AppendLogs(ctx, logs)
}

func TestGRPCIntakeShutdownFinishesCallsInFlight(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	gs := gateStore{Store: s, entered: make(chan struct{}, 1), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- NewGRPCIntake(gs, Limits{}, nil).Serve(ctx, ln) }()

	exported := make(chan error, 1)
	go func() {
		_, err := rawLogsClient(t, addr).Export(context.Background(), oneLogRequest(nil))
		exported <- err
	}()
	<-gs.entered
	cancel()
	// Once the listener is closed the stop has begun; the call is still
	// waiting for its append.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	close(gs.release)
	if err := <-exported; err != nil {
		t.Fatalf("call in flight during shutdown: %v, want it acknowledged", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if n := s.Stats().Records; n != 1 {
		t.Fatalf("stored %d records, want 1", n)
	}
}
