package main

import (
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/stats"
)

func TestPrintUnjudged(t *testing.T) {
	var b strings.Builder
	printUnjudged(&b, []string{"v1", "v2"}, stats.Snapshot{
		"v1": {Total: stats.Counts{Requests: 90}},
		"v2": {Total: stats.Counts{Requests: 10}, Unjudged: map[string]stats.Counts{"pinned": {Requests: 30, Errors: 3}}},
	})
	if got, want := b.String(), "not judged: v2 pinned 30 requests, 10.00% errors\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
