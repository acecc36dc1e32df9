package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// start runs pave-telemetry in the test process until the test ends and
// returns its base URL.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--addr", "127.0.0.1:0", "--log-level", "warn"}, args...), w, os.Stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("pave-telemetry stopped with %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("pave-telemetry did not stop within 60s of its signal")
		}
		w.Close()
		out.Close()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address: %v", err)
	}
	return "http://" + strings.TrimSpace(addr)
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServesIntakeAndQueriesOnItsOwn: lines sent to the intake come back
// through the query API, the trace lookup and the count, before and after
// a flush and maintenance asked over HTTP, and again after a restart on
// the same data directory.
func TestServesIntakeAndQueriesOnItsOwn(t *testing.T) {
	dir := t.TempDir()
	base := start(t, "--data-dir", dir, "--maintain-every", "never")
	now := time.Now().UTC()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	var lines strings.Builder
	for i := 0; i < 20; i++ {
		status := 200
		if i%5 == 0 {
			status = 500
		}
		tid := ""
		if i == 3 {
			tid = `,"trace_id":"` + trace + `","span_id":"00000000000000a1"`
		}
		lines.WriteString(`{"time":"` + now.Add(-time.Duration(i)*time.Second).Format(time.RFC3339Nano) + `","service":"orders","level":"INFO","msg":"served","route":"/v1/pay","status":` + strconv.Itoa(status) + tid + "}\n")
	}
	if code, body := call(t, "POST", base+"/v1/jsonlines", lines.String()); code != 200 || !strings.Contains(body, `"accepted":20`) {
		t.Fatalf("intake: %d %s", code, body)
	}
	check := func(when string) {
		t.Helper()
		code, body := call(t, "GET", base+"/api/v1/logs?service=orders&where=status=500&since=1h", "")
		var res struct {
			Logs []struct {
				Status int `json:"status"`
			} `json:"logs"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &res) != nil || len(res.Logs) != 4 {
			t.Fatalf("%s: status=500 query: %d %s", when, code, body)
		}
		if code, body := call(t, "GET", base+"/api/v1/traces/"+trace, ""); code != 200 || !strings.Contains(body, trace) {
			t.Fatalf("%s: trace lookup: %d %s", when, code, body)
		}
		if code, body := call(t, "GET", base+"/api/v1/logs/count?by=status&since=1h", ""); code != 200 || !strings.Contains(body, `"total": 20`) {
			t.Fatalf("%s: count: %d %s", when, code, body)
		}
	}
	check("in memory")
	for _, p := range []string{"flush", "maintain"} {
		if code, body := call(t, "POST", base+"/api/v1/telemetry/"+p, ""); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	check("flushed")
	if code, body := call(t, "GET", base+"/api/v1/telemetry/stats", ""); code != 200 || !strings.Contains(body, "hot") {
		t.Fatalf("stats: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/api/v1/logs?since=banana", ""); code != 400 || !strings.Contains(body, `"field": "since"`) {
		t.Fatalf("a bad parameter: want 400 naming it, got %d %s", code, body)
	}
	if code, _ := call(t, "GET", base+"/debug/pprof/", ""); code != 404 {
		t.Fatalf("profiles without --pprof: got %d, want 404", code)
	}
}

// TestRefusesUnsafeSettings: off loopback without a token, a short token,
// a bad duration or a stray argument stop it before it serves, saying why.
func TestRefusesUnsafeSettings(t *testing.T) {
	short := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "--token-file"},
		{[]string{"--addr", "127.0.0.1:0", "--otlp-grpc-addr", "192.0.2.1:4317"}, "--token-file"},
		{[]string{"--token-file", short}, "at least 16"},
		{[]string{"--token-file", filepath.Join(t.TempDir(), "missing")}, "--token-file"},
		{[]string{"--cold-after", "0s"}, "--cold-after"},
		{[]string{"--maintain-every", "soon"}, "--maintain-every"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"serve"}, "unexpected argument"},
	} {
		err := run(context.Background(), append([]string{"--data-dir", t.TempDir()}, c.args...), os.Stdout, os.Stderr)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error about %s", c.args, err, c.want)
		}
	}
}

// TestTokenGuardsOtherMachines: the guard lets loopback through and asks
// a request from elsewhere for the token file's token.
func TestTokenGuardsOtherMachines(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := guard(tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for _, c := range []struct {
		remote, auth string
		want         int
	}{
		{"127.0.0.1:5000", "", 204},
		{"[::1]:5000", "", 204},
		{"192.0.2.7:5000", "", 401},
		{"192.0.2.7:5000", "Bearer wrong-token-wrong-token", 401},
		{"192.0.2.7:5000", "Bearer 0123456789abcdef0123", 204},
	} {
		req, _ := http.NewRequest("GET", "/api/v1/logs", nil)
		req.RemoteAddr = c.remote
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("from %s with %q: got %d, want %d", c.remote, c.auth, rec.Code, c.want)
		}
		if c.want == 401 && c.auth == "" && !strings.Contains(rec.Body.String(), "--token-file") {
			t.Errorf("from %s without a token: %q does not say where the token comes from", c.remote, rec.Body.String())
		}
	}
}
