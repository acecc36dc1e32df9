package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// fullDisk wraps segment files; while full is set a write stores half its
// bytes and fails with ENOSPC, as a real full disk does.
type fullDisk struct{ full atomic.Bool }

type fullFile struct {
	*os.File
	d *fullDisk
}

func (f fullFile) Write(b []byte) (int, error) {
	if f.d.full.Load() {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(b)
}

func (d *fullDisk) create(path string) (SegmentFile, error) {
	f, err := createOSFile(path)
	if err != nil {
		return nil, err
	}
	return fullFile{f.(*os.File), d}, nil
}

func TestDiskFullRefusesThenRecovers(t *testing.T) {
	dir := t.TempDir()
	disk := &fullDisk{}
	s := openTest(t, dir, func(o *Options) { o.CreateSegment = disk.create })
	ctx := context.Background()
	logs := genLogs(30)
	if err := s.AppendLogs(ctx, logs[:10]); err != nil {
		t.Fatal(err)
	}
	disk.full.Store(true)
	err := s.AppendLogs(ctx, logs[10:20])
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v; want ErrUnavailable wrapping ENOSPC", err)
	}
	// The intake turns it into 503 with Retry-After.
	h := NewIntake(s, Limits{}, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/jsonlines?service=x", strings.NewReader(`{"msg":"refused"}`+"\n"))
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "no space") {
		t.Fatalf("intake on a full disk: %d %q %q", rec.Code, rec.Header(), rec.Body.String())
	}
	if n := len(mustQuery(t, s, "limit=1000").Logs); n != 10 {
		t.Fatalf("a refused batch became visible: %d lines, want 10", n)
	}
	disk.full.Store(false)
	if err := s.AppendLogs(ctx, logs[20:30]); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	s.Close()
	s2 := openTest(t, dir, nil)
	res := mustQuery(t, s2, "limit=1000")
	if len(res.Logs) != 20 {
		t.Fatalf("after reopen: %d lines, want the 20 acknowledged", len(res.Logs))
	}
	for _, l := range res.Logs {
		if l.Message == "refused" || l.SpanID == spanID(15) {
			t.Fatalf("refused record stored: %+v", l)
		}
	}
}
