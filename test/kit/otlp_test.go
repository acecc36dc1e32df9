// Package kitotlp_test checks kit's OTLP/HTTP export against a receiver
// that decodes with the OpenTelemetry Collector's own pdata, including an
// outage of the receiver and a restart of the service in between. It lives
// in the root module so kit's go.mod never needs pdata.
package kitotlp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/kit"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// receiver is a minimal OTLP/HTTP receiver: protobuf bodies on /v1/traces
// and /v1/logs, decoded with pdata. It counts every record it sees, so
// duplicates are visible.
type receiver struct {
	mu       sync.Mutex
	spans    map[string]int   // trace_id/span_id -> times received
	access   map[string]int   // span_id of the access log -> times received
	appLogs  map[string]int   // "seq" attribute -> times received
	severity map[int64]string // access log status -> severity text
	services map[string]bool
	bad      []string
	srv      *http.Server
	addr     string
}

func newReceiver() *receiver {
	return &receiver{spans: map[string]int{}, access: map[string]int{}, appLogs: map[string]int{}, severity: map[int64]string{}, services: map[string]bool{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		rc.fail("content type %q", ct)
		http.Error(w, "want application/x-protobuf", 415)
		return
	}
	switch r.URL.Path {
	case "/v1/traces":
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
		if err != nil {
			rc.fail("traces do not decode: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		rc.mu.Lock()
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			if v, ok := rs.Resource().Attributes().Get("service.name"); ok {
				rc.services[v.Str()] = true
			}
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j).Spans()
				for k := 0; k < ss.Len(); k++ {
					s := ss.At(k)
					if s.Kind() != ptrace.SpanKindServer {
						continue
					}
					rc.spans[s.TraceID().String()+"/"+s.SpanID().String()]++
				}
			}
		}
		rc.mu.Unlock()
	case "/v1/logs":
		ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(body)
		if err != nil {
			rc.fail("logs do not decode: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		rc.mu.Lock()
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					kind, _ := lr.Attributes().Get("log.kind")
					switch kind.Str() {
					case "access":
						rc.access[lr.SpanID().String()]++
						if st, ok := lr.Attributes().Get("status"); ok {
							rc.severity[st.Int()] = lr.SeverityText()
						}
						if route, _ := lr.Attributes().Get("route"); route.Str() != "/v1/work/{n}" {
							rc.bad = append(rc.bad, "access log route "+route.Str())
						}
					case "app":
						if seq, ok := lr.Attributes().Get("seq"); ok {
							rc.appLogs[seq.AsString()]++
							if lr.TraceID().IsEmpty() {
								rc.bad = append(rc.bad, "app log without trace id")
							}
						}
					}
				}
			}
		}
		rc.mu.Unlock()
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(200)
}

func (rc *receiver) fail(format string, args ...any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bad = append(rc.bad, fmt.Sprintf(format, args...))
}

// start listens on addr (":0" style or a fixed address to come back on).
func (rc *receiver) start(t *testing.T, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 100 { // the port may linger briefly after stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("receiver listen %s: %v", addr, err)
	}
	rc.addr = ln.Addr().String()
	rc.srv = &http.Server{Handler: rc}
	go func() { _ = rc.srv.Serve(ln) }()
}

func (rc *receiver) stop() { _ = rc.srv.Close() }

type counts struct{ spans, access, app, dupes int }

func (rc *receiver) counts() counts {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var c counts
	for _, m := range []map[string]int{rc.spans, rc.access, rc.appLogs} {
		for _, n := range m {
			c.dupes += n - 1
		}
	}
	c.spans, c.access, c.app = len(rc.spans), len(rc.access), len(rc.appLogs)
	return c
}

