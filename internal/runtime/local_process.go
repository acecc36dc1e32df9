package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one running service binary, started by this runtime (owned:
// it can wait for it) or found again after a restart of the control plane
// (adopted: it can only watch /proc).
type process struct {
	pid        int
	startTicks uint64        // /proc/PID/stat field 22: tells a reused pid apart
	exited     chan struct{} // owned only: closed when the process was reaped
	exitErr    error         // owned only: valid after exited is closed
}

// startProcess starts binary in its own session, so the control plane's
// terminal signals (Ctrl-C) do not reach it and it outlives a kill -9 of
// the control plane, to be adopted by the next one. stdout and stderr go
// straight to files, not through pipes: a pipe would break (SIGPIPE) when
// the control plane dies.
func startProcess(binary, dir string, env []string, stdout, stderr *os.File) (*process, error) {
	cmd := exec.Command(binary)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{pid: cmd.Process.Pid, exited: make(chan struct{})}
	p.startTicks, _ = procStartTicks(p.pid)
	go func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// adoptProcess finds a process started by an earlier control plane, if it
// still runs and is still the same process: same start time (not a reused
// pid) and same binary.
func adoptProcess(pid int, startTicks uint64, binary string) (*process, bool) {
	if pid <= 0 || startTicks == 0 {
		return nil, false
	}
	p := &process{pid: pid, startTicks: startTicks}
	if !p.alive() {
		return nil, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	if string(argv0) != binary {
		return nil, false
	}
	return p, true
}

// alive reports whether the process still runs. A zombie counts as dead;
// if it is a child of this process (a runtime restarted within one
// process, as in tests) it is reaped.
func (p *process) alive() bool {
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
	ticks, state, err := procStat(p.pid)
	return err == nil && ticks == p.startTicks && state != 'Z' && state != 'X'
}

// signal sends sig to the process's whole group (it is a session leader,
// so its group id is its pid), reaching the children it started too.
func (p *process) signal(sig syscall.Signal) {
	if !p.alive() {
		return
	}
	if err := syscall.Kill(-p.pid, sig); errors.Is(err, syscall.ESRCH) {
		_ = syscall.Kill(p.pid, sig)
	}
}

// wait waits up to d for the process to end.
func (p *process) wait(d time.Duration) bool {
	if p.exited != nil {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.exited:
			return true
		case <-t.C:
			return false
		}
	}
	deadline := time.Now().Add(d)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// terminate is the stop protocol: SIGTERM, then SIGKILL after grace.
func (p *process) terminate(grace time.Duration) (killed bool) {
	p.signal(syscall.SIGTERM)
	if p.wait(grace) {
		return false
	}
	p.signal(syscall.SIGKILL)
	p.wait(5 * time.Second)
	return true
}

func procStartTicks(pid int) (uint64, error) {
	t, _, err := procStat(pid)
	return t, err
}

// procStat reads the start time (in clock ticks since boot) and the state
// letter of a process.
func procStat(pid int) (uint64, byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ')' are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64) // field 22 overall
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ticks, f[0][0], nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the service binds it; the service then exits and is
// restarted on another port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
