package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json), with the fields
// of build events (-json since Go 1.24) as well.
type event struct {
	Time       time.Time
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output, build-fail
}

// lines calls fn for every line of r, long ones included (a test may log
// megabytes on one line).
func lines(r io.Reader, fn func(line []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			fn(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parse decodes a line of the stream; ok is false for what is not an
// event (a line the go command wrote to the same pipe).
func parse(line []byte) (ev event, ok bool) {
	if len(line) == 0 || line[0] != '{' {
		return ev, false
	}
	return ev, json.Unmarshal(line, &ev) == nil
}

type testKey struct{ pkg, test string }

// filter prints what `go test` without -v would of the stream in r:
// package result lines, build errors, and the output of failed tests.
// It reports whether anything failed.
func filter(r io.Reader, w io.Writer) (failed bool, err error) {
	buf := map[testKey]*strings.Builder{} // output of tests still running
	flushUnfinished := func(pkg string) {
		var keys []testKey
		for k := range buf {
			if k.pkg == pkg {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].test < keys[j].test })
		for _, k := range keys {
			if s := buf[k].String(); s != "" {
				fmt.Fprintf(w, "--- %s did not finish; its output:\n%s", k.test, s)
			}
			delete(buf, k)
		}
	}
	err = lines(r, func(line []byte) {
		ev, ok := parse(line)
		if !ok {
			w.Write(line)
			return
		}
		k := testKey{ev.Package, ev.Test}
		switch ev.Action {
		case "build-output":
			io.WriteString(w, ev.Output)
		case "build-fail":
			failed = true
		case "run":
			buf[k] = &strings.Builder{}
		case "output":
			if ev.Test == "" {
				if ev.Output == "PASS\n" {
					return
				}
				if isResultLine(ev.Output) {
					// The package's last lines: whatever is still
					// running (a panic, a timeout) goes before them.
					flushUnfinished(ev.Package)
				}
				io.WriteString(w, ev.Output)
				return
			}
			if isProgressLine(ev.Output) {
				return
			}
			b := buf[k]
			if b == nil {
				b = &strings.Builder{}
				buf[k] = b
			}
			b.WriteString(ev.Output)
		case "fail":
			failed = true
			if ev.Test == "" {
				flushUnfinished(ev.Package)
				return
			}
			if b := buf[k]; b != nil {
				io.WriteString(w, b.String())
			}
			delete(buf, k)
		case "pass", "skip":
			if ev.Test == "" {
				flushUnfinished(ev.Package)
				return
			}
			delete(buf, k)
		}
	})
	return failed, err
}

// isProgressLine reports the lines -v adds that plain `go test` does not
// print ("=== RUN", and the results of passed or skipped subtests).
func isProgressLine(s string) bool {
	t := strings.TrimLeft(s, " ")
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- SKIP"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// isResultLine reports a package's closing line or its FAIL marker.
func isResultLine(s string) bool {
	return s == "FAIL\n" || strings.HasPrefix(s, "ok  \t") || strings.HasPrefix(s, "FAIL\t")
}

func readEvents(r io.Reader) ([]event, error) {
	var evs []event
	err := lines(r, func(line []byte) {
		if ev, ok := parse(line); ok {
			evs = append(evs, ev)
		}
	})
	return evs, err
}

type timing struct {
	pkg, test string
	secs      float64
	failed    bool
	parallel  bool
}

// writeSummary prints how many packages ran and how many results the go
// command replayed from its test cache, every package's time, slowest
// first, then the top slowest top-level tests. A parallel test's time
// overlaps others', so such tests are marked. A replayed package's tests
// did not run now: they are listed by name only, and their times (those of
// the run that was cached) are left out.
func writeSummary(w io.Writer, evs []event, top int) {
	cached := map[string]bool{}
	for _, ev := range evs {
		if ev.Action == "output" && ev.Test == "" && isResultLine(ev.Output) && strings.HasSuffix(ev.Output, "\t(cached)\n") {
			cached[ev.Package] = true
		}
	}
	var pkgs, tests []timing
	var reused []string
	parallel := map[testKey]bool{}
	// A test's Elapsed leaves out its parallel subtests, which run after
	// its function returns; the wall time from its start to its end
	// includes them. Not for a parallel test: its end is reported only
	// when its parallel siblings are done too.
	started := map[testKey]time.Time{}
	var first, last time.Time
	for _, ev := range evs {
		if !ev.Time.IsZero() {
			if first.IsZero() || ev.Time.Before(first) {
				first = ev.Time
			}
			if ev.Time.After(last) {
				last = ev.Time
			}
		}
		if ev.Test != "" && (ev.Action == "pause" || ev.Action == "output" && strings.HasPrefix(ev.Output, "=== PAUSE ")) {
			parallel[testKey{ev.Package, ev.Test}] = true
		}
		if ev.Test != "" && !ev.Time.IsZero() && ev.Action == "run" {
			started[testKey{ev.Package, ev.Test}] = ev.Time
		}
		if ev.Action != "pass" && ev.Action != "fail" {
			continue
		}
		if cached[ev.Package] {
			if ev.Test == "" {
				reused = append(reused, ev.Package)
			}
			continue
		}
		t := timing{pkg: ev.Package, test: ev.Test, secs: ev.Elapsed, failed: ev.Action == "fail"}
		if t0, ok := started[testKey{ev.Package, ev.Test}]; ok && !parallel[testKey{ev.Package, ev.Test}] {
			t.secs = max(t.secs, ev.Time.Sub(t0).Seconds())
		}
		switch {
		case ev.Test == "":
			pkgs = append(pkgs, t)
		case !strings.Contains(ev.Test, "/"):
			tests = append(tests, t)
		}
	}
	for i := range tests {
		tests[i].parallel = parallel[testKey{tests[i].pkg, tests[i].test}]
	}
	slowest := func(ts []timing) {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].secs > ts[j].secs })
	}
	slowest(pkgs)
	slowest(tests)

	var sum float64
	for _, p := range pkgs {
		sum += p.secs
	}
	sort.Strings(reused)
	fmt.Fprintf(w, "Packages: %d run, %d reused from the go test cache (not run now", len(pkgs), len(reused))
	if len(reused) > 0 {
		fmt.Fprint(w, "; scripts/test.sh with PAVE_TEST_FRESH=1 runs every test")
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "Per-package times, slowest first (%d packages, %.0f s in all", len(pkgs), sum)
	if !first.IsZero() {
		fmt.Fprintf(w, ", %.0f s wall clock", last.Sub(first).Seconds())
	}
	fmt.Fprintln(w, "):")
	for _, p := range pkgs {
		fmt.Fprintf(w, "  %8.1fs  %s%s\n", p.secs, p.pkg, mark(p))
	}
	if len(reused) > 0 {
		fmt.Fprintf(w, "Reused from the go test cache, not run now (%d packages):\n", len(reused))
		for _, p := range reused {
			fmt.Fprintf(w, "            %s\n", p)
		}
	}
	if top > len(tests) {
		top = len(tests)
	}
	fmt.Fprintf(w, "The %d slowest tests (P: parallel, its time overlaps others'):\n", top)
	for _, t := range tests[:top] {
		p := " "
		if t.parallel {
			p = "P"
		}
		fmt.Fprintf(w, "  %8.1fs %s %s %s%s\n", t.secs, p, t.pkg, t.test, mark(t))
	}
}

