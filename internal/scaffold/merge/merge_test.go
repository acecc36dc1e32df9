package merge

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	cases := map[string][]string{
		"":          nil,
		"a":         {"a"},
		"a\n":       {"a\n"},
		"a\nb":      {"a\n", "b"},
		"a\n\nb\n":  {"a\n", "\n", "b\n"},
		"\n":        {"\n"},
		"x\ny\nz\n": {"x\n", "y\n", "z\n"},
	}
	for in, want := range cases {
		if got := Lines(in); !equal(got, want) {
			t.Errorf("Lines(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMerge3(t *testing.T) {
	cases := []struct {
		name               string
		base, ours, theirs string
		want               string
		conflicts          int
	}{
		{name: "all equal", base: "a\nb\n", ours: "a\nb\n", theirs: "a\nb\n", want: "a\nb\n"},
		{name: "only ours changed", base: "a\nb\nc\n", ours: "a\nB\nc\n", theirs: "a\nb\nc\n", want: "a\nB\nc\n"},
		{name: "only theirs changed", base: "a\nb\nc\n", ours: "a\nb\nc\n", theirs: "a\nb\nC\n", want: "a\nb\nC\n"},
		{
			name: "both changed far apart",
			base: "1\n2\n3\n4\n5\n6\n7\n", ours: "ONE\n2\n3\n4\n5\n6\n7\n", theirs: "1\n2\n3\n4\n5\n6\nSEVEN\n",
			want: "ONE\n2\n3\n4\n5\n6\nSEVEN\n",
		},
		{name: "same change both sides", base: "a\nb\nc\n", ours: "a\nX\nc\n", theirs: "a\nX\nc\n", want: "a\nX\nc\n"},
		{
			name: "true conflict", base: "a\nb\nc\n", ours: "a\nours\nc\n", theirs: "a\ntheirs\nc\n",
			want:      "a\n<<<<<<< ours\nours\n||||||| base\nb\n=======\ntheirs\n>>>>>>> theirs\nc\n",
			conflicts: 1,
		},
		{name: "ours inserts at top, theirs appends", base: "a\nb\n", ours: "new\na\nb\n", theirs: "a\nb\nend\n", want: "new\na\nb\nend\n"},
		{name: "ours deletes a line theirs left alone", base: "a\nb\nc\nd\n", ours: "a\nc\nd\n", theirs: "a\nb\nc\nD\n", want: "a\nc\nD\n"},
		{
			name: "both insert at the same place differently", base: "a\nb\n", ours: "a\nx\nb\n", theirs: "a\ny\nb\n",
			want:      "a\n<<<<<<< ours\nx\n||||||| base\n=======\ny\n>>>>>>> theirs\nb\n",
			conflicts: 1,
		},
		{
			name: "delete versus edit conflicts", base: "a\nb\nc\n", ours: "a\nc\n", theirs: "a\nB\nc\n",
			want:      "a\n<<<<<<< ours\n||||||| base\nb\n=======\nB\n>>>>>>> theirs\nc\n",
			conflicts: 1,
		},
		{name: "empty base, ours equals theirs", base: "", ours: "x\n", theirs: "x\n", want: "x\n"},
		{
			name: "empty base, both added different files", base: "", ours: "x\n", theirs: "y\n",
			want:      "<<<<<<< ours\nx\n||||||| base\n=======\ny\n>>>>>>> theirs\n",
			conflicts: 1,
		},
		{name: "theirs empties file ours kept", base: "a\n", ours: "a\n", theirs: "", want: ""},
		{name: "missing final newline kept from ours", base: "a\nx\nb\n", ours: "a\nx\nb", theirs: "A\nx\nb\n", want: "A\nx\nb"},
		{
			name: "conflict where a side lacks the final newline", base: "a\n", ours: "x", theirs: "y\n",
			want:      "<<<<<<< ours\nx\n||||||| base\na\n=======\ny\n>>>>>>> theirs\n",
			conflicts: 1,
		},
		{
			name: "two conflicts and a clean change between",
			base: "1\n2\n3\n4\n5\n6\n7\n8\n9\n", ours: "1\nA\n3\n4\n5\n6\n7\nB\n9\n", theirs: "1\na\n3\n4\nfive\n6\n7\nb\n9\n",
			want:      "1\n<<<<<<< ours\nA\n||||||| base\n2\n=======\na\n>>>>>>> theirs\n3\n4\nfive\n6\n7\n<<<<<<< ours\nB\n||||||| base\n8\n=======\nb\n>>>>>>> theirs\n9\n",
			conflicts: 2,
		},
		{
			name: "team appended, template edited the middle",
			base: "FROM golang:1.25 AS build\nRUN go build\nFROM scratch\n",
			ours: "FROM golang:1.25 AS build\nRUN go build\nFROM scratch\nLABEL team=x\n", theirs: "FROM golang:1.26 AS build\nRUN go build\nFROM scratch\n",
			want: "FROM golang:1.26 AS build\nRUN go build\nFROM scratch\nLABEL team=x\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Merge3(tc.base, tc.ours, tc.theirs)
			if got.Text != tc.want {
				t.Errorf("merged text:\n%s\nwant:\n%s", got.Text, tc.want)
			}
			if got.Conflicts != tc.conflicts {
				t.Errorf("conflicts = %d, want %d", got.Conflicts, tc.conflicts)
			}
			if len(got.ConflictLines) != got.Conflicts {
				t.Errorf("ConflictLines %v for %d conflicts", got.ConflictLines, got.Conflicts)
			}
			lines := Lines(got.Text)
			for _, n := range got.ConflictLines {
				if n < 1 || n > len(lines) || lines[n-1] != MarkerOurs+"\n" {
					t.Errorf("conflict line %d does not hold the opening marker", n)
				}
			}
			if HasMarkers(got.Text) != (tc.conflicts > 0) {
				t.Errorf("HasMarkers = %v with %d conflicts", HasMarkers(got.Text), tc.conflicts)
			}
		})
	}
}

// randomEdit makes a plausible edit of a line list: replace, insert, delete.
func randomEdit(r *rand.Rand, ls []string, tag string) []string {
	out := append([]string(nil), ls...)
	for n := r.IntN(3) + 1; n > 0; n-- {
		pos := 0
		if len(out) > 0 {
			pos = r.IntN(len(out))
		}
		switch r.IntN(3) {
		case 0:
			if len(out) > 0 {
				out[pos] = tag + out[pos]
			}
		case 1:
			out = append(out[:pos], append([]string{tag + "new\n"}, out[pos:]...)...)
		case 2:
			if len(out) > 0 {
				out = append(out[:pos], out[pos+1:]...)
			}
		}
	}
	return out
}

// The merge laws every correct three-way merge obeys, on random inputs.
func TestMerge3Properties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var base []string
		for i := range r.IntN(12) {
			base = append(base, string(rune('a'+i))+"\n")
		}
		ours := randomEdit(r, base, "o")
		theirs := randomEdit(r, base, "t")
		b, o, th := strings.Join(base, ""), strings.Join(ours, ""), strings.Join(theirs, "")

		if got := Merge3(b, o, b); got.Text != o || got.Conflicts != 0 {
			t.Fatalf("theirs unchanged must give ours: base %q ours %q got %q", b, o, got.Text)
		}
		if got := Merge3(b, b, th); got.Text != th || got.Conflicts != 0 {
			t.Fatalf("ours unchanged must give theirs: base %q theirs %q got %q", b, th, got.Text)
		}
		if got := Merge3(b, o, o); got.Text != o || got.Conflicts != 0 {
			t.Fatalf("identical sides must merge to that side: %q got %q", o, got.Text)
		}
		got := Merge3(b, o, th)
		if got.Conflicts == 0 {
			// A clean merge keeps every line that both sides kept from base.
			for i, l := range base {
				if contains(ours, l) && contains(theirs, l) && !strings.Contains(got.Text, l) {
					t.Fatalf("line %d %q kept by both sides lost: base %q ours %q theirs %q got %q", i, l, b, o, th, got.Text)
				}
			}
		}
	}
}

