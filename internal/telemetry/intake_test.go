package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func sampleLogs(attrs int) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	ra := rl.Resource().Attributes()
	ra.PutStr("service.name", "orders")
	ra.PutStr("service.version", "v7")
	ra.PutStr("pave.cluster", "east")
	ra.PutStr("pave.datacenter", "dc2")
	lrs := rl.ScopeLogs().AppendEmpty().LogRecords()
	lr := lrs.AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	lr.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	lr.Body().SetStr("POST /v1/orders 502")
	a := lr.Attributes()
	a.PutStr("log.kind", "access")
	a.PutStr("route", "/v1/orders")
	a.PutInt("status", 502)
	a.PutDouble("duration_ms", 12.5)
	a.PutStr("caller", "web")
	a.PutStr("merchant_id", "m42")
	for i := 0; i < attrs; i++ {
		a.PutStr(fmt.Sprintf("extra%d", i), "v")
	}
	app := lrs.AppendEmpty()
	app.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(-time.Millisecond)))
	app.SetSeverityText("warning")
	app.Body().SetStr("upstream refused")
	app.Attributes().PutStr("psp", "acme")
	return ld
}

func post(t *testing.T, h http.Handler, path, ctype string, body []byte, gz bool) *httptest.ResponseRecorder {
	t.Helper()
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(body)
		zw.Close()
		body = b.Bytes()
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestIntakeOTLPLogsProtobufGzipAndJSON(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	h := NewIntake(s, Limits{}, nil)
	pb, _ := plogotlp.NewExportRequestFromLogs(sampleLogs(0)).MarshalProto()
	if rec := post(t, h, "/v1/logs", "application/x-protobuf", pb, true); rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("protobuf+gzip: %d %s", rec.Code, rec.Body)
	}
	js, _ := plogotlp.NewExportRequestFromLogs(sampleLogs(0)).MarshalJSON()
	if rec := post(t, h, "/v1/logs", "application/json", js, false); rec.Code != 200 {
		t.Fatalf("json: %d %s", rec.Code, rec.Body)
	}
	res := mustQuery(t, s, "service=orders&where=status%3D502")
	if len(res.Logs) != 2 {
		t.Fatalf("want the access line twice (two requests), got %d", len(res.Logs))
	}
	l := res.Logs[0]
	if l.Route != "/v1/orders" || l.Status != 502 || l.DurationMS != 12.5 || l.Caller != "web" || l.MerchantID != "m42" ||
		l.Cluster != "east" || l.Datacenter != "dc2" || l.Version != "v7" || l.Kind != "access" ||
		l.TraceID != "0102030405060708090a0b0c0d0e0f10" || l.SpanID != "0102030405060708" || l.Level != "INFO" {
		t.Fatalf("access line decoded as %+v", l)
	}
	res = mustQuery(t, s, "level=warn")
	if len(res.Logs) != 2 || res.Logs[0].Attrs.Map()["psp"] != "acme" || res.Logs[0].Level != "WARN" {
		t.Fatalf("app line: %+v", res.Logs)
	}
}

func TestIntakeOTLPTraces(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	h := NewIntake(s, Limits{}, nil)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "orders")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp.SetSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
	sp.SetParentSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.SetName("POST /v1/orders")
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(12 * time.Millisecond)))
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Attributes().PutInt("http.response.status_code", 502)
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if rec := post(t, h, "/v1/traces", "application/x-protobuf", pb, false); rec.Code != 200 {
		t.Fatalf("traces: %d %s", rec.Code, rec.Body)
	}
	res, err := s.Trace(context.Background(), "0102030405060708090A0B0C0D0E0F10")
	if err != nil || len(res.Spans) != 1 {
		t.Fatalf("trace: %v %+v", err, res)
	}
	got := res.Spans[0]
	if got.Name != "POST /v1/orders" || got.Status != "error" || got.Kind != "server" || got.ParentID != "0102030405060708" ||
		got.End.Sub(got.Start) != 12*time.Millisecond || got.Attrs.Map()["http.response.status_code"] != "502" {
		t.Fatalf("span decoded as %+v", got)
	}
}

