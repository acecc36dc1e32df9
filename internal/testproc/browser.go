package testproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BrowserScript is one of test/e2e's node scripts that drive headless
// Chromium through Playwright (test/e2e/browser.mjs).
type BrowserScript struct {
	Dir  string   // where node runs: test/e2e
	Name string   // the script's file, such as "releases.mjs"
	Args []string // its arguments
	Env  []string // added to the test's environment
	// Budget is the script's own limit (2 minutes when zero). The script
	// reports where it stalled when it runs out; the process is stopped
	// only a while later, so that report is never lost.
	Budget time.Duration
}

// RunBrowserScript runs s, logs all it printed and returns its error. A
// script that outlives its budget by 20 s gets SIGTERM (browser.mjs prints
// Playwright's recent log on it) and 10 s later SIGKILL.
func RunBrowserScript(ctx context.Context, t testing.TB, s BrowserScript) error {
	t.Helper()
	budget := s.Budget
	if budget == 0 {
		budget = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, budget+20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{s.Name}, s.Args...)...)
	cmd.Dir = s.Dir
	cmd.Env = append(append(os.Environ(), s.Env...), fmt.Sprintf("PAVE_BROWSER_BUDGET_MS=%d", budget.Milliseconds()))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("browser script %s %s (%s):\n%s", s.Name, strings.Join(s.Args, " "), time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		return fmt.Errorf("%s: %w%s", s.Name, err, failureLines(out))
	}
	return nil
}

// failureLines is what a failed script said of its failure (its "FAIL:"
// lines, else its last lines), for the error: a test's last lines are what
// a CI summary shows, and the whole output logged above may be cut off.
func failureLines(out []byte) string {
	var fails, last []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if len(line) > 600 {
			line = strings.ToValidUTF8(line[:600], "") + "…"
		}
		if strings.HasPrefix(line, "FAIL:") && len(fails) < 3 {
			fails = append(fails, line)
		}
		if strings.TrimSpace(line) != "" {
			last = append(last, line)
		}
	}
	if len(fails) == 0 {
		fails = last[max(0, len(last)-3):]
	}
	if len(fails) == 0 {
		return ""
	}
	return "\n" + strings.Join(fails, "\n")
}
