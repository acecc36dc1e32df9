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
// Usage:
//
//	go test -json ./... | testreport -json test-artifacts/go-test.json
//	testreport -summary -top 20 test-artifacts/go-test.json
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	record := flag.String("json", "", "file the raw `go test -json` stream is appended to (filter mode)")
	summary := flag.Bool("summary", false, "print per-package times and the slowest tests of the given -json records")
	top := flag.Int("top", 20, "how many of the slowest tests -summary lists")
	flag.Parse()

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

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testreport: "+format+"\n", args...)
	os.Exit(2)
}
