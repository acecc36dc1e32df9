package scaffold

import (
	"context"
	"strings"
	"testing"
)

// Version 3 turns the shared Go build cache on in CI with two lines of the
// caller; repositories made at 1 or 2 get them by `pave upgrade`, and a
// team's own change to the caller survives.
func TestUpgradeToV3AddsTheBuildCache(t *testing.T) {
	for _, from := range []int{1, 2} {
		dir, _ := newAtV1(t)
		if from == 2 {
			if _, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Version: 2}); err != nil {
				t.Fatal(err)
			}
			git(t, dir, "add", "-A")
			git(t, dir, "commit", "-qm", "upgrade to 2")
		}
		// The team runs CI by hand too.
		replaceIn(t, dir, ".github/workflows/ci.yaml", "  pull_request:\n", "  pull_request:\n  workflow_dispatch:\n")
		git(t, dir, "commit", "-qam", "team edit")

		res, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if res.From != from || res.To != 3 || len(res.Conflicts) != 0 {
			t.Fatalf("from %d: %d -> %d, conflicts %v", from, res.From, res.To, res.Conflicts)
		}
		ci := read(t, dir, ".github/workflows/ci.yaml")
		for _, want := range []string{"workflow_dispatch:", "go-cache-url: ${{ vars.PAVE_CACHE_URL }}", "go-cache-token: ${{ secrets.PAVE_CACHE_TOKEN }}"} {
			if !strings.Contains(ci, want) {
				t.Errorf("from %d: the upgraded caller lacks %q:\n%s", from, want, ci)
			}
		}
		if readme := read(t, dir, "README.md"); !strings.Contains(readme, "## Build it fast") || !strings.Contains(readme, "pave cache gocacheprog") {
			t.Errorf("from %d: the README does not tell how to use the build cache", from)
		}
		if r, _, err := Check(dir); err != nil || r != 3 {
			t.Errorf("from %d: .pave.yaml records %d (%v)", from, r, err)
		}
	}
}
