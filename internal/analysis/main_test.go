package analysis

import (
	"fmt"
	"os"
	"testing"

	"github.com/pave-platform/pave/internal/testproc"
)

// TestMain runs this package at a lower CPU priority: its tests only
// compute (Monte-Carlo releases on a simulated clock, minutes of CPU under
// the race detector) and assert nothing about wall-clock time, while the
// tests beside them in a run drive browsers and releases against real
// deadlines (testproc.YieldCPU, docs/testing.md).
func TestMain(m *testing.M) {
	if err := testproc.YieldCPU(); err != nil {
		fmt.Fprintln(os.Stderr, "analysis tests:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
