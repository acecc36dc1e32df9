package merge

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnifiedFormat(t *testing.T) {
	old := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"
	new := "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n10\n"
	want := "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n"
	if got := Unified("a/f", "b/f", old, new); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := Unified("a", "b", old, old); got != "" {
		t.Errorf("equal texts gave a diff: %q", got)
	}
	if got := Unified("/dev/null", "b/f", "", "x\n"); got != "--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("new file diff: %q", got)
	}
	if got := Unified("a/f", "b/f", "x", "x\n"); !strings.Contains(got, "-x\n\\ No newline at end of file\n+x\n") {
		t.Errorf("final newline change not shown: %q", got)
	}
}

// Every diff we print applies with GNU patch and reproduces the new text.
func TestUnifiedAppliesWithPatch(t *testing.T) {
	patch, err := exec.LookPath("patch")
	if err != nil {
		t.Fatal("GNU patch is missing: install the Debian package patch (scripts/test.sh installs it)")
	}
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	for n := range 200 {
		var base []string
		for i := range r.IntN(40) {
			base = append(base, "line "+string(rune('a'+i%26))+strings.Repeat("x", i/26)+"\n")
		}
		edited := base
		for range r.IntN(4) + 1 {
			edited = randomEdit(r, edited, "e")
		}
		old, new := strings.Join(base, ""), strings.Join(edited, "")
		d := Unified("a/f", "b/f", old, new)
		if old == new {
			continue
		}
		f := filepath.Join(dir, "f")
		if err := os.WriteFile(f, []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(patch, "--silent", "--force", f)
		cmd.Stdin = strings.NewReader(d)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: patch rejected our diff: %v\n%s\ndiff:\n%s", n, err, out, d)
		}
		got, _ := os.ReadFile(f)
		if string(got) != new {
			t.Fatalf("case %d: patched text %q, want %q\ndiff:\n%s", n, got, new, d)
		}
	}
}
