package scaffold

import (
	"strings"
	"testing"
)

// A .pave.yaml with pave build's image section still parses, and keeps it
// when written back (pave upgrade rewrites the record).
func TestRecordKeepsTheImageSection(t *testing.T) {
	r, err := ParseRecord([]byte("template: service\ntemplateVersion: 1\nanswers:\n  name: orders\nimage:\n  base: scratch\n  user: \"65532:65532\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "image:\n  base: scratch\n  user: 65532:65532\n") {
		t.Fatalf("the image section was not kept:\n%s", out)
	}
}
