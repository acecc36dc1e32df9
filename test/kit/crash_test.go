package kitotlp_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pave-platform/pave/kit"
)

// TestMain lets the crash test run this binary as a kit service:
// KITOTLP_SERVE=1 turns the process into one, configured from the
// environment like any service.
func TestMain(m *testing.M) {
	if os.Getenv("KITOTLP_SERVE") == "1" {
		app := kit.New("crashy")
		app.HandleFunc("GET /v1/work/{n}", func(w http.ResponseWriter, r *http.Request) {
			app.Logger().InfoContext(r.Context(), "working", "seq", r.PathValue("n"))
			_, _ = io.WriteString(w, "ok")
		})
		if err := app.Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestKilledServiceLosesNothingItBuffered: the service runs during an
// outage, is killed with SIGKILL (no flush, no goodbye), and a new process
// with the same disk buffer delivers every record once the receiver is
// back. Records reach the disk within KIT_EXPORT_INTERVAL, so the test
// waits until the buffer stops growing before the kill.
func TestKilledServiceLosesNothingItBuffered(t *testing.T) {
	rc := newReceiver()
	rc.start(t, "127.0.0.1:0")
	addr := rc.addr
	rc.stop()

	spool := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KITOTLP_SERVE=1", "PORT="+port, "KIT_SPOOL_DIR="+spool,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+addr, "KIT_EXPORT_INTERVAL=10ms", "KIT_EXPORT_RETRY_INTERVAL=1h")
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://127.0.0.1:" + port
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service never became ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	const n = 200
	for i := range n {
		resp, err := http.Get(fmt.Sprintf("%s/v1/work/%d", base, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Wait until the buffer holds every batch: the file count is stable
	// over many export intervals.
	last, stable := -1, 0
	for stable < 20 {
		c := spooled(t, spool)
		if c == last && c > 0 {
			stable++
		} else {
			stable = 0
		}
		last = c
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("disk buffer never settled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	rc2 := newReceiver()
	rc2.start(t, addr)
	defer rc2.stop()
	second := newApp(t, "http://"+addr, spool)
	rc2.waitFor(t, n)
	_ = second.Close(t.Context())
	c := rc2.counts()
	if c.spans != n || c.access != n || c.app != n || c.dupes != 0 {
		t.Errorf("after the kill and restart the receiver has %+v, want %d of each and no duplicates", c, n)
	}
	if m, _ := filepath.Glob(filepath.Join(spool, "*.otlp")); len(m) != 0 {
		t.Errorf("%d batches left in the disk buffer", len(m))
	}
}
