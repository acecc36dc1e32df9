package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

var stream struct {
	once sync.Once
	out  []byte
	err  string
}

// goTestJSON runs the real `go test -json` on a throwaway module: a
// package whose tests pass, fail, log, run in parallel and have subtests,
// and a package that does not compile. It runs once; the tests share it.
func goTestJSON(t *testing.T) []byte {
	t.Helper()
	stream.once.Do(func() { stream.out, stream.err = runGoTestJSON() })
	if stream.err != "" {
		t.Fatal(stream.err)
	}
	return stream.out
}

func runGoTestJSON() ([]byte, string) {
	dir, err := os.MkdirTemp("", "testreport-")
	if err != nil {
		return nil, err.Error()
	}
	defer os.RemoveAll(dir)
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.24\n",
		"a/a_test.go": `package a

import "testing"

func TestQuiet(t *testing.T) { t.Log("quiet-log-of-a-passing-test") }

func TestLoud(t *testing.T) {
	t.Log("why-it-failed")
	t.Error("boom")
}

func TestSub(t *testing.T) {
	t.Run("fine", func(t *testing.T) {})
	t.Run("broken", func(t *testing.T) { t.Error("sub-boom") })
}

func TestPar(t *testing.T) { t.Parallel() }
`,
		"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestB(t *testing.T) { undefinedName() }\n",
		"c/c_test.go": "package c\n\nimport \"testing\"\n\nfunc TestC(t *testing.T) {}\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err.Error()
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return nil, err.Error()
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.Output()
	if err == nil {
		return nil, fmt.Sprintf("go test passed a module with failing tests; output:\n%s", out)
	}
	if !bytes.Contains(out, []byte(`"Action":"fail"`)) {
		return nil, fmt.Sprintf("go test -json wrote no fail event: %v\n%s", err, out)
	}
	return out, ""
}

func TestFilterPrintsWhatPlainGoTestPrints(t *testing.T) {
	stream := goTestJSON(t)
	var got bytes.Buffer
	failed, err := filter(bytes.NewReader(stream), &got)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("filter reported no failure")
	}
	out := got.String()
	for _, want := range []string{
		"--- FAIL: TestLoud", "why-it-failed", "boom",
		"--- FAIL: TestSub/broken", "sub-boom",
		"FAIL\texample.com/m/a",
		"ok  \texample.com/m/c",
		"undefinedName", // the compile error of package b
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"=== RUN", "quiet-log-of-a-passing-test", "--- PASS", "TestSub/fine"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q, which plain go test does not print:\n%s", unwanted, out)
		}
	}
}

func TestFilterPassesOnAllPass(t *testing.T) {
	stream := `{"Action":"start","Package":"p"}
{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0}
{"Action":"output","Package":"p","Output":"PASS\n"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.01s\n"}
{"Action":"pass","Package":"p","Elapsed":0.01}
`
	var got bytes.Buffer
	failed, err := filter(strings.NewReader(stream), &got)
	if err != nil || failed {
		t.Fatalf("filter = %v, %v; want no failure", failed, err)
	}
	if got.String() != "ok  \tp\t0.01s\n" {
		t.Errorf("output = %q, want only the ok line", got.String())
	}
}

// A test killed by a panic or the -timeout never gets its own fail event
// in older streams: its output must still show, before the package's FAIL.
func TestFilterShowsUnfinishedTests(t *testing.T) {
	stream := `{"Action":"run","Package":"p","Test":"TestHang"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"waiting for the server\n"}
{"Action":"output","Package":"p","Output":"panic: test timed out after 1s\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t1.0s\n"}
{"Action":"fail","Package":"p","Elapsed":1}
`
	var got bytes.Buffer
	failed, _ := filter(strings.NewReader(stream), &got)
	if !failed {
		t.Error("filter reported no failure")
	}
	want := "panic: test timed out after 1s\n--- TestHang did not finish; its output:\nwaiting for the server\nFAIL\tp\t1.0s\n"
	if got.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestSummaryListsPackagesAndSlowestTests(t *testing.T) {
	evs, err := readEvents(bytes.NewReader(goTestJSON(t)))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	writeSummary(&got, evs, 3)
	out := got.String()
	for _, re := range []string{
		`Per-package times, slowest first \(3 packages, `,
		`(?m)^ +[0-9.]+s  example.com/m/b  FAIL$`, // did not compile
		`(?m)^ +[0-9.]+s  example.com/m/a  FAIL$`,
		`(?m)^ +[0-9.]+s  example.com/m/c$`,
		`The 3 slowest tests`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("summary does not match %s:\n%s", re, out)
		}
	}
	// Three of the five top-level tests, no subtests.
	rows := regexp.MustCompile(`(?m)^ +[0-9.]+s [P ] example\.com/m/[ac] (\S+)`).FindAllStringSubmatch(out, -1)
	if len(rows) != 3 {
		t.Fatalf("want 3 test rows, got %d:\n%s", len(rows), out)
	}
	for _, r := range rows {
		if strings.Contains(r[1], "/") {
			t.Errorf("subtest %s listed among the slowest top-level tests", r[1])
		}
	}
	// The whole list marks the parallel test.
	got.Reset()
	writeSummary(&got, evs, 100)
	if !regexp.MustCompile(`(?m)^ +[0-9.]+s P example\.com/m/a TestPar$`).MatchString(got.String()) {
		t.Errorf("TestPar not marked parallel:\n%s", got.String())
	}
}

