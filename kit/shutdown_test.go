package kit_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/kit"
)

// TestMain lets the SIGTERM test run this test binary as a real kit
// service: KIT_TEST_SERVE=1 turns the process into one.
func TestMain(m *testing.M) {
	if os.Getenv("KIT_TEST_SERVE") == "1" {
		app := kit.New("slow")
		app.HandleFunc("GET /v1/slow/{n}", func(w http.ResponseWriter, r *http.Request) {
			app.Logger().InfoContext(r.Context(), "slow request started")
			time.Sleep(time.Second)
			_, _ = io.WriteString(w, "done "+r.PathValue("n"))
		})
		if err := app.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "run:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type burstResult struct {
	ok     atomic.Int64
	failed []string
	mu     sync.Mutex
}

// burst fires n slow requests and returns once all of them are in flight.
func burst(t *testing.T, base string, n int, started func() int64) (*burstResult, *sync.WaitGroup) {
	t.Helper()
	res := &burstResult{}
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(fmt.Sprintf("%s/v1/slow/%d", base, i))
			if err != nil {
				res.mu.Lock()
				res.failed = append(res.failed, err.Error())
				res.mu.Unlock()
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != fmt.Sprintf("done %d", i) {
				res.mu.Lock()
				res.failed = append(res.failed, fmt.Sprintf("status %d body %q err %v", resp.StatusCode, body, err))
				res.mu.Unlock()
				return
			}
			res.ok.Add(1)
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for started() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests started", started(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return res, &wg
}

func TestCancelDuringBurstFailsNoRequest(t *testing.T) {
	out := &syncBuffer{}
	cfg := testConfig(t, out)
	cfg.ReadinessDelay = 300 * time.Millisecond
	app := kit.NewWithConfig(cfg)
	var inFlight atomic.Int64
	release := make(chan struct{})
	app.HandleFunc("GET /v1/slow/{n}", func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		<-release
		_, _ = io.WriteString(w, "done "+r.PathValue("n"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Serve(ctx, ln) }()
	waitReady(t, base)

	const n = 40
	res, wg := burst(t, base, n, inFlight.Load)
	cancel()
	// Readiness turns false while the requests are still running. (Asked
	// through the handler: the listener may already be closed.)
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never turned 503 after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if len(res.failed) > 0 || res.ok.Load() != n {
		t.Fatalf("%d of %d succeeded; failures: %v", res.ok.Load(), n, res.failed)
	}
	if got := len(accessRecords(t, out.String())); got != n {
		t.Errorf("access log has %d records after shutdown, want %d (flushed on close)", got, n)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz never answered 200 (last error %v)", base, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// TestSIGTERMDuringBurstFailsNoRequest runs a real kit process (this test
// binary in service mode), sends it SIGTERM while slow requests are in
// flight, and asserts every request completes and the process exits 0.
func TestSIGTERMDuringBurstFailsNoRequest(t *testing.T) {
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KIT_TEST_SERVE=1", "PORT="+port, "OTEL_SDK_DISABLED=true",
		"KIT_SPOOL_DIR="+t.TempDir(), "KIT_READINESS_DELAY=200ms", "KIT_SHUTDOWN_TIMEOUT=10s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var started atomic.Int64
	var access atomic.Int64
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch {
			case strings.Contains(sc.Text(), `"route":"/v1/slow/{n}"`):
				access.Add(1)
			case strings.Contains(sc.Text(), `"msg":"slow request started"`):
				started.Add(1)
			}
		}
	}()
	base := "http://127.0.0.1:" + port
	waitReady(t, base)

	const n = 30
	// The handler logs when it starts and then sleeps a second; SIGTERM
	// goes out once every request has logged its start.
	res, wg := burst(t, base, n, started.Load)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	err = cmd.Wait()
	<-scanDone
	if err != nil {
		t.Fatalf("service did not exit cleanly after SIGTERM: %v", err)
	}
	if len(res.failed) > 0 || res.ok.Load() != n {
		t.Fatalf("%d of %d succeeded; failures: %v", res.ok.Load(), n, res.failed)
	}
	if access.Load() != n {
		t.Errorf("access log on stdout has %d records, want %d", access.Load(), n)
	}
}
