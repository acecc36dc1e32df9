package kit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSpoolBoundsOrderAndCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	// A crash mid-write leaves a .tmp file: never listed, never sent.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001-1-00000001.logs.otlp.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openSpool(dir, 25)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.write("traces", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := s.write("logs", []byte("abcdefghij")); err != nil {
		t.Fatal(err)
	}
	if err := s.write("logs", []byte("0123456789")); !errors.Is(err, errSpoolFull) || !strings.Contains(err.Error(), "KIT_SPOOL_MAX_BYTES") {
		t.Fatalf("third batch over the bound: %v", err)
	}
	names, err := s.list()
	if err != nil || len(names) != 2 {
		t.Fatalf("list %v %v", names, err)
	}
	if signalOf(names[0]) != "traces" || signalOf(names[1]) != "logs" {
		t.Errorf("order/signal: %v", names)
	}
	body, _ := s.read(names[0])
	s.remove(names[0], len(body))
	if err := s.write("logs", []byte("0123456789")); err != nil {
		t.Errorf("room after remove: %v", err)
	}
	// A reopened spool (a restarted service) sees what is there.
	s2, err := openSpool(dir, 25)
	if err != nil || s2.count.Load() != 2 || s2.size != 20 {
		t.Errorf("reopen: count %d size %d err %v", s2.count.Load(), s2.size, err)
	}
}

func TestSpoolDirErrorIsClear(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(file, nil, 0o600)
	_, err := openSpool(filepath.Join(file, "sub"), 1<<20)
	if err == nil || !strings.Contains(err.Error(), "KIT_SPOOL_DIR") {
		t.Errorf("error %v should name KIT_SPOOL_DIR", err)
	}
}

func TestDefaultSpoolDirCannotEscape(t *testing.T) {
	d := defaultSpoolDir("../../etc/passwd")
	if filepath.Base(filepath.Dir(d)) != "pave-kit" || filepath.Base(d) != "_.._etc_passwd" {
		t.Errorf("default spool dir %q", d)
	}
}

// A receiver that never answers must not slow requests: the queue fills,
// records are dropped and counted, every request is served.
func TestExportNeverBlocksRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hang := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang })}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	defer close(hang)

	app := NewWithConfig(Config{Service: "s", Output: io.Discard, SpoolDir: t.TempDir(), QueueSize: 4,
		OTLPEndpoint: "http://" + ln.Addr().String(), ExportTimeout: time.Minute, ExportInterval: time.Millisecond})
	app.HandleFunc("GET /v1/x", func(w http.ResponseWriter, _ *http.Request) {})
	for range 3000 {
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/x", nil))
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if n := testutil.ToFloat64(app.export.dropped.WithLabelValues("logs", "queue_full")); n == 0 {
		t.Error("queue never overflowed although the receiver hangs")
	}
	// Close is bounded by its context even with sends hanging; what cannot
	// be sent goes to disk.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = app.Close(ctx)
	names, _ := app.export.spool.list()
	if len(names) == 0 {
		t.Error("nothing buffered on disk after a close with the receiver hanging")
	}
}
