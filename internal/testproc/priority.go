package testproc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// computeNice is the niceness of test packages that only compute.
const computeNice = 10

// YieldCPU lowers this test process's CPU priority to nice 10, for a
// package whose tests only compute (Monte-Carlo releases on a simulated
// clock) and never wait on a wall-clock deadline. scripts/test.sh runs more
// packages at once than there are cores; under that load the tests that
// drive real processes against real time (a browser reading a page, a
// release stepping every few seconds) are the ones a busy core starves,
// while a computing test only finishes later. See docs/testing.md.
//
// On Linux a niceness belongs to a thread, and a new thread takes its
// creator's, so every thread there is now is lowered; the Go runtime's
// later threads are cloned from these.
func YieldCPU() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		// Not Linux: there the niceness is the whole process's.
		return setNice(0)
	}
	// A thread started while the list was read is a clone of one not yet
	// lowered: a second pass catches it.
	for range 2 {
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			if err := setNice(tid); err != nil && !errors.Is(err, syscall.ESRCH) { // a thread that ended
				return err
			}
		}
		if tasks, err = os.ReadDir("/proc/self/task"); err != nil {
			return fmt.Errorf("lower CPU priority: %w", err)
		}
	}
	return nil
}

func setNice(who int) error {
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, who, computeNice); err != nil {
		return fmt.Errorf("lower CPU priority of %d to nice %d: %w", who, computeNice, err)
	}
	return nil
}
