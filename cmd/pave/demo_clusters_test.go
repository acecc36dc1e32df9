package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/loadgen"
)

// TestClusterDrillJudgesEachClassOfFailure: the drill passes when the loss
// of a cluster fails no request a gateway could have retried beyond 0.1%,
// whatever the few POSTs already sent to the lost cluster's instances;
// it fails on a request lost in a drain, on avoidable failures
// over the budget, and on more "already sent" failures than a
// cluster's in-flight POSTs could explain.
func TestClusterDrillJudgesEachClassOfFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drain loadgen.Counts
		loss  loadgen.Counts
		err   error
		ok    bool
		says  string
	}{
		{name: "clean", loss: loadgen.Counts{Sent: 1000}, ok: true},
		{name: "a POST already sent to the lost cluster", loss: loadgen.Counts{Sent: 986, Failed: 1, Unretriable: 1}, ok: true},
		{name: "several such POSTs, under 1%", loss: loadgen.Counts{Sent: 1000, Failed: 9, Unretriable: 9}, ok: true},
		{name: "one avoidable failure in 1000", loss: loadgen.Counts{Sent: 1000, Failed: 3, Unretriable: 2}, ok: true},
		{name: "one avoidable failure in 986", loss: loadgen.Counts{Sent: 986, Failed: 1}, ok: false,
			says: "1 failed that a gateway could have retried"},
		{name: "too many already sent", loss: loadgen.Counts{Sent: 1000, Failed: 11, Unretriable: 11}, ok: false,
			says: "11 already sent to the lost cluster's instances"},
		{name: "a request lost in the drain", drain: loadgen.Counts{Sent: 800, Failed: 1}, loss: loadgen.Counts{Sent: 1000}, ok: false,
			says: "1 requests failed during the drain"},
		{name: "stopped", err: errors.New("cluster busan: the failover did not happen within 30s"), ok: false, says: "did not happen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clusterDrill{cluster: "busan", drain: tc.drain, loss: tc.loss, err: tc.err, shift: time.Second, killed: 2}
			if c.ok() != tc.ok {
				t.Fatalf("ok() = %v, want %v (%s)", c.ok(), tc.ok, c.problem())
			}
			if p := c.problem(); !strings.Contains(p, tc.says) || (tc.ok && p != "") {
				t.Errorf("problem() = %q, want it to say %q", p, tc.says)
			}
			var out bytes.Buffer
			c.print(&out)
			if tc.err == nil && (!strings.Contains(out.String(), "a gateway could have retried") || !strings.Contains(out.String(), "already sent to the lost cluster's instances")) {
				t.Errorf("summary lacks the two classes of failure:\n%s", out.String())
			}
		})
	}
}

func TestFailureLogKeepsTheLatest(t *testing.T) {
	var l failureLog
	before := time.Now()
	for i := range failureLogSize + 10 {
		l.add(errors.New("failure " + strings.Repeat("x", i%3)))
	}
	if n := len(l.last); n != failureLogSize {
		t.Fatalf("%d failures kept, want %d", n, failureLogSize)
	}
	if got := l.since(before, 5); len(got) != 5 || !strings.HasPrefix(got[0], "+0.") || !strings.Contains(got[0], "failure") {
		t.Fatalf("since: %q", got)
	}
	if got := l.since(time.Now().Add(time.Second), 5); len(got) != 0 {
		t.Fatalf("failures after the last one: %q", got)
	}
}
