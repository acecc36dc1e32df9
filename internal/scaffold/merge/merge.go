// Package merge is the line-based text merging behind `pave upgrade`: a
// three-way merge (diff3) of the team's file against the template's old and
// new renderings, and the unified diff that `--dry-run` prints.
//
// Lines keep their terminating newline, so a last line without one is a
// different line from the same text with one, and merges never add or drop a
// final newline by accident.
package merge

import (
	"strings"
)

// Lines splits s into lines, each keeping its trailing "\n" (the last one may
// have none).
func Lines(s string) []string {
	var out []string
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// match returns, for each line of a, the index of the line of b it is paired
// with in a longest common subsequence, or -1. The pairing is monotone: if
// a[i] pairs with b[j] and a[k] with b[l], i < k implies j < l.
//
// Common prefix and suffix are paired first, so the quadratic table only
// covers the region that differs; templates and the edits teams make to them
// are small, which keeps that region small.
func match(a, b []string) []int {
	m := make([]int, len(a))
	for i := range m {
		m[i] = -1
	}
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		m[pre] = pre
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		m[len(a)-1-suf] = len(b) - 1 - suf
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, k := len(ma), len(mb)
	if n == 0 || k == 0 {
		return m
	}
	// lcs[i][j] is the LCS length of ma[i:] and mb[j:].
	w := k + 1
	lcs := make([]int32, (n+1)*w)
	for i := n - 1; i >= 0; i-- {
		for j := k - 1; j >= 0; j-- {
			switch {
			case ma[i] == mb[j]:
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
				lcs[i*w+j] = lcs[(i+1)*w+j]
			default:
				lcs[i*w+j] = lcs[i*w+j+1]
			}
		}
	}
	for i, j := 0, 0; i < n && j < k; {
		switch {
		case ma[i] == mb[j]:
			m[pre+i] = pre + j
			i++
			j++
		case lcs[(i+1)*w+j] >= lcs[i*w+j+1]:
			i++
		default:
			j++
		}
	}
	return m
}

// Conflict markers, as git and GNU diff3 write them with the merge style
// "diff3", so editors and tools recognise them.
const (
	MarkerOurs   = "<<<<<<< ours"
	MarkerBase   = "||||||| base"
	MarkerSep    = "======="
	MarkerTheirs = ">>>>>>> theirs"
)

// Result is the outcome of a three-way merge.
type Result struct {
	Text string
	// Conflicts counts the regions both sides changed differently; each is
	// written into Text between conflict markers.
	Conflicts int
	// ConflictLines are the 1-based line numbers in Text of each conflict's
	// opening marker.
	ConflictLines []int
}

// Merge3 merges the changes from base to ours and from base to theirs. A
// region changed on one side only takes that side; a region changed the same
// way on both sides is taken once; a region changed differently on both sides
// is a conflict, written with ours, base and theirs between markers.
func Merge3(base, ours, theirs string) Result {
	o, a, b := Lines(base), Lines(ours), Lines(theirs)
	ma, mb := match(o, a), match(o, b)

	var out strings.Builder
	res := Result{}
	line := 1
	emit := func(ls []string) {
		for _, l := range ls {
			out.WriteString(l)
			line++
		}
	}
	emitMarker := func(m string, after []string) {
		if n := len(after); n > 0 && !strings.HasSuffix(after[n-1], "\n") {
			out.WriteString("\n")
		}
		out.WriteString(m + "\n")
		line++
	}
	unstable := func(oc, ac, bc []string) {
		switch {
		case equal(ac, oc):
			emit(bc)
		case equal(bc, oc), equal(ac, bc):
			emit(ac)
		default:
			res.Conflicts++
			res.ConflictLines = append(res.ConflictLines, line)
			emitMarker(MarkerOurs, nil)
			emit(ac)
			emitMarker(MarkerBase, ac)
			emit(oc)
			emitMarker(MarkerSep, oc)
			emit(bc)
			emitMarker(MarkerTheirs, bc)
		}
	}

	i, j, k := 0, 0, 0
	for i < len(o) || j < len(a) || k < len(b) {
		// A stable run: base lines paired with the next line on both sides.
		n := 0
		for i+n < len(o) && ma[i+n] == j+n && mb[i+n] == k+n {
			n++
		}
		if n > 0 {
			emit(o[i : i+n])
			i, j, k = i+n, j+n, k+n
			continue
		}
		// An unstable region runs up to the next base line both sides kept.
		next := -1
		for x := i; x < len(o); x++ {
			if ma[x] >= j && mb[x] >= k {
				next = x
				break
			}
		}
		if next < 0 {
			unstable(o[i:], a[j:], b[k:])
			break
		}
		unstable(o[i:next], a[j:ma[next]], b[k:mb[next]])
		i, j, k = next, ma[next], mb[next]
	}
	res.Text = out.String()
	return res
}

func equal(x, y []string) bool {
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// HasMarkers reports whether s still holds a conflict region.
func HasMarkers(s string) bool {
	for _, l := range Lines(s) {
		if strings.HasPrefix(l, MarkerOurs) || strings.HasPrefix(l, MarkerTheirs) {
			return true
		}
	}
	return false
}