func contains(ls []string, l string) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// Git's own merge-file agrees on whether a merge is clean, and on the result
// when it is.
func TestMerge3AgreesWithGitMergeFile(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("git is missing: install the Debian package git (scripts/test.sh installs it)")
	}
	r := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	for n := range 150 {
		var base []string
		for i := range 10 + r.IntN(10) {
			base = append(base, strings.Repeat(string(rune('a'+i%26)), 1+i/26)+"\n")
		}
		// Edits far apart so that git's and ours choose the same alignment.
		ours := append([]string(nil), base...)
		theirs := append([]string(nil), base...)
		ours[r.IntN(4)] = "ours\n"
		theirs[len(theirs)-1-r.IntN(4)] = "theirs\n"
		if r.IntN(4) == 0 {
			theirs[0] = "theirs-top\n"
		}
		b, o, th := strings.Join(base, ""), strings.Join(ours, ""), strings.Join(theirs, "")
		write := func(name, s string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		po, pb, pt := write("ours", o), write("base", b), write("theirs", th)
		out, err := exec.Command(git, "merge-file", "-p", po, pb, pt).Output()
		gitClean := err == nil
		got := Merge3(b, o, th)
		if gitClean != (got.Conflicts == 0) {
			t.Fatalf("case %d: git clean=%v, ours conflicts=%d\nbase %q\nours %q\ntheirs %q\ngit %q\ngot %q", n, gitClean, got.Conflicts, b, o, th, out, got.Text)
		}
		if gitClean && string(out) != got.Text {
			t.Fatalf("case %d: git merged %q, we merged %q", n, out, got.Text)
		}
	}
}

func FuzzMerge3(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nB\nc\n", "a\nb\nC\n")
	f.Add("", "x", "y\n")
	f.Add("a\n", "", "a\nb")
	f.Fuzz(func(t *testing.T, base, ours, theirs string) {
		if len(base)+len(ours)+len(theirs) > 4096 {
			return
		}
		if got := Merge3(base, ours, base); got.Text != ours || got.Conflicts != 0 {
			t.Fatalf("theirs unchanged: got %q want %q", got.Text, ours)
		}
		if got := Merge3(base, base, theirs); got.Text != theirs || got.Conflicts != 0 {
			t.Fatalf("ours unchanged: got %q want %q", got.Text, theirs)
		}
		got := Merge3(base, ours, theirs)
		if got.Conflicts == 0 && HasMarkers(got.Text) && !HasMarkers(base+ours+theirs) {
			t.Fatalf("clean merge holds markers: %q", got.Text)
		}
	})
}

// A 2,000-line file with edits on both sides, far apart.
func BenchmarkMerge3(b *testing.B) {
	var base []string
	for i := range 2000 {
		base = append(base, strings.Repeat("x", i%70)+"\n")
	}
	ours := append([]string(nil), base...)
	theirs := append([]string(nil), base...)
	ours[100], theirs[1900] = "ours\n", "theirs\n"
	o, a, t := strings.Join(base, ""), strings.Join(ours, ""), strings.Join(theirs, "")
	for b.Loop() {
		if r := Merge3(o, a, t); r.Conflicts != 0 {
			b.Fatal("conflict")
		}
	}
}
