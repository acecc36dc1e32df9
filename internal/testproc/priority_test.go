package testproc

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestYieldCPULowersEveryThread runs in a child process (lowering this
// one would slow the package's other tests): after YieldCPU, every thread
// of the process, those there before and those the runtime starts after,
// runs at nice 10.
func TestYieldCPULowersEveryThread(t *testing.T) {
	if os.Getenv("PAVE_TESTPROC_YIELD_CHILD") == "1" {
		yieldChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestYieldCPULowersEveryThread$", "-test.v")
	cmd.Env = append(os.Environ(), "PAVE_TESTPROC_YIELD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "threads at nice 10") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func yieldChild(t *testing.T) {
	before := threadNices(t)
	if len(before) < 2 {
		t.Fatalf("want a process with several threads to begin with, got %v", before)
	}
	if err := YieldCPU(); err != nil {
		t.Fatal(err)
	}
	// Threads the runtime starts now: each goroutine holds its own.
	var started, release sync.WaitGroup
	release.Add(1)
	for range 8 {
		started.Add(1)
		go func() {
			runtime.LockOSThread()
			started.Done()
			release.Wait()
		}()
	}
	started.Wait()
	after := threadNices(t)
	release.Done()
	if len(after) <= len(before) {
		t.Fatalf("no new threads: %d before, %d after", len(before), len(after))
	}
	for tid, nice := range after {
		if nice != computeNice {
			t.Errorf("thread %d runs at nice %d, want %d (all: %v)", tid, nice, computeNice, after)
		}
	}
	t.Logf("%d threads at nice %d", len(after), computeNice)
}

// threadNices reads each thread's niceness from /proc (stat field 19).
func threadNices(t *testing.T) map[int]int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatalf("this test needs Linux's /proc: %v", err)
	}
	nices := map[int]int{}
	for _, task := range tasks {
		stat, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// The command name (field 2) may hold spaces: count from its ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		nice, err := strconv.Atoi(fields[16])
		if err != nil {
			t.Fatalf("stat of thread %s: %v", task.Name(), err)
		}
		tid, _ := strconv.Atoi(task.Name())
		nices[tid] = nice
	}
	return nices
}
