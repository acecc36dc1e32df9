// Package testproc holds what tests that start real processes share: the
// pave binary built once per test package, loopback addresses free for a
// process started later, and a buffer for a child's output that the test
// reads while the child still writes.
package testproc

import (
	"bytes"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Binary is a program built for a test package.
type Binary struct {
	path   string
	inputs []string
	once   sync.Once
}

// Path is the binary's file. The first call declares the sources it was
// built from as inputs of the running test (see Declare), so the go
// command's test cache replays no result obtained with other sources:
// call it from tests, not TestMain, where nothing is recorded.
func (b *Binary) Path() string {
	b.once.Do(func() { Declare(b.inputs...) })
	return b.path
}

// BuildPave builds the pave command in pkgDir (a path to cmd/pave) into a
// temporary directory and returns the binary and what removes it.
// -buildvcs=false: the same binary in a clone, a worktree and a tarball,
// so the go command's cache serves one build to every package asking.
//
// The binary's inputs are what it is built from and also what the pave
// the tests run builds from the checkout: the kit module, which the
// services pave scaffolds compile, and the examples (pave demo and the
// release tests build examples/hello).
func BuildPave(pkgDir string) (bin *Binary, cleanup func(), err error) {
	inputs, err := GoInputs(pkgDir, ".", "github.com/pave-platform/pave/kit/...", "github.com/pave-platform/pave/examples/...")
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "pave-bin-")
	if err != nil {
		return nil, nil, err
	}
	// cmd/pave and cmd/pave/flowtest start together (scripts/test.sh runs
	// the slowest packages first): two go commands building the same
	// packages at once would each compile them, as neither finds the
	// other's work in the build cache yet. One at a time, the second
	// links what the first compiled.
	unlock, err := lockFile(filepath.Join(os.TempDir(), "pave-testproc-build.lock"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	defer unlock()
	path := filepath.Join(dir, "pave")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", path, ".")
	build.Dir = pkgDir
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("go build %s: %w\n%s", pkgDir, err, out)
	}
	return &Binary{path: path, inputs: inputs}, func() { os.RemoveAll(dir) }, nil
}

// FreeAddr returns a loopback address free now, for a process started
// later. Ports the kernel hands out for ":0" come from the ephemeral range,
// the one every outgoing connection of the tests running beside this one
// also takes its source port from, so such a port is often taken again
// before the process binds it. Ports below that range (Linux's default
// starts at 32768) are chosen at random instead, then checked, and never
// handed out twice by one test process: a port given to a process that
// has not bound it yet still looks free.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		port := 20000 + mathrand.IntN(12000)
		handedMu.Lock()
		taken := handed[port]
		handedMu.Unlock()
		if taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			handedMu.Lock()
			handed[port] = true
			handedMu.Unlock()
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

// handed are the ports FreeAddr gave out in this process.
var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// Between returns the text of s after from and before the next to ("" if
// from is not in s; the rest of s if to does not follow).
func Between(s, from, to string) string {
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

// LockedBuffer collects a child's output while the test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lockFile takes an exclusive lock on the file name (created if missing),
// waiting for another process to release it, and returns what releases it.
func lockFile(name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}
