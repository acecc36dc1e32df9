package testproc

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFailureLinesNameTheFailure(t *testing.T) {
	for _, c := range []struct {
		name, out, want string
	}{
		{"must", "quiet-v2: Warning: ...\nFAIL: sparse-v2: the per-step forecast does not begin with the step\nwhat led to it; Playwright's last 3 log lines:\n[1.0s] api => page.goto\n", "\nFAIL: sparse-v2: the per-step forecast does not begin with the step"},
		{"budget and SIGTERM", "FAIL: the script ran out of its 1000 ms budget after 1.0s\n[0.5s] api waiting for locator\nFAIL: stopped from outside (SIGTERM) after 21.0s\n", "\nFAIL: the script ran out of its 1000 ms budget after 1.0s\nFAIL: stopped from outside (SIGTERM) after 21.0s"},
		{"thrown", "a\nb\nTimeoutError: page.waitForSelector: Timeout 60000ms exceeded.\n  at x.mjs:3\n\n", "\nb\nTimeoutError: page.waitForSelector: Timeout 60000ms exceeded.\n  at x.mjs:3"},
		{"silent", "", ""},
	} {
		if got := failureLines([]byte(c.out)); got != c.want {
			t.Errorf("%s: failureLines = %q, want %q", c.name, got, c.want)
		}
	}
	long := failureLines([]byte("FAIL: a" + strings.Repeat("→", 2000)))
	if len(long) > 700 || !strings.HasSuffix(long, "→…") || !utf8.ValidString(long) {
		t.Errorf("a long line is not cut at a whole character: %d bytes", len(long))
	}
}
