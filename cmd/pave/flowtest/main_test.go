// Package flowtest holds the longest end-to-end tests of the pave binary,
// the README's main job (pave demo) and its tour: each takes minutes,
// mostly waiting on releases. In their own package `go test` runs them
// beside cmd/pave's tests (packages run at once, -p) rather than after
// them, which shortens scripts/test.sh by about their length.
package flowtest

import (
	"bytes"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// paveBin is the real pave binary, built once for these tests.
var paveBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pave-bin-")
	if err != nil {
		panic(err)
	}
	paveBin = filepath.Join(dir, "pave")
	// As cmd/pave's TestMain builds it (-buildvcs=false), so the go
	// command's cache serves one build to both packages.
	if out, err := exec.Command("go", "build", "-buildvcs=false", "-o", paveBin, "..").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address free now, for a process started
// later, from below the ephemeral range (see cmd/pave's freeAddr: ports
// from ":0" are soon taken again by the source ports of tests beside it).
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

// between returns the text of s after from and before the next to.
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