func TestIntakeJSONLinesKitFormat(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	h := NewIntake(s, Limits{}, nil)
	body := `{"time":"2026-11-20T10:00:00.5Z","trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708","service":"orders","version":"v1","method":"GET","route":"/v1/x","status":200,"duration_ms":1.500,"bytes":10,"caller":"web","cluster":"east","datacenter":"dc1","merchant_id":"m1"}
{"time":"2026-11-20T10:00:00.4Z","level":"ERROR","msg":"db down","service":"orders","retries":3}
`
	rec := post(t, h, "/v1/jsonlines", "application/x-ndjson", []byte(body), true)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"accepted":2`) {
		t.Fatalf("jsonlines: %d %s", rec.Code, rec.Body)
	}
	res := mustQuery(t, s, "service=orders")
	if len(res.Logs) != 2 || res.Logs[0].Kind != "access" || res.Logs[0].Bytes != 10 || res.Logs[1].Attrs.Map()["retries"] != "3" || res.Logs[1].Level != "ERROR" {
		t.Fatalf("jsonlines stored %+v", res.Logs)
	}
}

func TestIntakeRejectionsNameTheProblem(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	h := NewIntake(s, Limits{MaxAttrs: 20, MaxBodyBytes: 4096}, nil)
	pb, _ := plogotlp.NewExportRequestFromLogs(sampleLogs(30)).MarshalProto()
	rec := post(t, h, "/v1/logs", "application/x-protobuf", pb, false)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "resourceLogs[0].scopeLogs[0].logRecords[0]") || !strings.Contains(rec.Body.String(), "limit of 20") {
		t.Fatalf("too many attributes: %d %s", rec.Code, rec.Body)
	}
	big := bytes.Repeat([]byte(`{"service":"x","msg":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`+"\n"), 200)
	if rec := post(t, h, "/v1/jsonlines", "application/x-ndjson", big, true); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized (after gunzip): %d %s", rec.Code, rec.Body)
	}
	if rec := post(t, h, "/v1/logs", "text/plain", []byte("x"), false); rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("wrong content type: %d", rec.Code)
	}
	if rec := post(t, h, "/v1/logs", "application/json", []byte(`{"resourceLogs":[{`), false); rec.Code != 400 || !strings.Contains(rec.Body.String(), "ExportLogsServiceRequest") {
		t.Fatalf("bad json: %d %s", rec.Code, rec.Body)
	}
	if rec := post(t, h, "/v1/jsonlines", "application/x-ndjson", []byte("{\"msg\":\"no service\"}\n"), false); rec.Code != 400 || !strings.Contains(rec.Body.String(), "line 1") {
		t.Fatalf("no service: %d %s", rec.Code, rec.Body)
	}
	if n := s.Stats().Records; n != 0 {
		t.Fatalf("rejected requests stored %d records", n)
	}
}

// busyStore is a fake that is always behind; the real store's ErrBusy path
// is covered by TestBackPressureRealStore.
type busyStore struct{ Store }

func (busyStore) AppendLogs(context.Context, []Log) error { return ErrBusy }

func TestBackPressure429(t *testing.T) {
	h := NewIntake(busyStore{}, Limits{}, nil)
	rec := post(t, h, "/v1/jsonlines?service=x", "application/x-ndjson", []byte(`{"msg":"x"}`), false)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("busy: %d %v", rec.Code, rec.Header())
	}
}

func TestBackPressureRealStore(t *testing.T) {
	// With flushing slower than intake, memory fills up past MaxMemBytes;
	// the write that finds it full is refused (and kicks a flush), not dropped.
	dir := t.TempDir()
	s := openTest(t, dir, func(o *Options) { o.MaxMemBytes = 64 << 10 })
	ctx := context.Background()
	var busy error
	for i := 0; i < 200 && busy == nil; i++ {
		busy = s.AppendLogs(ctx, genLogs(50))
	}
	if busy != ErrBusy {
		t.Fatalf("memory over MaxMemBytes: %v, want ErrBusy", busy)
	}
	// The intake asks before decoding: a busy store costs a sender's retry
	// no decoding (even a batch that would not parse is answered 429).
	h := NewIntake(s, Limits{}, nil)
	if !s.Busy() {
		t.Fatal("Busy is false over MaxMemBytes")
	}
	for _, path := range []string{"/v1/jsonlines?service=x", "/v1/logs", "/v1/traces"} {
		rec := post(t, h, path, "application/json", []byte(`not json`), false)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("%s on a busy store: %d %s", path, rec.Code, rec.Body)
		}
	}
	// Once flushed, writes are accepted again.
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Busy() {
		t.Fatal("Busy after a flush")
	}
	if err := s.AppendLogs(ctx, genLogs(5)); err != nil {
		t.Fatalf("after flush: %v", err)
	}
	if rec := post(t, h, "/v1/jsonlines?service=x", "application/x-ndjson", []byte(`{"msg":"x"}`), false); rec.Code != http.StatusOK {
		t.Fatalf("after flush: %d %s", rec.Code, rec.Body)
	}
}

func TestParseQueryErrorsNameTheParameter(t *testing.T) {
	for raw, param := range map[string]string{
		"since=yesterday":                    "since",
		"since=1h&from=2026-01-01T00:00:00Z": "since",
		"from=soon":                          "from",
		"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z": "to",
		"level=loud":             "level",
		"trace_id=xyz":           "trace_id",
		"where=novalue":          "where[0]",
		"where=a%3D1&where=%3D2": "where[1]",
		"regex=(":                "regex",
		"contains=a&regex=b":     "regex",
		"limit=0":                "limit",
		"cursor=zzz":             "cursor",
		"colour=blue":            "colour",
	} {
		v, _ := url.ParseQuery(raw)
		_, err := ParseQuery(v, t0)
		qe, ok := err.(*QueryError)
		if !ok || qe.Param != param {
			t.Errorf("%s: error %v, want one naming %s", raw, err, param)
		}
	}
	q := Query{Service: "a", From: t0, To: t0.Add(time.Hour), Level: "WARN", TraceID: traceID(1), Where: []Match{{Key: "route", Value: "/x"}, {Key: "status", Value: "200", Not: true}}, Contains: "boom", Limit: 5}
	back, err := ParseQuery(q.Values(), t0)
	if err != nil || back.Service != q.Service || !back.From.Equal(q.From) || len(back.Where) != 2 || !back.Where[1].Not || back.Limit != 5 {
		t.Fatalf("Values round trip: %v %+v", err, back)
	}
}
