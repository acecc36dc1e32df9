package main

import (
	"fmt"
	"io"

	"github.com/pave-platform/pave/internal/stats"
)

// printUnjudged lists, under `pave traffic show`, the requests whose
// version the client chose (pinned, sticky): counted apart, never judged.
func printUnjudged(out io.Writer, versions []string, snap stats.Snapshot) {
	for _, ver := range versions {
		for _, reason := range []string{stats.Pinned, stats.Sticky, stats.Mirrored} {
			if c := snap[ver].Unjudged[reason]; c.Requests > 0 {
				fmt.Fprintf(out, "not judged: %s %s %d requests, %s errors\n", ver, reason, c.Requests, percentOf(c.Errors, c.Requests))
			}
		}
	}
}