func (rc *receiver) waitFor(t *testing.T, n int) counts {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := rc.counts()
		if c.spans >= n && c.access >= n && c.app >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %+v, want %d of each", c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (rc *receiver) check(t *testing.T, n int, maxDupes int) {
	t.Helper()
	c := rc.counts()
	rc.mu.Lock()
	bad := rc.bad
	rc.mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("receiver saw bad data: %v", bad)
	}
	if c.spans != n || c.access != n || c.app != n {
		t.Errorf("distinct records %+v, want exactly %d of each", c, n)
	}
	if c.dupes > maxDupes {
		t.Errorf("%d duplicate records, at most %d allowed (at-least-once re-sends only)", c.dupes, maxDupes)
	}
}

func newApp(t *testing.T, endpoint, spool string) *kit.App {
	t.Helper()
	app := kit.NewWithConfig(kit.Config{
		Service: "exporter-test", Version: "v9", Output: io.Discard,
		OTLPEndpoint: endpoint, SpoolDir: spool,
		ExportInterval: 20 * time.Millisecond, RetryInterval: 50 * time.Millisecond, ExportTimeout: 30 * time.Second,
	})
	app.HandleFunc("GET /v1/work/{n}", func(w http.ResponseWriter, r *http.Request) {
		app.Logger().InfoContext(r.Context(), "working", "seq", r.PathValue("n"))
		_, _ = io.WriteString(w, "ok")
	})
	return app
}

func drive(t *testing.T, app *kit.App, from, to int) {
	t.Helper()
	h := app.Handler()
	for i := from; i < to; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/v1/work/%d", i), nil))
		if rec.Code != 200 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
}

