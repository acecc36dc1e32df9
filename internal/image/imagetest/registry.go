// Package imagetest runs the real CNCF distribution registry for tests of
// pave build, with a counting, fault-injecting proxy in front of it.
package imagetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryVersion is the version scripts/deps.sh builds into the tool cache.
const RegistryVersion = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"

// Registry is a running distribution registry.
type Registry struct {
	Addr     string // host:port of the registry itself
	User     string // basic auth, "" without
	Password string
	log      *lockedWriter
}

// Logs returns what the registry wrote so far (its access log included).
func (r *Registry) Logs() string { return r.log.String() }

// registryBinary finds the registry deps.sh built, failing (not skipping)
// when it is missing.
func registryBinary(t testing.TB) string {
	t.Helper()
	tools := os.Getenv("PAVE_TOOLS")
	if tools == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		tools = filepath.Join(cache, "pave-tools")
	}
	bin := filepath.Join(tools, "bin", "registry")
	stamp, _ := os.ReadFile(filepath.Join(tools, "bin", ".registry.version"))
	if _, err := os.Stat(bin); err != nil || strings.TrimSpace(string(stamp)) != RegistryVersion {
		t.Fatalf("the distribution registry (%s) is not in %s: run scripts/deps.sh", RegistryVersion, bin)
	}
	return bin
}

// StartRegistry starts a registry on a free loopback port, with basic auth
// when user is not empty, and stops it when the test ends.
func StartRegistry(t testing.TB, user, password string) *Registry {
	t.Helper()
	bin := registryBinary(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: pave-test-secret
  relativeurls: true
`, filepath.Join(dir, "data"), addr)
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: pave-test\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	lw := &lockedWriter{w: &bytes.Buffer{}}
	r := &Registry{Addr: addr, User: user, Password: password, log: lw}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	cmd.Stdout, cmd.Stderr = lw, lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not answer in 15s: %v\n%s", addr, err, lw.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DockerConfig writes a Docker config with credentials for host (a
// registry address as --image names it) and returns its directory, for
// DOCKER_CONFIG.
func DockerConfig(t testing.TB, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
	}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Request is one request the proxy passed on.
type Request struct {
	Method, Path, Query string
	BodyBytes           int64
	Status              int
}

// Proxy stands between pave build and the registry: it counts what is
// uploaded and, when Cut is set, cuts the connection of blob uploads after
// CutAfter bytes, as a registry or network failing mid-push does.
type Proxy struct {
	Addr string

	mu       sync.Mutex
	requests []Request
	cut      bool
	cutAfter int64
}

// StartProxy proxies to the registry at target (host:port).
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: target}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &Proxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		cut, after := p.cut, p.cutAfter
		p.mu.Unlock()
		isUpload := strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPatch || r.Method == http.MethodPut)
		if cut && isUpload {
			n, _ := io.CopyN(io.Discard, r.Body, after)
			p.record(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, BodyBytes: n, Status: -1})
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		body := &countingReader{r: r.Body}
		r.Body = body
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		p.record(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, BodyBytes: body.n, Status: sw.status})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *Proxy) record(r Request) {
	p.mu.Lock()
	p.requests = append(p.requests, r)
	p.mu.Unlock()
}

// SetCut turns the mid-upload failure on or off.
func (p *Proxy) SetCut(on bool, after int64) {
	p.mu.Lock()
	p.cut, p.cutAfter = on, after
	p.mu.Unlock()
}

// Take returns the requests since the last Take and forgets them.
func (p *Proxy) Take() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.requests
	p.requests = nil
	return out
}

// UploadedBytes sums the bodies of blob uploads and manifest PUTs.
func UploadedBytes(rs []Request) int64 {
	var n int64
	for _, r := range rs {
		if r.Method == http.MethodPatch || r.Method == http.MethodPut || r.Method == http.MethodPost {
			n += r.BodyBytes
		}
	}
	return n
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
func (c *countingReader) Close() error { return c.r.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
