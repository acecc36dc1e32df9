package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
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
	long := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(long, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "--token-file"},
		{[]string{"--addr", "127.0.0.1:0", "--otlp-grpc-addr", "192.0.2.1:4317"}, "--token-file"},
		{[]string{"--token-file", short}, "at least 16"},
		{[]string{"--addr", "0.0.0.0:0", "--token-file", long}, "--tls-cert"},
		{[]string{"--tls-cert", "cert.pem"}, "go together"},
		{[]string{"--tls-client-ca", "ca.pem"}, "needs --tls-cert"},
		{[]string{"--token-file", filepath.Join(t.TempDir(), "missing")}, "--token-file"},
		{[]string{"--cold-after", "0s"}, "--cold-after"},
		{[]string{"--maintain-every", "soon"}, "--maintain-every"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"serve"}, "unexpected argument"},
		{[]string{"--needle-files=maybe"}, "needle-files"},
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

// TestFrontDoorRefusesRebindingAndOtherSites: a request naming another
// Host (a DNS-rebinding page) or marked by a browser as sent by another
// site reads nothing; the names of --allowed-hosts are accepted.
func TestFrontDoorRefusesRebindingAndOtherSites(t *testing.T) {
	base := start(t, "--data-dir", t.TempDir(), "--maintain-every", "never", "--allowed-hosts", "telemetry.internal, logs.example")
	port := base[strings.LastIndex(base, ":")+1:]
	for _, c := range []struct {
		name, host string
		header     [2]string
		want       int
		says       string
	}{
		{"loopback", "", [2]string{}, 200, ""},
		{"localhost", "localhost:" + port, [2]string{}, 200, ""},
		{"allowed name", "telemetry.internal:" + port, [2]string{}, 200, ""},
		{"rebinding", "evil.example:" + port, [2]string{}, 421, "--allowed-hosts"},
		{"other site's page", "", [2]string{"Origin", "http://evil.example"}, 403, "cross-origin"},
		{"cross-site fetch", "", [2]string{"Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
	} {
		req, err := http.NewRequest("GET", base+"/api/v1/logs?since=1h", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.host != "" {
			req.Host = c.host
		}
		if c.header[0] != "" {
			req.Header.Set(c.header[0], c.header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(b), c.says) {
			t.Errorf("%s: got %d %q, want %d saying %q", c.name, resp.StatusCode, b, c.want, c.says)
		}
		if c.want != 200 && strings.Contains(string(b), `"logs"`) {
			t.Errorf("%s: the refusal carries the store's answer: %s", c.name, b)
		}
	}
}

// TestServesTLS: with --tls-cert and --tls-key the listener speaks only
// HTTPS, with the given certificate.
func TestServesTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	base := strings.Replace(start(t, "--data-dir", filepath.Join(dir, "data"), "--maintain-every", "never", "--tls-cert", certFile, "--tls-key", keyFile), "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS /healthz: %d", resp.StatusCode)
	}
	if resp, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was answered on the TLS listener")
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pave-telemetry test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestNeedleFilesSetting: needle files are kept unless the flag or the
// environment says false, and a value that is not a boolean is refused.
func TestNeedleFilesSetting(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		off  bool
	}{
		{"", nil, false},
		{"", []string{"--needle-files=false"}, true},
		{"false", nil, true},
		{"false", []string{"--needle-files=true"}, false},
	} {
		t.Setenv("PAVE_TELEMETRY_NEEDLE_FILES", c.env)
		if c.env == "" {
			os.Unsetenv("PAVE_TELEMETRY_NEEDLE_FILES")
		}
		cfg, err := parse(c.args, os.Stderr)
		if err != nil || cfg.noNeedles != c.off {
			t.Errorf("env %q, args %v: noNeedles %v, %v; want %v", c.env, c.args, cfg.noNeedles, err, c.off)
		}
	}
	t.Setenv("PAVE_TELEMETRY_NEEDLE_FILES", "nope")
	if _, err := parse(nil, os.Stderr); err == nil || !strings.Contains(err.Error(), "PAVE_TELEMETRY_NEEDLE_FILES") {
		t.Errorf("env nope: %v; want an error naming the variable", err)
	}
}
