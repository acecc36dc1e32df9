package runners

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

// DefaultLocalCommand is the runner a local pool starts when its spec names
// none: a placeholder that only occupies a slot, so the embedded control
// plane can show scaling without a GitHub runner installed.
var DefaultLocalCommand = []string{"sleep", "2147483647"}

// LocalTarget runs runner processes on the control plane's machine.
// Each gets PAVE_RUNNER_POOL and PAVE_RUNNER_INDEX in its environment; a
// runner that exits (an ephemeral runner after its job) frees its slot.
type localTarget struct {
	pool string
	argv []string

	mu    sync.Mutex
	procs []*exec.Cmd // oldest first
	seq   int
	done  map[*exec.Cmd]bool
}

// NewLocalTarget returns the local target of pool p.
func NewLocalTarget(p RunnerPool) Target {
	argv := DefaultLocalCommand
	if l := p.Spec.Target.Local; l != nil && len(l.Command) > 0 {
		argv = l.Command
	}
	return &localTarget{pool: p.Metadata.Name, argv: argv, done: map[*exec.Cmd]bool{}}
}

func (t *localTarget) Scale(ctx context.Context, n int) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reap()
	for len(t.procs) < n {
		t.seq++
		cmd := exec.Command(t.argv[0], t.argv[1:]...)
		cmd.Env = append(os.Environ(), "PAVE_RUNNER_POOL="+t.pool, "PAVE_RUNNER_INDEX="+strconv.Itoa(t.seq))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := start(cmd); err != nil {
			return len(t.procs), fmt.Errorf("starting runner %v for pool %s: %w", t.argv, t.pool, err)
		}
		t.procs = append(t.procs, cmd)
		go func() {
			_ = cmd.Wait()
			t.mu.Lock()
			t.done[cmd] = true
			t.mu.Unlock()
		}()
	}
	for len(t.procs) > n { // the newest go first: the oldest may hold jobs longest
		cmd := t.procs[len(t.procs)-1]
		t.procs = t.procs[:len(t.procs)-1]
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	return len(t.procs), nil
}

// reap forgets runners that exited. Called with mu held.
func (t *localTarget) reap() {
	live := t.procs[:0]
	for _, c := range t.procs {
		if t.done[c] {
			delete(t.done, c)
			continue
		}
		live = append(live, c)
	}
	t.procs = live
}

func (t *localTarget) Close() error {
	_, err := t.Scale(context.Background(), 0)
	return err
}

// starts is served by one goroutine locked to its OS thread for the
// life of the process. Pdeathsig fires when the thread that started the
// child exits, not the process; a thread Go may retire would stop
// runners early. So runners die with the control plane (even on kill -9,
// where no Close runs) and a restarted one starts its own, instead of
// leaving orphans no one counts.
var starts = sync.OnceValue(func() chan startReq {
	ch := make(chan startReq)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range ch {
			r.done <- r.cmd.Start()
		}
	}()
	return ch
})

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

func start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	starts() <- startReq{cmd, done}
	return <-done
}
