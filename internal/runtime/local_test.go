package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// testService is a tiny net/http service: /readyz, /info (its environment
// and pid), /crash (exits 3). With IGNORE_TERM=1 it ignores SIGTERM.
const testService = `package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getenv("CRASH_AT_START") == "1" {
		fmt.Fprintln(os.Stderr, "cannot start: CRASH_AT_START=1")
		os.Exit(4)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		for range term {
			if os.Getenv("IGNORE_TERM") == "1" {
				fmt.Println("got SIGTERM, ignoring it")
				continue
			}
			fmt.Println("got SIGTERM, exiting")
			os.Exit(0)
		}
	}()
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if f := os.Getenv("NOT_READY_FILE"); f != "" {
			if _, err := os.Stat(f); err == nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ok"))
	})
	http.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, k := range []string{"PAVE_SERVICE", "PAVE_VERSION", "PAVE_CLUSTER", "PAVE_DATACENTER", "PAVE_INSTANCE", "PORT", "OTEL_EXPORTER_OTLP_ENDPOINT", "KIT_SPOOL_DIR", "GREETING", "PAVE_TOKEN"} {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"pid": os.Getpid(), "env": env})
	})
	http.HandleFunc("/crash", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(os.Stderr, "crashing on purpose")
		os.Exit(3)
	})
	fmt.Println("listening on port", os.Getenv("PORT"))
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

func writeService(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"go.mod": "module testsvc\n\ngo 1.26\n", "main.go": testService} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// recordingSink is an EndpointSink and OutputSink that records calls.
type recordingSink struct {
	mu    sync.Mutex
	calls []endpointCall
	lines []string // "instance stream line"
}

type endpointCall struct {
	service, version string
	endpoints        []string
}

func (s *recordingSink) SetEndpoints(service, version string, eps []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, endpointCall{service, version, eps})
}

func (s *recordingSink) Line(service, version, instance, stream string, line []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, instance+" "+stream+" "+string(line))
}

// current is the last announcement for a version (nil: never announced).
func (s *recordingSink) current(service, version string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.calls) - 1; i >= 0; i-- {
		if c := s.calls[i]; c.service == service && c.version == version {
			if c.endpoints == nil {
				return []string{}
			}
			return c.endpoints
		}
	}
	return nil
}

func (s *recordingSink) history(service, version string) [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]string
	for _, c := range s.calls {
		if c.service == service && c.version == version {
			out = append(out, c.endpoints)
		}
	}
	return out
}

func (s *recordingSink) sawLine(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.lines, func(l string) bool { return strings.Contains(l, substr) })
}

type env struct {
	store   *state.SQLite
	dataDir string
	sink    *recordingSink
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{store: st, dataDir: filepath.Join(dir, "data"), sink: &recordingSink{}}
}

func (e *env) local(t *testing.T, mod func(*LocalOptions)) *Local {
	t.Helper()
	o := LocalOptions{
		Store: e.store, DataDir: e.dataDir, Cluster: "local", Datacenter: "dc1",
		OTLPEndpoint: "http://127.0.0.1:4318", Endpoints: e.sink, Output: e.sink,
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		StopGrace: 5 * time.Second, BackoffInitial: 100 * time.Millisecond, BackoffMax: time.Second,
		ProbeInterval: 200 * time.Millisecond, Resync: 200 * time.Millisecond,
	}
	if testing.Verbose() {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&o)
	}
	l, err := NewLocal(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// start runs l until the test ends (or the returned stop is called) and
// leaves no instance behind.
func start(t *testing.T, l *Local) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds; the bound only keeps a broken test
// from hanging, it asserts no timing.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(t *testing.T, l *Local, service, version string, n int) Status {
	t.Helper()
	var st Status
	eventually(t, fmt.Sprintf("%s %s with %d ready", service, version, n), func() (bool, string) {
		var err error
		st, err = l.Status(context.Background(), service, version)
		if err != nil {
			return false, err.Error()
		}
		return st.Ready == n && len(st.Instances) == n && len(st.Endpoints) == n, fmt.Sprintf("%+v", st)
	})
	return st
}

type info struct {
	PID int               `json:"pid"`
	Env map[string]string `json:"env"`
}

func getInfo(t *testing.T, endpoint string) info {
	t.Helper()
	resp, err := http.Get("http://" + endpoint + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var i info
	if err := json.NewDecoder(resp.Body).Decode(&i); err != nil {
		t.Fatal(err)
	}
	return i
}

func pidAlive(pid int) bool {
	_, state, err := procStat(pid)
	return err == nil && state != 'Z'
}

// cleanupPIDs kills processes a failed test may leave behind.
func cleanupPIDs(t *testing.T, pids *[]int) {
	t.Cleanup(func() {
		for _, pid := range *pids {
			if pidAlive(pid) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
}

func TestRunCrashRestartStop(t *testing.T) {
	e := newEnv(t)
	t.Setenv("PAVE_TOKEN", "pave_secret_must_not_leak")
	l := e.local(t, nil)
	start(t, l)
	ctx := context.Background()
	var pids []int
	cleanupPIDs(t, &pids)

	d := Deployment{Service: "orders", Version: "v1", Source: writeService(t), Replicas: 2, Env: map[string]string{"GREETING": "hi"}}
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	st := waitReady(t, l, "orders", "v1", 2)
	for _, in := range st.Instances {
		pids = append(pids, in.PID)
	}
	eps := e.sink.current("orders", "v1")
	if !slices.Equal(eps, st.Endpoints) || len(eps) != 2 {
		t.Fatalf("sink has %v, status has %v", eps, st.Endpoints)
	}
	// Every instance runs with its environment, on its own port.
	seen := map[string]bool{}
	for i, ep := range eps {
		inf := getInfo(t, ep)
		want := map[string]string{
			"PAVE_SERVICE": "orders", "PAVE_VERSION": "v1", "PAVE_CLUSTER": "local", "PAVE_DATACENTER": "dc1",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "GREETING": "hi", "PORT": strings.TrimPrefix(ep, "127.0.0.1:"),
		}
		for k, v := range want {
			if inf.Env[k] != v {
				t.Errorf("instance %d: %s=%q, want %q", i, k, inf.Env[k], v)
			}
		}
		if tok, ok := inf.Env["PAVE_TOKEN"]; ok {
			t.Errorf("the control plane's PAVE_TOKEN leaked into the instance: %q", tok)
		}
		spool := inf.Env["KIT_SPOOL_DIR"]
		if seen[spool] || !strings.HasPrefix(spool, e.dataDir) {
			t.Errorf("KIT_SPOOL_DIR %q: want a per-instance directory under %s", spool, e.dataDir)
		}
		seen[spool] = true
		if fi, err := os.Stat(spool); err != nil || !fi.IsDir() {
			t.Errorf("spool dir %s: %v", spool, err)
		}
	}
	// Output reaches the per-instance log file and the OutputSink.
	eventually(t, "output line in the sink", func() (bool, string) {
		return e.sink.sawLine("orders-v1-0 stdout listening on port"), "no such line"
	})
	logFile := filepath.Join(st.Instances[0].LogDir, "stdout.log")
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), "listening on port") {
		t.Fatalf("log file %s: %v %q", logFile, err, b)
	}

	// Deploying the same thing again changes nothing.
	before, _ := e.store.Get(ctx, kindDeployment, "orders/v1")
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	after, _ := e.store.Get(ctx, kindDeployment, "orders/v1")
	if before.Version != after.Version {
		t.Fatalf("identical deploy rewrote the desired state (version %d -> %d)", before.Version, after.Version)
	}

	// A crash takes the instance out of the endpoints, then it restarts.
	crashed := eps[0]
	nCalls := len(e.sink.history("orders", "v1"))
	resp, err := http.Get("http://" + crashed + "/crash")
	if err == nil {
		resp.Body.Close()
	}
	eventually(t, "crashed instance restarted and ready", func() (bool, string) {
		st, _ := l.Status(ctx, "orders", "v1")
		restarts := 0
		for _, in := range st.Instances {
			restarts += in.Restarts
		}
		return st.Ready == 2 && restarts >= 1, fmt.Sprintf("%+v", st)
	})
	hist := e.sink.history("orders", "v1")[nCalls:]
	if len(hist) < 2 || len(hist[0]) != 1 || slices.Contains(hist[0], crashed) {
		t.Fatalf("after the crash the sink got %v; want first the survivor alone", hist)
	}
	st, _ = l.Status(ctx, "orders", "v1")
	for _, in := range st.Instances {
		if in.Restarts >= 1 {
			if !strings.Contains(in.LastError, "exit status 3") {
				t.Errorf("last error %q: want the exit status", in.LastError)
			}
			if slices.Contains(pids, in.PID) {
				t.Errorf("restarted instance has the old pid %d", in.PID)
			}
			pids = append(pids, in.PID)
		}
	}
	if !slices.Equal(e.sink.current("orders", "v1"), st.Endpoints) {
		t.Fatalf("sink %v != status %v", e.sink.current("orders", "v1"), st.Endpoints)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dataDir, "runtime", "instances", "orders", "v1", "0", "stderr.log")); !strings.Contains(string(b), "crashing on purpose") &&
		!strings.Contains(readFile(filepath.Join(e.dataDir, "runtime", "instances", "orders", "v1", "1", "stderr.log")), "crashing on purpose") {
		t.Errorf("the crash message is in no stderr log")
	}

	// Scale down to one: one instance stops, endpoints follow.
	d.Replicas = 1
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	waitReady(t, l, "orders", "v1", 1)
	if got := e.sink.current("orders", "v1"); len(got) != 1 {
		t.Fatalf("after scaling to 1 the sink has %v", got)
	}

	// Stop: endpoints removed, processes gone, records gone.
	if err := l.Remove(ctx, "orders", "v1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "version removed", func() (bool, string) {
		_, err := l.Status(ctx, "orders", "v1")
		return errors.Is(err, ErrNotFound), fmt.Sprint(err)
	})
	if got := e.sink.current("orders", "v1"); got == nil || len(got) != 0 {
		t.Fatalf("after stop the sink has %v, want an empty slice", got)
	}
	for _, pid := range pids {
		if pidAlive(pid) {
			t.Errorf("pid %d still runs after stop", pid)
		}
	}
	if recs, _ := e.store.List(ctx, kindInstance); len(recs) != 0 {
		t.Errorf("instance records left after stop: %d", len(recs))
	}
	if b := readFile(filepath.Join(e.dataDir, "runtime", "instances", "orders", "v1", "0", "stdout.log")); !strings.Contains(b, "got SIGTERM, exiting") {
		t.Errorf("instance was not stopped with SIGTERM; its stdout: %q", b)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func TestStopKillsAfterGrace(t *testing.T) {
	e := newEnv(t)
	logs := &syncBuffer{}
	l := e.local(t, func(o *LocalOptions) {
		// Long enough for the service to log the SIGTERM it ignores even
		// on a loaded machine; the test waits for the kill, not the clock.
		o.StopGrace = time.Second
		o.Log = slog.New(slog.NewTextHandler(logs, nil))
	})
	start(t, l)
	ctx := context.Background()
	var pids []int
	cleanupPIDs(t, &pids)
	d := Deployment{Service: "stubborn", Version: "v1", Source: writeService(t), Replicas: 1, Env: map[string]string{"IGNORE_TERM": "1"}}
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	st := waitReady(t, l, "stubborn", "v1", 1)
	pid := st.Instances[0].PID
	pids = append(pids, pid)
	if err := l.Remove(ctx, "stubborn", "v1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stubborn process gone", func() (bool, string) { return !pidAlive(pid), "still alive" })
	out := readFile(filepath.Join(st.Instances[0].LogDir, "stdout.log"))
	if !strings.Contains(out, "got SIGTERM, ignoring it") {
		t.Fatalf("the process never got SIGTERM before SIGKILL; stdout: %q", out)
	}
	eventually(t, "version forgotten", func() (bool, string) {
		_, err := l.Status(ctx, "stubborn", "v1")
		return errors.Is(err, ErrNotFound), fmt.Sprint(err)
	})
	if !strings.Contains(logs.String(), "did not stop within the grace period; killed") {
		t.Fatalf("the runtime did not report the SIGKILL:\n%s", logs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRestartAdoptsInstances(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var pids []int
	cleanupPIDs(t, &pids)
	l1 := e.local(t, nil)
	stop1 := start(t, l1)
	bin := buildService(t)
	if err := l1.Deploy(ctx, Deployment{Service: "pay", Version: "v2", Binary: bin, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	st := waitReady(t, l1, "pay", "v2", 2)
	for _, in := range st.Instances {
		pids = append(pids, in.PID)
	}
	stop1() // the control plane goes away; its instances keep running
	for _, pid := range pids {
		if !pidAlive(pid) {
			t.Fatalf("pid %d died with the control plane", pid)
		}
	}
	// While no control plane runs, one instance dies.
	if err := syscall.Kill(-pids[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "killed instance gone", func() (bool, string) {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pids[1], &ws, syscall.WNOHANG, nil)
		return !pidAlive(pids[1]), "alive"
	})

	sink2 := &recordingSink{}
	l2 := e.local(t, func(o *LocalOptions) { o.Endpoints, o.Output = sink2, sink2 })
	start(t, l2)
	st2 := waitReady(t, l2, "pay", "v2", 2)
	adopted, fresh := 0, 0
	for _, in := range st2.Instances {
		switch {
		case in.Adopted && in.PID == pids[0]:
			adopted++
		case !in.Adopted && !slices.Contains(pids, in.PID):
			fresh++
			pids = append(pids, in.PID)
		}
	}
	if adopted != 1 || fresh != 1 {
		t.Fatalf("want the live instance adopted and the dead one restarted; got %+v (old pids %v)", st2.Instances, pids)
	}
	if got := sink2.current("pay", "v2"); !slices.Equal(got, st2.Endpoints) || !slices.Contains(got, st.Instances[0].endpointForTest()) {
		t.Fatalf("the new control plane announced %v; status %v; adopted endpoint %s", got, st2.Endpoints, st.Instances[0].endpointForTest())
	}
	// An adopted instance that crashes is restarted too.
	if err := syscall.Kill(-pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "adopted instance replaced after its crash", func() (bool, string) {
		st, _ := l2.Status(ctx, "pay", "v2")
		for _, in := range st.Instances {
			if in.Slot == 0 && in.State == StateReady && in.PID != pids[0] && in.Restarts == 1 {
				pids = append(pids, in.PID)
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st.Instances)
	})
	if err := l2.Remove(ctx, "pay", "v2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all stopped", func() (bool, string) {
		for _, pid := range pids {
			if pidAlive(pid) {
				return false, fmt.Sprintf("pid %d alive", pid)
			}
		}
		return true, ""
	})
}

func (i Instance) endpointForTest() string { return fmt.Sprintf("127.0.0.1:%d", i.Port) }

// buildService builds the test service once per test with the real go
// command, for deployments by binary.
func buildService(t *testing.T) string {
	t.Helper()
	src := writeService(t)
	bin := filepath.Join(t.TempDir(), "svc")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the test service (needs the go command on PATH): %v\n%s", err, out)
	}
	return bin
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	l := e.local(t, nil)
	ctx := context.Background()
	src := writeService(t)
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := writeService(t)
	if err := os.WriteFile(filepath.Join(broken, "main.go"), []byte("package main\nfunc main() { undefinedThing() }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		d     Deployment
		field string
		want  string
	}{
		{"bad version name", Deployment{Service: "orders", Version: "V 1!", Source: src, Replicas: 1}, "version", "version name"},
		{"traversal in service", Deployment{Service: "../etc", Version: "v1", Source: src, Replicas: 1}, "service", "service name"},
		{"slash in version", Deployment{Service: "orders", Version: "v1/../../x", Source: src, Replicas: 1}, "version", "version name"},
		{"dot-dot version", Deployment{Service: "orders", Version: "a..b", Source: src, Replicas: 1}, "version", "version name"},
		{"negative replicas", Deployment{Service: "orders", Version: "v1", Source: src, Replicas: -1}, "replicas", "want 0 to"},
		{"too many replicas", Deployment{Service: "orders", Version: "v1", Source: src, Replicas: 1000}, "replicas", "want 0 to"},
		{"no artifact", Deployment{Service: "orders", Version: "v1", Replicas: 1}, "source", "exactly one of"},
		{"two artifacts", Deployment{Service: "orders", Version: "v1", Source: src, Binary: "/bin/true", Replicas: 1}, "source", "exactly one of"},
		{"relative source", Deployment{Service: "orders", Version: "v1", Source: "svc", Replicas: 1}, "source", "absolute"},
		{"source missing", Deployment{Service: "orders", Version: "v1", Source: filepath.Join(src, "nope"), Replicas: 1}, "source", "does not exist"},
		{"source is a file", Deployment{Service: "orders", Version: "v1", Source: filepath.Join(src, "main.go"), Replicas: 1}, "source", "not a directory"},
		{"source without go files", Deployment{Service: "orders", Version: "v1", Source: t.TempDir(), Replicas: 1}, "source", "no .go file"},
		{"binary missing", Deployment{Service: "orders", Version: "v1", Binary: "/nonexistent/orders", Replicas: 1}, "binary", "does not exist"},
		{"binary not executable", Deployment{Service: "orders", Version: "v1", Binary: notExec, Replicas: 1}, "binary", "not executable"},
		{"image on local", Deployment{Service: "orders", Version: "v1", Image: "ghcr.io/x/orders:v1", Replicas: 1}, "image", "not images"},
		{"reserved env", Deployment{Service: "orders", Version: "v1", Source: src, Replicas: 1, Env: map[string]string{"PORT": "80"}}, "env.PORT", "cannot be overridden"},
		{"bad env name", Deployment{Service: "orders", Version: "v1", Source: src, Replicas: 1, Env: map[string]string{"A=B": "x"}}, "env.A=B", "variable name"},
		{"bad readiness path", Deployment{Service: "orders", Version: "v1", Source: src, Replicas: 1, ReadinessPath: "readyz"}, "readiness_path", "absolute URL path"},
		{"does not compile", Deployment{Service: "orders", Version: "v1", Source: broken, Replicas: 1}, "", "undefinedThing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := l.Deploy(ctx, c.d)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			var fe *FieldError
			if c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field) {
				t.Fatalf("error %q names field %v, want %q", err, fe, c.field)
			}
			if c.field == "" && !errors.Is(err, ErrBuild) {
				t.Fatalf("error %q is not ErrBuild", err)
			}
		})
	}
	if objs, _ := e.store.List(ctx, kindDeployment); len(objs) != 0 {
		t.Fatalf("refused deployments left %d objects in the store", len(objs))
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, "..", "etc")); err == nil {
		t.Fatal("a traversing name created a directory")
	}
	if err := l.Remove(ctx, "unknown", "v1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "unknown version v1") {
		t.Fatalf("remove unknown: %v", err)
	}
	if _, err := l.Status(ctx, "unknown", "v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status unknown: %v", err)
	}
	if err := l.Remove(ctx, "../x", "v1"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("remove with a traversing name: %v", err)
	}
	if list, err := l.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("list after refusals: %v %v", list, err)
	}
}

func TestFollowSplitsLines(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		follow(r, quit, func(b []byte) { got = append(got, string(b)) })
	}()
	long := strings.Repeat("x", maxLine+10)
	fmt.Fprintf(w, "one\r\ntwo\n%s\nlast", long)
	w.Close()
	close(quit)
	<-done
	want := []string{"one", "two", long[:maxLine], long[maxLine:], "last"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d lines %q..., want %d", len(got), got[:min(2, len(got))], len(want))
	}
}

func TestCrashLoopBacksOffAndNeverAnnounces(t *testing.T) {
	e := newEnv(t)
	l := e.local(t, func(o *LocalOptions) { o.BackoffInitial, o.BackoffMax = 20*time.Millisecond, 80*time.Millisecond })
	start(t, l)
	ctx := context.Background()
	d := Deployment{Service: "broken", Version: "v1", Source: writeService(t), Replicas: 1, Env: map[string]string{"CRASH_AT_START": "1"}}
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "several restarts", func() (bool, string) {
		st, err := l.Status(ctx, "broken", "v1")
		if err != nil || len(st.Instances) != 1 {
			return false, fmt.Sprint(st, err)
		}
		in := st.Instances[0]
		return in.Restarts >= 3 && strings.Contains(in.LastError, "exit status 4") && st.Ready == 0, fmt.Sprintf("%+v", in)
	})
	if h := e.sink.history("broken", "v1"); len(h) != 0 {
		t.Fatalf("an instance that never got ready was announced: %v", h)
	}
	if err := l.Remove(ctx, "broken", "v1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "crash loop stopped", func() (bool, string) {
		_, err := l.Status(ctx, "broken", "v1")
		return errors.Is(err, ErrNotFound), fmt.Sprint(err)
	})
	if recs, _ := e.store.List(ctx, kindInstance); len(recs) != 0 {
		t.Fatalf("instance records left: %d", len(recs))
	}
}

func TestNextBackoff(t *testing.T) {
	const ms = time.Millisecond
	var got []time.Duration
	b := time.Duration(0)
	for range 6 {
		b = nextBackoff(b, 10*ms, 100*ms, time.Second, 30*time.Second)
		got = append(got, b)
	}
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff sequence %v, want %v", got, want)
	}
	if b := nextBackoff(time.Second, 30*time.Second, 100*ms, time.Second, 30*time.Second); b != 100*ms {
		t.Fatalf("after a long run the backoff is %v, want it reset to 100ms", b)
	}
}

func TestAdoptChecksIdentity(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("the sleep command (coreutils) is needed: %v", err)
	}
	cmd := exec.Command(sleep, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	// The kernel wakes the parent (closing the close-on-exec pipe) before it
	// has set the new program's arguments, so a loaded machine can read an
	// empty cmdline just after Start; adoption happens long after exec.
	eventually(t, "the child's command line", func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && len(b) > 0, fmt.Sprintf("%q %v", b, err)
	})
	ticks, err := procStartTicks(pid)
	if err != nil || ticks == 0 {
		t.Fatalf("start time of %d: %d %v", pid, ticks, err)
	}
	if _, ok := adoptProcess(pid, ticks, sleep); !ok {
		t.Fatal("the same process was not recognised")
	}
	if _, ok := adoptProcess(pid, ticks+1, sleep); ok {
		t.Fatal("a process with another start time (a reused pid) was adopted")
	}
	if _, ok := adoptProcess(pid, ticks, "/usr/local/bin/orders"); ok {
		t.Fatal("a process running another binary was adopted")
	}
	if _, ok := adoptProcess(0, ticks, sleep); ok {
		t.Fatal("pid 0 was adopted")
	}
}

func TestChangedDeploymentReplacesInstances(t *testing.T) {
	e := newEnv(t)
	l := e.local(t, nil)
	start(t, l)
	ctx := context.Background()
	var pids []int
	cleanupPIDs(t, &pids)
	d := Deployment{Service: "cart", Version: "v1", Binary: buildService(t), Replicas: 1, Env: map[string]string{"GREETING": "a"}}
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	old := waitReady(t, l, "cart", "v1", 1).Instances[0]
	pids = append(pids, old.PID)
	d.Env["GREETING"] = "b"
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "instance replaced with the new environment", func() (bool, string) {
		st, _ := l.Status(ctx, "cart", "v1")
		if st.Ready != 1 || len(st.Instances) != 1 || st.Instances[0].PID == old.PID {
			return false, fmt.Sprintf("%+v", st)
		}
		pids = append(pids, st.Instances[0].PID)
		return getInfo(t, st.Endpoints[0]).Env["GREETING"] == "b", "old environment"
	})
	eventually(t, "the replaced instance stopped", func() (bool, string) { return !pidAlive(old.PID), "still runs" })
	// Zero replicas keeps the version with no instance and no endpoint.
	d.Replicas = 0
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scaled to zero", func() (bool, string) {
		st, err := l.Status(ctx, "cart", "v1")
		return err == nil && len(st.Instances) == 0 && len(e.sink.current("cart", "v1")) == 0, fmt.Sprintf("%+v %v", st, err)
	})
	if err := l.Remove(ctx, "cart", "v1"); err != nil {
		t.Fatal(err)
	}
}

func TestUnhealthyLeavesAndRejoinsEndpoints(t *testing.T) {
	e := newEnv(t)
	l := e.local(t, nil)
	start(t, l)
	ctx := context.Background()
	var pids []int
	cleanupPIDs(t, &pids)
	flag := filepath.Join(t.TempDir(), "not-ready")
	d := Deployment{Service: "flaky", Version: "v1", Binary: buildService(t), Replicas: 1, Env: map[string]string{"NOT_READY_FILE": flag}}
	if err := l.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	st := waitReady(t, l, "flaky", "v1", 1)
	pids = append(pids, st.Instances[0].PID)
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unhealthy instance out of the endpoints", func() (bool, string) {
		st, _ := l.Status(ctx, "flaky", "v1")
		ok := len(st.Instances) == 1 && st.Instances[0].State == StateUnhealthy && strings.Contains(st.Instances[0].LastError, "status 503")
		return ok && len(e.sink.current("flaky", "v1")) == 0, fmt.Sprintf("%+v sink %v", st, e.sink.current("flaky", "v1"))
	})
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	st2 := waitReady(t, l, "flaky", "v1", 1)
	if st2.Instances[0].PID != st.Instances[0].PID || st2.Instances[0].Restarts != 0 {
		t.Fatalf("a failing readiness probe restarted the instance: %+v", st2.Instances[0])
	}
	if got := e.sink.current("flaky", "v1"); !slices.Equal(got, st.Endpoints) {
		t.Fatalf("after recovering the sink has %v, want %v", got, st.Endpoints)
	}
	if err := l.Remove(ctx, "flaky", "v1"); err != nil {
		t.Fatal(err)
	}
}
