package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// instance supervises one replica (one slot of a version): it starts the
// process, polls readiness, restarts it with backoff when it exits, and
// stops it on request. One goroutine (run) owns the process.
type instance struct {
	l    *Local
	spec storedDeployment
	slot int
	name string
	dir  string

	stopCh     chan struct{}
	stopOnce   sync.Once
	detachCh   chan struct{}
	detachOnce sync.Once
	done       chan struct{}

	mu      sync.Mutex
	st      Instance
	offsets map[string]int64 // log file sizes when the current process started
}

func (l *Local) newInstance(sd storedDeployment, slot int) *instance {
	name := fmt.Sprintf("%s-%s-%d", sd.Service, sd.Version, slot)
	dir := l.instanceDir(sd.Service, sd.Version, slot)
	return &instance{
		l: l, spec: sd, slot: slot, name: name, dir: dir,
		stopCh: make(chan struct{}), detachCh: make(chan struct{}), done: make(chan struct{}),
		st: Instance{Name: name, Slot: slot, State: StateStarting, LogDir: dir},
	}
}

// stop asks the supervisor to stop the process and return. The instance
// counts as stopping (not ready, no endpoint) from now on.
func (in *instance) stop() {
	in.stopOnce.Do(func() {
		in.mu.Lock()
		close(in.stopCh)
		in.st.State = StateStopping
		in.mu.Unlock()
	})
}

// detach asks the supervisor to return and leave the process running.
func (in *instance) detach() { in.detachOnce.Do(func() { close(in.detachCh) }) }

func (in *instance) finished() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

func (in *instance) stopping() bool {
	select {
	case <-in.stopCh:
		return true
	default:
		return false
	}
}

func (in *instance) snapshot() Instance {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.st
}

// endpoint is the instance's address while it is ready for traffic.
func (in *instance) endpoint() (string, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.st.State != StateReady {
		return "", false
	}
	return "127.0.0.1:" + strconv.Itoa(in.st.Port), true
}

func (in *instance) update(f func(*Instance)) {
	in.mu.Lock()
	f(&in.st)
	if in.stopping() {
		in.st.State = StateStopping
	}
	in.mu.Unlock()
	in.l.publish(key(in.spec.Service, in.spec.Version))
}

func (in *instance) logf(msg string, args ...any) {
	in.l.log.Info(msg, append([]any{"service", in.spec.Service, "version", in.spec.Version, "instance", in.name}, args...)...)
}

type outcome int

const (
	outcomeStop outcome = iota
	outcomeDetach
	outcomeExited
)

// run is the supervisor. With adopt set it first tries to take over the
// process of rec, started by an earlier control plane.
func (in *instance) run(parent context.Context, rec instanceRecord, adopt bool) {
	// Store writes must outlive the Run context: a stop during shutdown
	// still deletes its record.
	ctx := context.WithoutCancel(parent)
	defer in.l.wake() // lets the reconcile loop forget a finished instance
	defer close(in.done)
	restarts := 0
	o := in.l.opts
	var backoff time.Duration // the delay before the next restart; 0: none yet
	for {
		var p *process
		port := 0
		if adopt {
			adopt = false
			restarts = rec.Restarts
			if ap, ok := adoptProcess(rec.PID, rec.StartTicks, rec.Artifact); ok {
				p, port = ap, rec.Port
				in.update(func(s *Instance) {
					s.PID, s.Port, s.Restarts, s.Started, s.Adopted, s.State = rec.PID, rec.Port, rec.Restarts, rec.Started, true, StateStarting
				})
				in.logf("instance adopted", "pid", rec.PID, "port", rec.Port)
			} else {
				in.deleteRecord(ctx, rec)
				if !in.stopping() {
					in.logf("instance of the previous control plane is gone; starting a new one", "pid", rec.PID)
				}
			}
		}
		if in.stopping() {
			if p != nil {
				in.terminate(ctx, p, rec)
			}
			return
		}
		if p == nil {
			var err error
			p, port, rec, err = in.start(ctx, restarts)
			if err != nil {
				in.l.log.Error("instance did not start", "instance", in.name, "err", err)
				restarts++
				backoff = nextBackoff(backoff, 0, o.BackoffInitial, o.BackoffMax, o.BackoffReset)
				in.update(func(s *Instance) { s.State, s.LastError, s.PID, s.Restarts = StateBackoff, err.Error(), 0, restarts })
				if !in.sleep(backoff) {
					return
				}
				continue
			}
		}
		started := time.Now()
		stopTail := in.tail(p)
		out := in.supervise(p, port)
		stopTail()
		switch out {
		case outcomeDetach:
			return
		case outcomeStop:
			in.terminate(ctx, p, rec)
			return
		}
		restarts++
		why := exitReason(p)
		in.deleteRecord(ctx, rec)
		backoff = nextBackoff(backoff, time.Since(started), o.BackoffInitial, o.BackoffMax, o.BackoffReset)
		in.l.log.Warn("instance exited; restarting after backoff", "instance", in.name, "pid", p.pid, "reason", why, "backoff", backoff, "restarts", restarts)
		code := exitCode(p)
		in.update(func(s *Instance) {
			s.State, s.LastError, s.PID, s.Restarts, s.Adopted, s.ExitCode = StateBackoff, why, 0, restarts, false, code
		})
		if !in.sleep(backoff) {
			return
		}
	}
}

