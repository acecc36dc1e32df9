package release

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// The kill -9 test runs the engine in a child process (this test binary,
// re-executed) on a real SQLite store, and kills it with SIGKILL in the
// middle of a release. The parent plays the data plane: it reads the
// weights the child's router writes to a file, serves traffic by them and
// publishes the cumulative counters in another file.

const crashChildEnv = "PAVE_RELEASE_CRASH_CHILD"

// fileRouter keeps weights in a file, replaced atomically.
type fileRouter struct{ path string }

func (f fileRouter) SetWeights(_ context.Context, _ string, w traffic.Weights) error {
	if err := w.Validate(); err != nil {
		return err
	}
	return writeJSONFile(f.path, w)
}

func (f fileRouter) Weights(context.Context, string) (traffic.Weights, error) {
	var w traffic.Weights
	err := readJSONFile(f.path, &w)
	return w, err
}

type fileMetrics struct{ path string }

func (f fileMetrics) Snapshot(context.Context, string) (stats.Snapshot, error) {
	var s stats.Snapshot
	err := readJSONFile(f.path, &s)
	return s, err
}

func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// TestMain turns this test binary into the crash test's child when asked:
// it runs the engine until killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func runCrashChild(dir string) {
	store, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	target := newTarget()
	target.deployed["shop@v1"], target.deployed["shop@v2"] = true, true
	eng := NewEngine(store, fileRouter{filepath.Join(dir, "weights.json")}, target, fileMetrics{filepath.Join(dir, "metrics.json")})
	_ = eng.Run(context.Background(), 20*time.Millisecond)
}

type crashParent struct {
	t       *testing.T
	dir     string
	child   *exec.Cmd
	snap    stats.Snapshot
	rng     *rand.Rand
	errRate map[string]float64
}

func (p *crashParent) start() {
	p.t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashChildEnv+"="+p.dir)
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.child = cmd
}

func (p *crashParent) kill9() {
	p.t.Helper()
	if err := p.child.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	_ = p.child.Wait()
}

// serve sends 200 requests through the current weights and publishes the
// counters.
func (p *crashParent) serve() {
	p.t.Helper()
	w, err := fileRouter{filepath.Join(p.dir, "weights.json")}.Weights(context.Background(), "shop")
	if err != nil {
		p.t.Fatal(err)
	}
	for v, ppm := range w {
		c := p.snap[v]
		for range int(200 * ppm / traffic.Total) {
			status := 200
			if p.rng.Float64() < p.errRate[v] {
				status = 500
			}
			c.Total.Observe(status, 10+5*p.rng.Float64())
		}
		p.snap[v] = c
	}
	if err := writeJSONFile(filepath.Join(p.dir, "metrics.json"), p.snap); err != nil {
		p.t.Fatal(err)
	}
}

