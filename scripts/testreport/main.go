// Command testreport turns the `go test -json` stream of scripts/test.sh
// into what a person reads, and tells where the time went.
//
// Filter mode (the default) reads the stream on stdin, appends it unchanged
// to the -json file (the record), and prints what `go test` without -v
// prints: one ok/FAIL line a package, and the output of failed tests only.
// It exits 1 when a test or a build failed.
//
// Summary mode (-summary) reads records written by filter mode and prints
// the time of every package and the slowest tests, so the next person who
// wants the suite faster knows where to look.
//
// With -times, summary mode also keeps the time of every package that ran
// (not replayed from the go test cache) in a times file; order mode
// (-order) reads such a file and a list of packages, and prints the list
// slowest first, the order in which scripts/test.sh hands packages to
// `go test`, which starts them in that order.
//
// Usage:
//
//	go list ./... | testreport -order test-artifacts/package-times.txt
//	go test -json ./... | testreport -json test-artifacts/go-test.json
//	testreport -summary -top 20 -times test-artifacts/package-times.txt test-artifacts/go-test.json
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	record := flag.String("json", "", "file the raw `go test -json` stream is appended to (filter mode)")
	summary := flag.Bool("summary", false, "print per-package times and the slowest tests of the given -json records")
	top := flag.Int("top", 20, "how many of the slowest tests -summary lists")
	timesFile := flag.String("times", "", "with -summary: file to keep the time of every package that ran in")
	orderBy := flag.String("order", "", "print the packages listed on stdin slowest first, by the times in this file (missing: as listed)")
	flag.Parse()

	if *orderBy != "" {
		times, err := loadTimes(*orderBy)
		if err != nil {
			fatalf("%v", err)
		}
		var pkgs []string
		if err := lines(os.Stdin, func(line []byte) {
			if p := strings.TrimSpace(string(line)); p != "" {
				pkgs = append(pkgs, p)
			}
		}); err != nil {
			fatalf("%v", err)
		}
		for _, p := range order(pkgs, times) {
			fmt.Println(p)
		}
		return
	}

	if *summary {
		if flag.NArg() == 0 {
			fatalf("-summary needs the -json records to read, e.g. testreport -summary test-artifacts/go-test.json")
		}
		var evs []event
		for _, name := range flag.Args() {
			f, err := os.Open(name)
			if err != nil {
				fatalf("%v", err)
			}
			got, err := readEvents(f)
			f.Close()
			if err != nil {
				fatalf("reading %s: %v", name, err)
			}
			evs = append(evs, got...)
		}
		writeSummary(os.Stdout, evs, *top)
		if *timesFile != "" {
			if err := keepTimes(*timesFile, ranTimes(evs)); err != nil {
				fatalf("%v", err)
			}
		}
		return
	}

	var in io.Reader = os.Stdin
	if *record != "" {
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fatalf("%v", err)
		}
		defer f.Close()
		in = io.TeeReader(os.Stdin, f)
	}
	failed, err := filter(in, os.Stdout)
	if err != nil {
		fatalf("%v", err)
	}
	if failed {
		os.Exit(1)
	}
}

// loadTimes reads a times file; a missing one holds no times.
func loadTimes(name string) (map[string]float64, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]float64{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTimes(f)
}

// keepTimes updates the times file name with those of ran, keeping the
// times of packages that did not run. It replaces the file whole (a
// rename), so an interrupted update leaves the old one.
func keepTimes(name string, ran map[string]float64) error {
	times, err := loadTimes(name)
	if err != nil {
		return err
	}
	maps.Copy(times, ran)
	tmp, err := os.CreateTemp(filepath.Dir(name), ".times-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeTimes(tmp, times); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testreport: "+format+"\n", args...)
	os.Exit(2)
}