// nextBackoff is the delay before a restart: initial after the first
// crash or after a process that ran for reset or longer, else double the
// previous delay, at most max.
func nextBackoff(prev, ranFor, initial, max, reset time.Duration) time.Duration {
	if prev == 0 || ranFor >= reset {
		return initial
	}
	return min(prev*2, max)
}

// sleep waits d; false when told to stop or detach meanwhile.
func (in *instance) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-in.stopCh:
		return false
	case <-in.detachCh:
		return false
	}
}

func exitReason(p *process) string {
	if p.exited == nil {
		return "exited (adopted process: exit status unknown)"
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.Error()
	}
	if p.exitErr != nil {
		return p.exitErr.Error()
	}
	return "exited with status 0"
}

// terminate takes the instance out of the endpoints, then stops the
// process (SIGTERM, SIGKILL after the grace period), and forgets it.
func (in *instance) terminate(ctx context.Context, p *process, rec instanceRecord) {
	in.update(func(s *Instance) { s.State = StateStopping })
	if p.terminate(in.l.opts.StopGrace) {
		in.logf("instance did not stop within the grace period; killed", "pid", p.pid, "grace", in.l.opts.StopGrace)
	} else {
		in.logf("instance stopped", "pid", p.pid)
	}
	in.deleteRecord(ctx, rec)
}

func (in *instance) deleteRecord(ctx context.Context, rec instanceRecord) {
	if rec.PID == 0 {
		return
	}
	err := in.l.opts.Store.Delete(ctx, kindInstance, rec.key(), state.Any)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		in.l.log.Warn("instance record not deleted", "instance", in.name, "err", err)
	}
}

// start launches a new process on a free port and records it.
func (in *instance) start(ctx context.Context, restarts int) (*process, int, instanceRecord, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, instanceRecord{}, fmt.Errorf("no free loopback port: %w", err)
	}
	spool := filepath.Join(in.dir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, 0, instanceRecord{}, err
	}
	var files [2]*os.File
	for i, name := range []string{"stdout.log", "stderr.log"} {
		path := filepath.Join(in.dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Size() > maxLogBytes {
			// Rotated only when a process starts: a running process
			// holds its file open.
			_ = os.Rename(path, path+".1")
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			for _, g := range files[:i] {
				g.Close()
			}
			return nil, 0, instanceRecord{}, err
		}
		files[i] = f
		if fi, err := f.Stat(); err == nil {
			in.mu.Lock()
			if in.offsets == nil {
				in.offsets = map[string]int64{}
			}
			in.offsets[strings.TrimSuffix(name, ".log")] = fi.Size()
			in.mu.Unlock()
		}
	}
	p, err := startProcess(in.spec.Artifact, in.dir, in.env(port, spool), files[0], files[1])
	files[0].Close()
	files[1].Close()
	if err != nil {
		return nil, 0, instanceRecord{}, fmt.Errorf("start %s: %w", in.spec.Artifact, err)
	}
	now := time.Now().UTC()
	rec := instanceRecord{
		Service: in.spec.Service, Version: in.spec.Version, Slot: in.slot, PID: p.pid, StartTicks: p.startTicks,
		Port: port, Artifact: in.spec.Artifact, Restarts: restarts, Started: now,
	}
	if _, err := state.PutJSON(ctx, in.l.opts.Store, kindInstance, rec.key(), rec, state.Any); err != nil {
		// An unrecorded process could never be adopted nor stopped by a
		// later control plane: do not let it run.
		p.terminate(in.l.opts.StopGrace)
		return nil, 0, instanceRecord{}, fmt.Errorf("record instance: %w", err)
	}
	in.update(func(s *Instance) {
		s.State, s.PID, s.Port, s.Started, s.Restarts, s.Adopted = StateStarting, p.pid, port, now, restarts, false
	})
	in.logf("instance started", "pid", p.pid, "port", port)
	return p, port, rec, nil
}

