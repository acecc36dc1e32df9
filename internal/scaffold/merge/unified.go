package merge

import (
	"fmt"
	"strings"
)

// Unified returns the unified diff (as `diff -u` writes it, three lines of
// context) from oldText to newText, with the given file labels, or "" when
// they are equal. A missing file is passed as "" with the label /dev/null.
func Unified(oldLabel, newLabel, oldText, newText string) string {
	if oldText == newText {
		return ""
	}
	a, b := Lines(oldText), Lines(newText)
	m := match(a, b)

	// An edit script: ' ' keeps, '-' removes from a, '+' adds from b.
	type edit struct {
		op   byte
		line string
	}
	var script []edit
	j := 0
	for i := range a {
		if m[i] < 0 {
			script = append(script, edit{'-', a[i]})
			continue
		}
		for ; j < m[i]; j++ {
			script = append(script, edit{'+', b[j]})
		}
		script = append(script, edit{' ', a[i]})
		j++
	}
	for ; j < len(b); j++ {
		script = append(script, edit{'+', b[j]})
	}

	const context = 3
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", oldLabel, newLabel)
	// oldAt/newAt give, for each script position, the 0-based line numbers
	// in a and b where that position sits.
	oldAt, newAt := make([]int, len(script)+1), make([]int, len(script)+1)
	for x, e := range script {
		oldAt[x+1], newAt[x+1] = oldAt[x], newAt[x]
		if e.op != '+' {
			oldAt[x+1]++
		}
		if e.op != '-' {
			newAt[x+1]++
		}
	}
	for x := 0; x < len(script); {
		if script[x].op == ' ' {
			x++
			continue
		}
		start := max(0, x-context)
		end := x
		// Extend the hunk while the next change is within 2*context lines.
		for end < len(script) {
			if script[end].op != ' ' {
				end++
				continue
			}
			run := end
			for run < len(script) && script[run].op == ' ' {
				run++
			}
			if run < len(script) && run-end <= 2*context {
				end = run
				continue
			}
			end = min(run, end+context)
			break
		}
		oldN, newN := oldAt[end]-oldAt[start], newAt[end]-newAt[start]
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(oldAt[start], oldN), hunkRange(newAt[start], newN))
		for _, e := range script[start:end] {
			out.WriteByte(e.op)
			out.WriteString(e.line)
			if !strings.HasSuffix(e.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		x = end
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}