func mark(t timing) string {
	if t.failed {
		return "  FAIL"
	}
	return ""
}

// readTimes reads a times file: one package a line, "seconds<TAB>package".
func readTimes(r io.Reader) (map[string]float64, error) {
	times := map[string]float64{}
	err := lines(r, func(line []byte) {
		secs, pkg, ok := strings.Cut(strings.TrimSpace(string(line)), "\t")
		var s float64
		if _, err := fmt.Sscan(secs, &s); ok && err == nil && pkg != "" {
			times[pkg] = s
		}
	})
	return times, err
}

// writeTimes writes times as readTimes reads them, slowest first.
func writeTimes(w io.Writer, times map[string]float64) error {
	pkgs := make([]string, 0, len(times))
	for p := range times {
		pkgs = append(pkgs, p)
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if times[pkgs[i]] != times[pkgs[j]] {
			return times[pkgs[i]] > times[pkgs[j]]
		}
		return pkgs[i] < pkgs[j]
	})
	for _, p := range pkgs {
		if _, err := fmt.Fprintf(w, "%.1f\t%s\n", times[p], p); err != nil {
			return err
		}
	}
	return nil
}

// ranTimes are the times of the packages that ran in evs (not those the
// go command replayed from its test cache).
func ranTimes(evs []event) map[string]float64 {
	cached := map[string]bool{}
	times := map[string]float64{}
	for _, ev := range evs {
		if ev.Test != "" {
			continue
		}
		switch {
		case ev.Action == "output" && isResultLine(ev.Output) && strings.HasSuffix(ev.Output, "\t(cached)\n"):
			cached[ev.Package] = true
		case ev.Action == "pass" || ev.Action == "fail":
			times[ev.Package] = ev.Elapsed
		case ev.Action == "skip": // no test files
			times[ev.Package] = 0
		}
	}
	for p := range cached {
		delete(times, p)
	}
	return times
}

// order sorts pkgs for `go test`, which starts packages in the order it
// is given them (-p at a time): the slowest first, so that the longest
// do not start last and hold up the end of the run. Packages with no
// known time go first: a new package may well be slow, and most are not.
func order(pkgs []string, times map[string]float64) []string {
	out := slices.Clone(pkgs)
	sort.SliceStable(out, func(i, j int) bool {
		ti, iok := times[out[i]]
		tj, jok := times[out[j]]
		if iok != jok {
			return !iok
		}
		return ti > tj
	})
	return out
}
