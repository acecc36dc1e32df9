package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A priority run (nice -n -15 …) must give the same priority to both
// backends. With SQLite the store runs inside this process; with
// PostgreSQL it runs in the server's processes, and every PostgreSQL
// backend makes itself a session of its own (setsid). Where the kernel
// schedules by session (sched_autogroup_enabled=1, the default of most
// distributions), a nice value only ranks a process within its session:
// the bench's nice then reaches neither its own session's share of the
// CPU against the machine's other sessions, nor any PostgreSQL backend,
// each of which competes as a session of its own at nice 0. Session 11
// measured that on a loaded machine: the bench process got about a
// third of a core whatever its nice value, and PostgreSQL's p99 moved
// with the number of its busy backends (the sessions it got).
//
// So, when the bench runs with a negative nice value, keepPriority gives
// that value to the bench's session and to the session and process of
// every process of its PostgreSQL server, as they appear, and restores
// the bench's session's value when it returns.

// keepPriority applies the bench's negative nice value until ctx ends;
// root is the postmaster's pid (0: no PostgreSQL). It returns at once,
// doing nothing, when the bench runs at nice 0 or above.
func keepPriority(ctx context.Context, root func() int, logf func(string, ...any)) (restore func()) {
	nice, err := niceOf("self")
	if err != nil || nice >= 0 {
		return func() {}
	}
	before, hadGroup := autogroupNice("self")
	if hadGroup {
		if err := setAutogroup("self", nice); err != nil {
			logf("priority: the bench's session: %v", err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]bool{} // pid and start time: a reused pid is another process
		for {
			for _, p := range treeOf(root()) {
				if seen[p.id] {
					continue
				}
				seen[p.id] = true
				_ = syscall.Setpriority(syscall.PRIO_PROCESS, p.pid, nice)
				if hadGroup {
					_ = setAutogroup(strconv.Itoa(p.pid), nice)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	logf("priority: nice %d for the bench's session and its PostgreSQL server's processes", nice)
	return func() {
		<-done
		if hadGroup {
			_ = setAutogroup("self", before)
		}
	}
}

type proc struct {
	pid int
	id  string
}

// treeOf lists root and its children.
func treeOf(root int) []proc {
	if root == 0 {
		return nil
	}
	var out []proc
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		f, pid, ok := statFields(p)
		if !ok || len(f) < 20 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); pid == root || ppid == root {
			out = append(out, proc{pid: pid, id: fmt.Sprint(pid, "/", f[19])})
		}
	}
	return out
}

// statFields reads /proc/PID/stat: the fields after the command's name
// (f[0] is the state, f[1] the parent, f[16] the nice value, f[19] the
// start time).
func statFields(path string) ([]string, int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return nil, 0, false
	}
	pid, err := strconv.Atoi(strings.Fields(s)[0])
	return strings.Fields(s[i+2:]), pid, err == nil
}

func niceOf(pid string) (int, error) {
	f, _, ok := statFields("/proc/" + pid + "/stat")
	if !ok || len(f) < 17 {
		return 0, fmt.Errorf("read /proc/%s/stat", pid)
	}
	return strconv.Atoi(f[16])
}

// autogroupNice reads the nice value of pid's session ("/autogroup-N nice
// V"); false where the kernel has no autogroups.
func autogroupNice(pid string) (int, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/autogroup")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(f[2])
	return n, err == nil
}

func setAutogroup(pid string, nice int) error {
	return os.WriteFile("/proc/"+pid+"/autogroup", []byte(strconv.Itoa(nice)), 0)
}
