package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/release"
)

// followPoll is how often a followed release is read.
var followPoll = time.Second

// followHeartbeat bounds the silence of the one-line output when only the
// numbers change: a CI log shows the release is alive.
const followHeartbeat = 30 * time.Second

// followOutage is how long the control plane may be unreachable while a
// release is followed (a restart of `pave up`) before the wait gives up.
const followOutage = 20 * time.Second

// followRelease shows a release until it settles, like `kubectl rollout
// status`: in a terminal a view redrawn in place every poll; otherwise one
// line per change. The outcome is the exit status (see main.go).
func followRelease(ctx context.Context, g *globals, w io.Writer, name string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	st := styleFor(w)
	live := !g.machine() && isTerminal(w)
	var (
		meter     rateMeter
		last      releaseDoc
		lastKey   string
		lastLine  time.Time
		lines     int
		downSince time.Time
	)
	for {
		d, err := fetchRelease(ctx, g, name)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return followTimeout(ctx, timeout, last)
		case err != nil:
			var un *apiclient.UnreachableError
			if !errors.As(err, &un) {
				return err
			}
			if downSince.IsZero() {
				downSince = now
			}
			if now.Sub(downSince) > followOutage {
				return err
			}
		default:
			downSince = time.Time{}
			last = d
			if dec := d.Status.Decision; dec != nil {
				meter.add(now, dec.CanaryRequests)
			}
			rate := meter.perSecond()
			switch {
			case g.machine():
			case live:
				view := renderRelease(d, now, rate, st)
				if lines > 0 {
					fmt.Fprintf(w, "\x1b[%dA\x1b[J", lines) // redraw in place
				}
				fmt.Fprint(w, view)
				lines = strings.Count(view, "\n")
			default:
				key := changeKey(d)
				if key != lastKey || now.Sub(lastLine) >= followHeartbeat {
					fmt.Fprintln(w, progressLine(d, now, rate))
					lastKey, lastLine = key, now
				}
			}
			if d.Settled() {
				return releaseOutcome(g, w, d, st)
			}
		}
		select {
		case <-ctx.Done():
			return followTimeout(ctx, timeout, last)
		case <-time.After(followPoll):
		}
	}
}

// releaseOutcome prints the end of a release and turns it into the exit
// status: 0 promoted, 2 rolled back, 3 failed or aborted.
func releaseOutcome(g *globals, w io.Writer, d releaseDoc, st style) error {
	if g.machine() {
		if err := g.format.write(w, d); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "release %s %s%s\n", d.Metadata.Name, st.phase(d.Status.Phase), outcomeMessage(d.Status))
	}
	switch d.Status.Phase {
	case release.Promoted:
		return nil
	case release.RolledBack:
		return exitCode{code: exitRolledBack, msg: fmt.Sprintf("release %s was rolled back, not promoted", d.Metadata.Name)}
	default:
		msg := fmt.Sprintf("release %s was %s, not promoted", d.Metadata.Name, d.Status.Phase.Words())
		if f := d.Status.Failure; f != nil && f.LogsCommand != "" {
			msg += "; its output: " + f.LogsCommand
		}
		return exitCode{code: exitFailed, msg: msg}
	}
}

// outcomeMessage is ": MESSAGE" without the phase repeated: the engine's
// messages often begin with it ("promoted: ...").
func outcomeMessage(s release.Status) string {
	m := strings.TrimSpace(s.Message)
	for _, p := range []string{s.Phase.Words(), string(s.Phase)} {
		if rest, ok := strings.CutPrefix(m, p); ok {
			m = strings.TrimLeft(rest, " :")
			break
		}
	}
	if m == "" {
		return ""
	}
	return ": " + m
}

// followTimeout is exit status 4 with where the release stands, or the
// cancellation when it was not the timeout.
func followTimeout(ctx context.Context, timeout time.Duration, last releaseDoc) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	name := last.Metadata.Name
	if name == "" {
		return exitCode{code: exitTimeout, msg: fmt.Sprintf("timed out after %s before the release could be read", timeout)}
	}
	msg := fmt.Sprintf("timed out after %s waiting for release %s: it is %s at step %s and goes on; follow it with `pave release status %s --watch`",
		timeout, name, last.Status.Phase.Words(), stepLabel(last.Release), name)
	if last.Status.Phase == release.Paused {
		msg += fmt.Sprintf(", resume it with `pave release resume %s`", name)
	}
	if m := missingEvidence(last, time.Now(), 0); m != "" {
		msg += "; missing " + m
	}
	return exitCode{code: exitTimeout, msg: msg}
}
