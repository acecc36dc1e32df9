package gateway

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// upstreamEnv makes the test binary act as an upstream instance, so a test
// can run instances as real processes and kill them.
const upstreamEnv = "PAVE_GATEWAY_TEST_UPSTREAM"

func TestMain(m *testing.M) {
	if addr := os.Getenv(upstreamEnv); addr != "" {
		version := os.Getenv("PAVE_VERSION")
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s", version, r.URL.Path)
		})
		fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, nil))
		os.Exit(1)
	}
	flag.Parse()
	if beforeTests != nil {
		beforeTests()
	}
	os.Exit(m.Run())
}

// beforeTests, when set, runs after the flags are parsed and before the
// first test (loop_linux_test.go starts its child run there).
var beforeTests func()

// startProcess runs an upstream instance as a child process and waits
// until it accepts connections.
func startProcess(t *testing.T, version string) (string, *exec.Cmd) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), upstreamEnv+"="+addr, "PAVE_VERSION="+version)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream process on %s did not start", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
