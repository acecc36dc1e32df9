package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckArtifactNamesTheFieldAtFault(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "svc")
	if err := os.Mkdir(good, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(good, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &Local{}
	for _, c := range []struct {
		d           Deployment
		field, says string
	}{
		{Deployment{Source: filepath.Join(dir, "nope")}, "source", "does not exist"},
		{Deployment{Source: "./svc"}, "source", "relative path"},
		{Deployment{Source: empty}, "source", "no Go files"},
		{Deployment{Source: plain}, "source", "not a directory"},
		{Deployment{Binary: filepath.Join(dir, "nope")}, "binary", "does not exist"},
		{Deployment{Binary: plain}, "binary", "not an executable"},
		{Deployment{Image: "r/x:1"}, "image", "not images"},
	} {
		err := l.CheckArtifact(c.d)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: want %s error saying %q, got %v", c.d, c.field, c.says, err)
		}
	}
	if err := l.CheckArtifact(Deployment{Source: good}); err != nil {
		t.Errorf("a source directory with Go files: %v", err)
	}
	if err := l.CheckArtifact(Deployment{Binary: "/bin/true"}); err != nil {
		t.Errorf("an executable: %v", err)
	}
}

func TestTailLinesKeepsTheLastLinesOldestFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stderr.log")
	var b strings.Builder
	for i := range 5000 { // above the 64 KiB window
		b.WriteString(strings.Repeat("x", 20) + " line " + string(rune('a'+i%26)) + "\n")
	}
	b.WriteString("fatal: the end\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := tailLines(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2] != "fatal: the end" || !strings.HasSuffix(got[1], "line "+string(rune('a'+4999%26))) {
		t.Fatalf("tail %q", got)
	}
}
