package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/kit"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestKnobErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HELLO_FAIL_RATE": "5%", "HELLO_FAIL_ROUTE": "*"}, "HELLO_FAIL_RATE"},
		{map[string]string{"HELLO_FAIL_RATE": "1.5", "HELLO_FAIL_ROUTE": "*"}, "between 0 and 1"},
		{map[string]string{"HELLO_FAIL_RATE": "0.1"}, "HELLO_FAIL_ROUTE is empty"},
		{map[string]string{"HELLO_FAIL_ROUTE": "GET /v1/nope"}, "not one of hello's routes"},
		{map[string]string{"HELLO_EXTRA_LATENCY": "fast"}, "HELLO_EXTRA_LATENCY"},
		{map[string]string{"HELLO_FAIL_STATUS": "200"}, "HELLO_FAIL_STATUS"},
	} {
		if _, err := knobsFromEnv(env(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.env, err, tc.want)
		}
	}
}

func newTestService(t *testing.T, k knobs, out io.Writer, version string) (*kit.App, *httptest.Server) {
	t.Helper()
	app := kit.NewWithConfig(kit.Config{Service: "hello", Version: version, Output: out, ExportDisabled: true, SpoolDir: t.TempDir()})
	srv := httptest.NewUnstartedServer(app.Handler())
	register(app, k, "http://"+srv.Listener.Addr().String())
	srv.Start()
	t.Cleanup(srv.Close)
	return app, srv
}

func TestHelloCallsGreetingWithCallerPropagated(t *testing.T) {
	out := &lockedBuffer{}
	k, _ := knobsFromEnv(env(nil))
	app, srv := newTestService(t, k, out, "v7")
	resp, err := http.Get(srv.URL + "/v1/hello/ada")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body["message"] != "Hello, ada!" || body["version"] != "v7" {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	_ = app.Close(context.Background())
	var hello, greeting map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q", line)
		}
		switch m["route"] {
		case "/v1/hello/{name}":
			hello = m
		case "/v1/greeting/{name}":
			greeting = m
		}
	}
	if hello == nil || greeting == nil {
		t.Fatalf("missing access records:\n%s", out.b.String())
	}
	if greeting["caller"] != "hello" || greeting["trace_id"] != hello["trace_id"] {
		t.Errorf("greeting record caller %v trace %v, hello trace %v", greeting["caller"], greeting["trace_id"], hello["trace_id"])
	}
}

func TestInjectedFailuresAndLatency(t *testing.T) {
	var slept []time.Duration
	k, err := knobsFromEnv(env(map[string]string{"HELLO_FAIL_ROUTE": "POST /v1/pay", "HELLO_FAIL_RATE": "0.25", "HELLO_FAIL_STATUS": "503", "HELLO_EXTRA_LATENCY": "100ms"}))
	if err != nil {
		t.Fatal(err)
	}
	rolls := []float64{0.1, 0.3, 0.5, 0.9} // one in four under the rate
	i := 0
	k.roll = func() float64 { r := rolls[i%len(rolls)]; i++; return r }
	k.sleep = func(d time.Duration) { slept = append(slept, d) }
	_, srv := newTestService(t, k, io.Discard, "v1")
	codes := map[int]int{}
	for range 8 {
		resp, err := http.Post(srv.URL+"/v1/pay", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[503] != 2 || codes[201] != 6 {
		t.Errorf("status counts %v, want 2x503 and 6x201", codes)
	}
	if len(slept) != 8 || slept[0] != 100*time.Millisecond {
		t.Errorf("latency injected %v", slept)
	}
	// Other routes are untouched.
	resp, err := http.Get(srv.URL + "/v1/greeting/x")
	if err != nil || resp.StatusCode != 200 || len(slept) != 8 {
		t.Errorf("greeting: %v %v, sleeps %d", err, resp, len(slept))
	}
}