func batches(t *testing.T, app *kit.App, result string) float64 {
	t.Helper()
	fams, err := app.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range fams {
		if f.GetName() != "kit_export_batches_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func spooled(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.otlp"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestSpansAndLogsArriveAtRealReceiver(t *testing.T) {
	rc := newReceiver()
	rc.start(t, "127.0.0.1:0")
	defer rc.stop()
	spool := t.TempDir()
	app := newApp(t, "http://"+rc.addr, spool)
	const n = 300
	drive(t, app, 0, n)
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.check(t, n, 0)
	if !rc.services["exporter-test"] {
		t.Errorf("resource service.name missing: %v", rc.services)
	}
	if s := spooled(t, spool); s != 0 {
		t.Errorf("%d batches left in the disk buffer with the receiver up", s)
	}
}

func TestOutageThenRecoveryLosesNothing(t *testing.T) {
	rc := newReceiver()
	rc.start(t, "127.0.0.1:0")
	addr := rc.addr
	rc.stop() // down from the start; it comes back on the same port

	spool := t.TempDir()
	app := newApp(t, "http://"+addr, spool)
	const n = 400
	drive(t, app, 0, n/2)
	deadline := time.Now().Add(20 * time.Second)
	for spooled(t, spool) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("receiver down, but nothing reached the disk buffer")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Stay down for a while: many failed re-send rounds, more traffic.
	for i := n / 2; i < n; i += 50 {
		drive(t, app, i, i+50)
		time.Sleep(60 * time.Millisecond)
	}
	if got := batches(t, app, "spooled"); got < 4 {
		t.Errorf("kit_export_batches_total{result=spooled} = %v during the outage, want several", got)
	}
	rc2 := newReceiver()
	rc2.start(t, addr)
	defer rc2.stop()
	rc2.waitFor(t, n)
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc2.check(t, n, 0)
	if s := spooled(t, spool); s != 0 {
		t.Errorf("%d batches still in the disk buffer after recovery", s)
	}
	if got := batches(t, app, "resent"); got < 4 {
		t.Errorf("kit_export_batches_total{result=resent} = %v, want the spooled batches", got)
	}
}

func TestRestartResendsTheDiskBuffer(t *testing.T) {
	rc := newReceiver()
	rc.start(t, "127.0.0.1:0")
	addr := rc.addr
	rc.stop()

	spool := t.TempDir()
	first := newApp(t, "http://"+addr, spool)
	const n = 250
	drive(t, first, 0, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if spooled(t, spool) == 0 {
		t.Fatal("the stopped service left nothing in the disk buffer although the receiver was down")
	}
	// Leftovers of a crash mid-write must be ignored, not sent.
	if err := os.WriteFile(filepath.Join(spool, "00000000000000000001-1-00000001.logs.otlp.tmp"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	rc2 := newReceiver()
	rc2.start(t, addr)
	defer rc2.stop()
	second := newApp(t, "http://"+addr, spool) // the restarted service
	rc2.waitFor(t, n)
	// The receiver counts a batch before the service reads its answer and
	// removes the file: wait for the removals, or a Close racing the last
	// answer leaves that batch for the next start (sent again then, never
	// lost), which is not what this test is about.
	for deadline := time.Now().Add(10 * time.Second); spooled(t, spool) != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if err := second.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc2.check(t, n, 0)
	if s := spooled(t, spool); s != 0 {
		t.Errorf("%d batches still in the disk buffer after the restart", s)
	}
}

// Spans carry the W3C trace the caller sent.
func TestExportedSpanKeepsIncomingTrace(t *testing.T) {
	var mu sync.Mutex
	var got []ptrace.Span
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
			if err == nil {
				mu.Lock()
				rs := td.ResourceSpans()
				for i := 0; i < rs.Len(); i++ {
					for j := 0; j < rs.At(i).ScopeSpans().Len(); j++ {
						ss := rs.At(i).ScopeSpans().At(j).Spans()
						for k := 0; k < ss.Len(); k++ {
							got = append(got, ss.At(k))
						}
					}
				}
				mu.Unlock()
			}
		}
	}))
	defer srv.Close()
	app := newApp(t, srv.URL, t.TempDir())
	req := httptest.NewRequest("GET", "/v1/work/1", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	app.Handler().ServeHTTP(httptest.NewRecorder(), req)
	_ = app.Close(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("want 1 span, got %d", len(got))
	}
	s := got[0]
	if s.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.ParentSpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("span trace %s parent %s", s.TraceID(), s.ParentSpanID())
	}
	if s.Name() != "GET /v1/work/{n}" || s.Kind() != ptrace.SpanKindServer {
		t.Errorf("span name %q kind %v", s.Name(), s.Kind())
	}
	route, _ := s.Attributes().Get("http.route")
	status, _ := s.Attributes().Get("http.response.status_code")
	if route.Str() != "/v1/work/{n}" || status.Int() != 200 || status.Type() != pcommon.ValueTypeInt {
		t.Errorf("attributes %v", s.Attributes().AsRaw())
	}
	if s.StartTimestamp() == 0 || s.EndTimestamp() < s.StartTimestamp() {
		t.Errorf("timestamps %v..%v", s.StartTimestamp(), s.EndTimestamp())
	}
}

// A 5xx is the service's own failure and is exported at ERROR, so that
// searching for errors finds failing requests; 4xx and 2xx stay INFO.
func TestAccessRecordSeverityFollowsStatus(t *testing.T) {
	rc := newReceiver()
	rc.start(t, "127.0.0.1:0")
	defer rc.stop()
	app := kit.NewWithConfig(kit.Config{Service: "severity-test", Version: "v1", Output: io.Discard,
		OTLPEndpoint: "http://" + rc.addr, SpoolDir: t.TempDir(), ExportInterval: 20 * time.Millisecond})
	app.HandleFunc("GET /v1/work/{n}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("n"))
		w.WriteHeader(code)
	})
	for _, code := range []int{200, 404, 503} {
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", fmt.Sprintf("/v1/work/%d", code), nil))
	}
	if err := app.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	want := map[int64]string{200: "INFO", 404: "INFO", 503: "ERROR"}
	for code, sev := range want {
		if rc.severity[code] != sev {
			t.Errorf("status %d exported at %q, want %q (all: %v)", code, rc.severity[code], sev, rc.severity)
		}
	}
}