// A test whose subtests run in parallel reports an Elapsed without them;
// the summary shows the wall time from its start to its end instead.
func TestSummaryCountsParallelSubtests(t *testing.T) {
	stream := `{"Time":"2026-01-01T00:00:00Z","Action":"run","Package":"p","Test":"TestBig"}
{"Time":"2026-01-01T00:00:00Z","Action":"run","Package":"p","Test":"TestBig/a"}
{"Time":"2026-01-01T00:00:00Z","Action":"pause","Package":"p","Test":"TestBig/a"}
{"Time":"2026-01-01T00:00:01Z","Action":"cont","Package":"p","Test":"TestBig/a"}
{"Time":"2026-01-01T00:00:31Z","Action":"pass","Package":"p","Test":"TestBig/a","Elapsed":30}
{"Time":"2026-01-01T00:00:31Z","Action":"pass","Package":"p","Test":"TestBig","Elapsed":1}
{"Time":"2026-01-01T00:00:31Z","Action":"pass","Package":"p","Elapsed":31}
`
	evs, err := readEvents(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	writeSummary(&got, evs, 5)
	if !strings.Contains(got.String(), "    31.0s   p TestBig\n") {
		t.Errorf("TestBig not listed at its wall time of 31 s:\n%s", got.String())
	}
}

// A parallel test's end is reported when its parallel siblings are done:
// its Elapsed, not that wall time, is what it took.
func TestSummaryTakesAParallelTestsElapsed(t *testing.T) {
	stream := `{"Time":"2026-01-01T00:00:00Z","Action":"run","Package":"p","Test":"TestQuick"}
{"Time":"2026-01-01T00:00:00Z","Action":"pause","Package":"p","Test":"TestQuick"}
{"Time":"2026-01-01T00:00:00Z","Action":"cont","Package":"p","Test":"TestQuick"}
{"Time":"2026-01-01T00:05:00Z","Action":"pass","Package":"p","Test":"TestQuick","Elapsed":2}
`
	evs, err := readEvents(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	writeSummary(&got, evs, 5)
	if !strings.Contains(got.String(), "     2.0s P p TestQuick\n") {
		t.Errorf("TestQuick not listed at its 2 s:\n%s", got.String())
	}
}

// A result the go command replays from its test cache repeats the events
// of the run that was cached: the summary counts such a package as
// reused, names it, and lists none of its tests among the slowest.
func TestSummarySaysWhatCameFromTheTestCache(t *testing.T) {
	stream := `{"Time":"2026-01-01T00:00:00Z","Action":"start","Package":"p"}
{"Time":"2026-01-01T00:00:00Z","Action":"run","Package":"p","Test":"TestOld"}
{"Time":"2026-01-01T00:00:00Z","Action":"pass","Package":"p","Test":"TestOld","Elapsed":90}
{"Time":"2026-01-01T00:00:00Z","Action":"output","Package":"p","Output":"ok  \tp\t(cached)\n"}
{"Time":"2026-01-01T00:00:00Z","Action":"pass","Package":"p","Elapsed":0}
{"Time":"2026-01-01T00:00:00Z","Action":"start","Package":"q"}
{"Time":"2026-01-01T00:00:00Z","Action":"run","Package":"q","Test":"TestNew"}
{"Time":"2026-01-01T00:00:02Z","Action":"pass","Package":"q","Test":"TestNew","Elapsed":2}
{"Time":"2026-01-01T00:00:02Z","Action":"output","Package":"q","Output":"ok  \tq\t2.0s\n"}
{"Time":"2026-01-01T00:00:02Z","Action":"pass","Package":"q","Elapsed":2}
`
	evs, err := readEvents(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	writeSummary(&got, evs, 5)
	out := got.String()
	for _, want := range []string{
		"Packages: 1 run, 1 reused from the go test cache (not run now; scripts/test.sh with PAVE_TEST_FRESH=1 runs every test)\n",
		"slowest first (1 packages, 2 s in all",
		"Reused from the go test cache, not run now (1 packages):\n            p\n",
		"     2.0s   q TestNew\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "TestOld") {
		t.Errorf("a test of the cached package is listed as if it ran now:\n%s", out)
	}
}

// scripts/test.sh hands go test its packages slowest first, by the times
// of the last runs: those replayed from the cache keep their old time.
func TestTimesOrderThePackagesSlowestFirst(t *testing.T) {
	stream := `{"Action":"output","Package":"cached","Output":"ok  \tcached\t(cached)\n"}
{"Action":"pass","Package":"cached","Elapsed":0}
{"Action":"output","Package":"slow","Output":"ok  \tslow\t90.0s\n"}
{"Action":"pass","Package":"slow","Elapsed":90}
{"Action":"output","Package":"quick","Output":"ok  \tquick\t1.0s\n"}
{"Action":"pass","Package":"quick","Elapsed":1}
`
	evs, err := readEvents(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "times.txt")
	if err := os.WriteFile(name, []byte("300.0\tcached\n5.0\tslow\n2.0\tgone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keepTimes(name, ranTimes(evs)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if want := "300.0\tcached\n90.0\tslow\n2.0\tgone\n1.0\tquick\n"; string(b) != want {
		t.Errorf("times file:\n%s\nwant:\n%s", b, want)
	}
	times, err := loadTimes(name)
	if err != nil {
		t.Fatal(err)
	}
	got := order([]string{"quick", "new", "slow", "cached"}, times)
	if want := []string{"new", "cached", "slow", "quick"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if got, err := loadTimes(filepath.Join(t.TempDir(), "missing")); err != nil || len(got) != 0 {
		t.Errorf("a missing times file: %v, %v; want no times and no error", got, err)
	}
}
