package main

import (
	"bytes"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// paveBin is the real pave binary, built once for the command tests.
var paveBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pave-bin-")
	if err != nil {
		panic(err)
	}
	paveBin = filepath.Join(dir, "pave")
	// -buildvcs=false: the same binary in a clone, a worktree and a
	// tarball (TestVersionFromBuildInfo; the tour checks a stamped build).
	if out, err := exec.Command("go", "build", "-buildvcs=false", "-o", paveBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address free now, for a process started
// later. Ports the kernel hands out for ":0" come from the ephemeral range,
// the one every outgoing connection of the tests running beside this one
// also takes its source port from, so such a port is often taken again
// before the process binds it. Ports below that range (Linux's default
// starts at 32768) are chosen at random instead, then checked.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+mathrand.IntN(12000)))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func pave(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(paveBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type upProc struct {
	cmd  *exec.Cmd
	api  string
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

func startUp(t *testing.T, dataDir string, extra ...string) *upProc {
	t.Helper()
	api := freeAddr(t)
	args := append([]string{"up", "--data-dir", dataDir, "--http-addr", api, "--otlp-addr", freeAddr(t), "--gateway-addr", freeAddr(t)}, extra...)
	if !slices.Contains(extra, "--run-roots") {
		// Tests build services in their own temporary directories.
		args = append(args, "--run-roots", os.TempDir())
	}
	cmd := exec.Command(paveBin, args...)
	cmd.Dir = t.TempDir()
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &upProc{cmd: cmd, api: "http://" + api, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("pave up exited early: %v\n%s", p.err, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("pave up never became healthy:\n%s", out)
	return nil
}

func TestVersion(t *testing.T) {
	out, err := pave(t, nil, "version", "--output", "json")
	if err != nil || !strings.Contains(out, `"version"`) {
		t.Fatalf("version: %v %s", err, out)
	}
}

func TestUpServesAndStopsCleanlyOnSIGTERM(t *testing.T) {
	t.Parallel()
	p := startUp(t, t.TempDir())
	resp, err := http.Get(p.api + "/ui/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("web UI: %v %v", err, resp)
	}
	resp.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("pave up exited with %v after SIGTERM:\n%s", p.err, p.out)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("pave up did not stop after SIGTERM")
	}
	if !strings.Contains(p.out.String(), "pave stopped") {
		t.Fatalf("no clean stop in output:\n%s", p.out)
	}
}

func TestUpRefusesInvalidSettings(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		env  []string
		args []string
		want string
	}{
		"flag":     {nil, []string{"--otlp-addr", "localhost"}, "invalid setting otlp-addr (from --otlp-addr)"},
		"env":      {[]string{"PAVE_SHUTDOWN_TIMEOUT=soon"}, nil, "invalid setting shutdown-timeout (from PAVE_SHUTDOWN_TIMEOUT)"},
		"in use":   {nil, []string{"--gateway-addr", "HOLD"}, "setting gateway-addr: cannot listen"},
		"clusters": {nil, []string{"--clusters", "a,a"}, "invalid setting clusters"},
		"edge":     {nil, []string{"--edge", "dns"}, "invalid setting edge"},
		// Several embedded clusters are always behind Pave's own edge.
		"edge with embedded clusters": {nil, []string{"--clusters", "a,b", "--edge", "webhook:http://gslb.example/"}, "setting edge"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"up", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--otlp-addr", freeAddr(t), "--gateway-addr", freeAddr(t)}, c.args...)
			for i, a := range args {
				if a == "HOLD" {
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatal(err)
					}
					defer ln.Close()
					args[i] = ln.Addr().String()
				}
			}
			out, err := pave(t, c.env, args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("want failure mentioning %q, got %v:\n%s", c.want, err, out)
			}
		})
	}
}

func TestClientSaysWhenControlPlaneIsUnreachable(t *testing.T) {
	t.Parallel()
	out, err := pave(t, []string{"PAVE_SERVER=http://" + freeAddr(t)}, "token", "list")
	if err == nil || !strings.Contains(out, "cannot reach the Pave control plane") || !strings.Contains(out, "pave up") {
		t.Fatalf("want a clear unreachable error, got %v: %s", err, out)
	}
}

func TestRequireAuthWithBootstrappedAdminToken(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startUp(t, data, "--require-auth")
	env := []string{"PAVE_SERVER=" + p.api}
	resp, err := http.Get(p.api + "/api/v1/tokens")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("without a token: %d, want 401", resp.StatusCode)
	}
	out, err := pave(t, env, "token", "list")
	if err != nil || !strings.Contains(out, "local-admin") {
		t.Fatalf("the CLI on this machine uses the local admin token: %v %s", err, out)
	}
	out, err = pave(t, nil, "token", "create", "--role", "admin", "--data-dir", data, "-o", "json")
	if err != nil {
		t.Fatalf("bootstrap: %v %s", err, out)
	}
	secret := between(out, `"secret": "`, `"`)
	out, err = pave(t, append(env, "PAVE_TOKEN="+secret), "token", "create", "--role", "viewer", "--name", "dash")
	if err != nil || !strings.Contains(out, "role viewer") {
		t.Fatalf("create via API: %v %s", err, out)
	}
	viewer := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	out, err = pave(t, append(env, "PAVE_TOKEN="+viewer), "token", "list")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("viewer listing tokens: %v %s", err, out)
	}
	out, err = pave(t, append(env, "PAVE_TOKEN="+secret), "token", "list")
	if err != nil || !strings.Contains(out, "dash") {
		t.Fatalf("admin listing tokens: %v %s", err, out)
	}
	if strings.Contains(p.out.String(), secret) || strings.Contains(p.out.String(), viewer) {
		t.Fatal("a token secret reached the control plane's log")
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}