// read opens the store read-only-style (a second connection, as WAL allows).
func (p *crashParent) read() Release {
	p.t.Helper()
	s, err := state.OpenSQLite(filepath.Join(p.dir, "state.db"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer s.Close()
	var r Release
	if _, err := state.GetJSON(context.Background(), s, StateKind, "shop-v2", &r); err != nil {
		p.t.Fatal(err)
	}
	return r
}

func newCrashParent(t *testing.T, stepDuration time.Duration) *crashParent {
	t.Helper()
	p := &crashParent{t: t, dir: t.TempDir(), snap: stats.Snapshot{}, rng: rand.New(rand.NewPCG(9, 9)),
		errRate: map[string]float64{"v1": 0.02, "v2": 0.02}}
	if err := writeJSONFile(filepath.Join(p.dir, "weights.json"), traffic.Weights{"v1": traffic.Total}); err != nil {
		t.Fatal(err)
	}
	p.serve()
	store, err := state.OpenSQLite(filepath.Join(p.dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	eng := NewEngine(store, fileRouter{filepath.Join(p.dir, "weights.json")}, newTarget(), fileMetrics{filepath.Join(p.dir, "metrics.json")})
	r := testRelease()
	r.Spec.StepDuration = Duration(stepDuration)
	r.Spec.ScaleDownDelay = Duration(time.Hour)
	if _, err := eng.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	store.Close()
	return p
}

// until serves traffic until cond holds or the deadline passes.
func (p *crashParent) until(what string, d time.Duration, cond func(Release) bool) Release {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.serve()
		if r := p.read(); cond(r) {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := p.read()
	p.t.Fatalf("waiting for %s: release is %s at step %d: %s", what, r.Status.Phase, r.Status.Step, r.Status.Message)
	return r
}

func TestKill9MidStepResumesAndRollsBackFailedCanary(t *testing.T) {
	p := newCrashParent(t, 300*time.Millisecond)
	p.start()
	p.until("step 1", 20*time.Second, func(r Release) bool { return r.Status.Step == 1 && r.Status.WeightsApplied })
	p.kill9()
	mid := p.read()

	// While the control plane is dead the canary starts failing; the
	// data plane keeps serving it.
	p.errRate["v2"] = 0.6
	for range 20 {
		p.serve()
	}
	if r := p.read(); r.Status.Step != mid.Status.Step || r.Status.Phase != Progressing {
		t.Fatalf("the store changed while the engine was dead: %s step %d", r.Status.Phase, r.Status.Step)
	}
	p.start()
	defer p.kill9()
	end := p.until("the rollback", 20*time.Second, func(r Release) bool { return r.Settled() })
	w, _ := fileRouter{filepath.Join(p.dir, "weights.json")}.Weights(context.Background(), "shop")
	if end.Status.Phase != RolledBack || w["v2"] != 0 {
		t.Fatalf("after restart: %s (%s), weights %v", end.Status.Phase, end.Status.Message, w)
	}
	// The judges resumed from the stored evidence of step 0 (the e-values
	// multiply across steps): the new engine neither lost nor restarted it.
	if len(mid.Status.Evidence.LogE) == 0 || !reflect.DeepEqual(end.Status.Evidence, mid.Status.Evidence) {
		t.Fatalf("evidence before the kill %+v, at the rollback %+v", mid.Status.Evidence, end.Status.Evidence)
	}
}

func TestKill9RepeatedlyStillPromotes(t *testing.T) {
	p := newCrashParent(t, 200*time.Millisecond)
	// This test is about resuming, not judging: with no errors at all the
	// error judge cannot roll a healthy canary back by chance (its α), as
	// it may at 2% on both sides (seen once in CI: 8 of 80 canary errors).
	p.errRate = map[string]float64{"v1": 0, "v2": 0}
	maxStep, kills, evidenceTests := -1, 0, 0
	var steps []int
	for i := 0; i < 40; i++ {
		p.start()
		// Let it run a random short while, then kill it wherever it is.
		for range 3 + p.rng.IntN(15) {
			p.serve()
			time.Sleep(10 * time.Millisecond)
		}
		p.kill9()
		r := p.read()
		steps = append(steps, r.Status.Step)
		if !r.Settled() {
			kills++
		}
		if r.Status.Step < maxStep {
			t.Fatalf("restart %d went back from step %d to %d", i, maxStep, r.Status.Step)
		}
		// Every finished step's e-value is in the store: one entry per
		// test once step 0 is done, never fewer after a kill.
		if n := len(r.Status.Evidence.LogE); r.Status.Step >= 1 && !r.Settled() && n < 2 || n < evidenceTests {
			t.Fatalf("restart %d at step %d: stored evidence %+v (had %d tests)", i, r.Status.Step, r.Status.Evidence, evidenceTests)
		}
		evidenceTests = len(r.Status.Evidence.LogE)
		maxStep = r.Status.Step
		if r.Settled() {
			break
		}
	}
	t.Logf("killed %d times mid-release; steps seen after each kill: %v", kills, steps)
	if kills < 3 {
		t.Fatalf("only %d kills hit a running release; the test proves nothing", kills)
	}
	p.start()
	defer p.kill9()
	end := p.until("the promotion", 30*time.Second, func(r Release) bool { return r.Settled() })
	w, _ := fileRouter{filepath.Join(p.dir, "weights.json")}.Weights(context.Background(), "shop")
	if end.Status.Phase != Promoted || w["v2"] != traffic.Total {
		t.Fatalf("ended %s (%s), weights %v", end.Status.Phase, end.Status.Message, w)
	}
}
