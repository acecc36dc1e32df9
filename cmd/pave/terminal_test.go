//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's controller and its terminal side.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx (the terminal test needs a pseudo-terminal): %v", err)
	}
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal: %v", err)
	}
	return ptmx, tty
}

// runOnTerminal runs pave with its stdout on a pseudo-terminal.
func runOnTerminal(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ptmx, tty := openPTY(t)
	defer ptmx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, paveBin(), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = tty, tty
	var out lockedBuffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, ptmx); close(done) }()
	err := cmd.Run()
	// With every terminal end closed (the child's at its exit, ours
	// here), reading the controller ends (EIO) once all output is read:
	// wait for that, not for a time, or a loaded machine loses the tail.
	tty.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("pave %v on a terminal: its output never ended:\n%q", args, out.String())
	}
	if err != nil {
		t.Fatalf("pave %v on a terminal: %v\n%q", args, err, out.String())
	}
	return out.String()
}

// On a terminal the release view is coloured, unless NO_COLOR is set.
func TestReleaseViewOnATerminal(t *testing.T) {
	url := releaseServer(t)
	if out, err := pave(t, []string{"PAVE_SERVER=" + url}, "release", "promote", "shop"); err != nil {
		t.Fatalf("promote: %v\n%s", err, out)
	}
	env := []string{"PAVE_SERVER=" + url, "TERM=xterm", "NO_COLOR="}
	out := runOnTerminal(t, env, "release", "status", "shop", "--watch")
	if !strings.Contains(out, "\x1b[32mpromoted\x1b[0m") || !strings.Contains(out, "elapsed") {
		t.Errorf("no green phase on a terminal:\n%q", out)
	}
	out = runOnTerminal(t, append(env, "NO_COLOR=1"), "release", "status", "shop", "--watch")
	if strings.Contains(out, "\x1b[32m") || !strings.Contains(out, "release shop-v2 promoted") {
		t.Errorf("colour despite NO_COLOR:\n%q", out)
	}
}