// env is the instance's environment: the control plane's own, without its
// PAVE_* settings (which may hold secrets), then the runtime's variables,
// then the deployment's.
func (in *instance) env(port int, spool string) []string {
	env := withoutPaveSecrets(os.Environ())
	o := in.l.opts
	env = append(env,
		"PAVE_SERVICE="+in.spec.Service,
		"PAVE_VERSION="+in.spec.Version,
		"PAVE_CLUSTER="+o.Cluster,
		"PAVE_DATACENTER="+o.Datacenter,
		"PAVE_INSTANCE="+in.name,
		"PORT="+strconv.Itoa(port),
		"HOST=127.0.0.1", // kit listens on loopback only: instances are reached through the gateway
		"KIT_SPOOL_DIR="+spool,
	)
	if o.OTLPEndpoint != "" {
		env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+o.OTLPEndpoint)
	}
	keys := make([]string, 0, len(in.spec.Env))
	for k := range in.spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+in.spec.Env[k])
	}
	return env
}

// maxLogBytes is the size above which an instance's log file is rotated
// (to NAME.log.1) when its process (re)starts.
const maxLogBytes = 64 << 20

// unhealthyAfter consecutive failed probes take a ready instance out of the
// endpoints; one success puts it back.
const unhealthyAfter = 3

// supervise polls readiness until the process exits or the supervisor is
// told to stop or detach.
func (in *instance) supervise(p *process, port int) outcome {
	fast := max(in.l.opts.ProbeInterval/5, 10*time.Millisecond)
	url := "http://127.0.0.1:" + strconv.Itoa(port) + in.spec.readinessPath()
	pctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-in.stopCh:
		case <-in.detachCh:
		case <-pctx.Done():
		}
		cancel()
	}()
	fails := 0
	var lastProbe time.Time
	// A starting instance is probed soon and then less and less often (10ms,
	// 20ms, ... up to fast): most services are ready within milliseconds,
	// and a fixed period would add half of it to every start.
	const firstProbe = 10 * time.Millisecond
	delay := min(firstProbe, fast)
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		if !p.alive() {
			return outcomeExited
		}
		st := in.snapshot().State
		if st != StateReady || time.Since(lastProbe) >= in.l.opts.ProbeInterval-fast/2 {
			lastProbe = time.Now()
			ok, why := in.probe(pctx, url)
			switch {
			case ok && st != StateReady:
				fails = 0
				in.update(func(s *Instance) { s.State = StateReady })
				in.logf("instance ready", "pid", p.pid, "port", port)
			case ok:
				fails = 0
			case st == StateReady && pctx.Err() == nil:
				fails++
				if fails >= unhealthyAfter {
					in.update(func(s *Instance) { s.State, s.LastError = StateUnhealthy, why })
					in.l.log.Warn("instance unhealthy; out of the endpoints", "instance", in.name, "reason", why)
				}
			case st == StateUnhealthy:
				in.update(func(s *Instance) { s.LastError = why })
			}
		}
		next := fast
		if in.snapshot().State == StateStarting {
			next, delay = delay, min(delay*2, fast)
		}
		t.Reset(next)
		select {
		case <-in.stopCh:
			return outcomeStop
		case <-in.detachCh:
			return outcomeDetach
		case <-p.exited: // nil for an adopted process: alive() polls instead
			return outcomeExited
		case <-t.C:
		}
	}
}

func (in *instance) probe(ctx context.Context, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := in.l.probe.Do(req)
	if err != nil {
		return false, "readiness probe: " + err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, fmt.Sprintf("readiness probe %s: status %d", in.spec.readinessPath(), resp.StatusCode)
	}
	return true, ""
}
