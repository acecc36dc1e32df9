package shadow

import (
	"crypto/sha256"
	"testing"
)

// FuzzParsePath: any input either is refused or parses into a pattern
// that matches itself; nothing panics.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"$", "$.fee", "$.items[*].price", "$['a]b']", `$['it\'s']`, "status", "header:X-Id", "$[0][1].x", "$..x", "$[", "$['"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		if p.String() != s {
			t.Fatalf("%q: String %q", s, p.String())
		}
		if !p.Match(s) {
			t.Fatalf("%q does not match itself", s)
		}
	})
}

// FuzzCompare: any two bodies compare without panic; every difference's
// path parses; a body compared with itself has none.
func FuzzCompare(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[1,2]}`), []byte(`{"a":2,"b":[1]}`))
	f.Add([]byte(`[{"x":{"y":null}}]`), []byte(`[{"x":{"y":"z"}},3]`))
	f.Add([]byte(`{"we ird'\\key":1}`), []byte(`{}`))
	f.Add([]byte("text"), []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		x := &Answer{Status: 200, Body: a, Digest: sha256.Sum256(a)}
		y := &Answer{Status: 200, Body: b, Digest: sha256.Sum256(b)}
		for _, d := range Compare(x, y, Options{}) {
			p, err := ParsePath(d.Path)
			if err != nil {
				t.Fatalf("difference path %q does not parse: %v", d.Path, err)
			}
			if !p.Match(d.Path) {
				t.Fatalf("path %q does not match itself", d.Path)
			}
		}
		if d := Compare(x, x, Options{}); len(d) != 0 {
			t.Fatalf("a body differs from itself: %v", d)
		}
	})
}
