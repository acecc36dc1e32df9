package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/release"
)

func loadDoc(t *testing.T, file string) releaseDoc {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeRelease(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The live view shows the evidence, the judges' estimate of what is
// missing with the time it takes at the measured rate, and the step's
// remaining minimum time (contract 2).
func TestRenderProgressing(t *testing.T) {
	d := loadDoc(t, "release_progressing.json")
	now := time.Date(2026, 12, 3, 18, 2, 30, 0, time.UTC)
	// 1,900 requests at 10.5/s: about 3 min.
	view := renderRelease(d, now, 10.5, style{})
	if !strings.Contains(view, "missing: ≈1,900 more canary requests, ≈3 min at the current rate (10.5/s); step minimum 30s left") {
		t.Errorf("no estimate of what is missing:\n%s", view)
	}
	golden(t, "render_progressing", view)
	golden(t, "line_progressing", progressLine(d, now, 10.5)+"\n")

	// Without the judges' estimate, the step's minimum sample count is
	// what is missing: the decision counts the step's window only, so with
	// 80 canary requests in it, 20 more.
	d.Status.Decision.MoreCanaryRequests = 0
	d.Status.Decision.CanaryRequests = 80
	if m := missingEvidence(d, now, 0); m != "≈20 more canary requests for the step's minimum of 100; step minimum 30s left" {
		t.Errorf("fallback estimate: %q", m)
	}
}

// A failed version shows why, its stderr and the logs command (contract 3).
func TestRenderFailure(t *testing.T) {
	d := loadDoc(t, "release_failed.json")
	now := time.Date(2026, 12, 3, 18, 5, 0, 0, time.UTC)
	view := renderRelease(d, now, 0, style{})
	for _, want := range []string{"crashed at start (exit status 2, 6 restarts)", "stderr | panic: open config.yaml", "pave logs --service orders --version v4 --since 10m", "elapsed 21s"} {
		if !strings.Contains(view, want) {
			t.Errorf("failure view lacks %q:\n%s", want, view)
		}
	}
	golden(t, "render_failed", view)
	golden(t, "line_failed", progressLine(d, now, 0)+"\n")
	err := releaseOutcome(&globals{format: outputFormat{kind: outText}}, &strings.Builder{}, d, style{})
	if code, msg := processExit(err); code != exitFailed || !strings.Contains(msg, "pave logs --service orders") {
		t.Errorf("outcome of a failed release: %d %q", code, msg)
	}
}

func TestColourOnlyInTerminalsWithoutNoColor(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		terminal bool
		env      map[string]string
		want     bool
	}{
		{true, nil, true},
		{false, nil, false},
		{true, map[string]string{"NO_COLOR": "1"}, false},
		{true, map[string]string{"TERM": "dumb"}, false},
	}
	for _, c := range cases {
		if got := colourAllowed(c.terminal, env(c.env)); got != c.want {
			t.Errorf("terminal=%t env=%v: colour %t, want %t", c.terminal, c.env, got, c.want)
		}
	}
	d := loadDoc(t, "release_failed.json")
	if v := renderRelease(d, time.Now(), 0, style{on: true}); !strings.Contains(v, "\x1b[31mfailed\x1b[0m") {
		t.Errorf("no red phase with colour on:\n%q", v)
	}
	if v := renderRelease(d, time.Now(), 0, style{}); strings.Contains(v, "\x1b[") {
		t.Errorf("escape codes with colour off:\n%q", v)
	}
}

func TestOutcomeMessageDoesNotRepeatThePhase(t *testing.T) {
	for msg, want := range map[string]string{
		"promoted: all judges pass":         ": all judges pass",
		"rolled back at step 2 (5%): error": ": at step 2 (5%): error",
		"first release of orders":           ": first release of orders",
		"promoted":                          "",
	} {
		phase := release.Promoted
		if strings.HasPrefix(msg, "rolled") {
			phase = release.RolledBack
		}
		if got := outcomeMessage(release.Status{Phase: phase, Message: msg}); got != want {
			t.Errorf("%q: got %q, want %q", msg, got, want)
		}
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Now()
	m.add(t0, 100)
	if m.perSecond() != 0 {
		t.Fatal("one sample has no rate")
	}
	m.add(t0.Add(10*time.Second), 200)
	if r := m.perSecond(); r != 10 {
		t.Fatalf("rate %v, want 10", r)
	}
	m.add(t0.Add(11*time.Second), 5) // counters reset
	if m.perSecond() != 0 {
		t.Fatal("after a reset the rate is unknown until the next sample")
	}
	if got := count(1900); got != "1,900" {
		t.Errorf("count: %s", got)
	}
	if got := count(1234567); got != "1,234,567" {
		t.Errorf("count: %s", got)
	}
}
