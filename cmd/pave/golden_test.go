package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// volatile are the parts of CLI output that change from run to run.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}`), "TIME"},
	{regexp.MustCompile(`elapsed [0-9hms.]+`), "elapsed D"},
	{regexp.MustCompile(`\[[0-9hms.]+\]`), "[D]"},
	{regexp.MustCompile(`step minimum [0-9hms.]+ left`), "step minimum D left"},
	{regexp.MustCompile(`http://127\.0\.0\.1:\d+`), "http://SERVER"},
	{regexp.MustCompile(`(/tmp|/var)/[^\s"]*`), "PATH"},
}

func normalise(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.with)
	}
	return s
}

// golden compares got (normalised) with testdata/NAME.golden; -update
// rewrites the file.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = normalise(got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}
