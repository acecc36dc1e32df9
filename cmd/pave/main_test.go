package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/testproc"
)

// paveBuild is the real pave binary, built once for the command tests.
var paveBuild *testproc.Binary

// paveBin is its path; asking for it declares the binary's sources as
// inputs of the test (testproc.Binary.Path).
func paveBin() string { return paveBuild.Path() }

func TestMain(m *testing.M) {
	bin, cleanup, err := testproc.BuildPave(".")
	if err != nil {
		panic(err)
	}
	paveBuild = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// The helpers every process-starting test here uses (package testproc).
var (
	freeAddr = testproc.FreeAddr
	between  = testproc.Between
)

type lockedBuffer = testproc.LockedBuffer

func pave(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(paveBin(), args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
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
	cmd := exec.Command(paveBin(), args...)
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
