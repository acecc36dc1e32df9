// Package vltest runs real VictoriaLogs for tests: one binary started as
// two storage nodes and one insert/select node (VictoriaLogs' cluster
// mode), on free loopback ports, with their data in temporary directories.
package vltest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/testproc"
)

// Version is what scripts/deps.sh builds into the tool cache.
const Version = "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1"

// FlushInterval is the storage nodes' -inmemoryDataFlushInterval: the
// longest a received line stays in memory only.
const FlushInterval = time.Second

// Binary finds the victoria-logs binary deps.sh built, failing (never
// skipping) when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	tools := os.Getenv("PAVE_TOOLS")
	if tools == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatal(err)
		}
		tools = filepath.Join(cache, "pave-tools")
	}
	bin := filepath.Join(tools, "bin", "victoria-logs")
	stamp, _ := os.ReadFile(filepath.Join(tools, "bin", ".victoria-logs.version"))
	if _, err := os.Stat(bin); err != nil || strings.TrimSpace(string(stamp)) != Version {
		t.Fatalf("VictoriaLogs (%s) is not in %s: run scripts/deps.sh", Version, bin)
	}
	return bin
}

// Node is one running victoria-logs process.
type Node struct {
	Addr string // host:port
	dir  string
	args []string
	bin  string
	log  *lockedBuffer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Cluster is two storage nodes and one insert/select node.
type Cluster struct {
	Storage []*Node
	Front   *Node // vlinsert + vlselect: the address Pave is given
}

// URL is the telemetry-store setting that points at the cluster.
func (c *Cluster) URL() string {
	return "victorialogs://" + c.Front.Addr + "?flush-interval=" + FlushInterval.String()
}

// StartCluster starts the cluster and stops it when the test ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := Launch(Binary(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, n := range append(append([]*Node{}, c.Storage...), c.Front) {
				t.Logf("victoria-logs %s output:\n%s", n.Addr, n.Output())
			}
		}
	})
	return c
}

// Launch starts a cluster with its data under dir (for benchmarks; tests
// use StartCluster). Stop it with Stop.
func Launch(bin, dir string) (*Cluster, error) {
	c := &Cluster{}
	var addrs []string
	for i := 0; i < 2; i++ {
		n, err := newNode(bin, filepath.Join(dir, fmt.Sprintf("storage-%d", i+1)),
			"-storageDataPath=DIR/data", "-retentionPeriod=100y", "-futureRetention=100y",
			"-inmemoryDataFlushInterval="+FlushInterval.String(), "-insert.maxLineSizeBytes=16MiB")
		if err != nil {
			return nil, err
		}
		c.Storage = append(c.Storage, n)
		addrs = append(addrs, n.Addr)
	}
	front, err := newNode(bin, filepath.Join(dir, "front"), "-storageNode="+strings.Join(addrs, ","), "-insert.maxLineSizeBytes=16MiB")
	if err != nil {
		return nil, err
	}
	c.Front = front
	for _, n := range append(append([]*Node{}, c.Storage...), c.Front) {
		if err := n.start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, n := range append(append([]*Node{}, c.Storage...), c.Front) {
		if n != nil {
			n.Kill()
		}
	}
}

func newNode(bin, dir string, args ...string) (*Node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	n := &Node{Addr: addr, dir: dir, bin: bin, log: &lockedBuffer{}}
	for _, a := range args {
		n.args = append(n.args, strings.ReplaceAll(a, "DIR", dir))
	}
	n.args = append(n.args, "-httpListenAddr="+addr, "-loggerLevel=WARN")
	return n, nil
}

// Start runs the node (again, after Kill, on the same address and data)
// and waits until it answers /health.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) start() error {
	n.mu.Lock()
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		return err
	}
	n.cmd = cmd
	n.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.Addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("victoria-logs on %s did not become healthy in 60s: %v\n%s", n.Addr, err, n.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the running process's id, 0 when it is not running.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill stops the node with SIGKILL: whatever it held only in memory is lost.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
}

// Output is what the node wrote so far.
func (n *Node) Output() string { return n.log.String() }

type lockedBuffer = testproc.LockedBuffer
