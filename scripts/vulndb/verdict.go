package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// A finding of `govulncheck -json`: an advisory and where the code meets
// it. The first frame names a function when the code calls it; otherwise
// the package or module is only imported or required.
type finding struct {
	OSV          string `json:"osv"`
	FixedVersion string `json:"fixed_version"`
	Trace        []struct {
		Module   string `json:"module"`
		Version  string `json:"version"`
		Package  string `json:"package"`
		Function string `json:"function"`
	} `json:"trace"`
}

// verdict reads govulncheck's JSON stream and reports the advisories the
// code calls. It fails (returns false) on any of them: one in a module is
// fixed by a `go get`, one in the standard library by a newer Go toolchain
// (go.mod's go line, the scaffold's Go version; see docs/security.md,
// "Toolchain policy"). allowStdlib is the emergency opt-out for the
// latter (a fix not yet released, a toolchain that cannot move today): the
// advisories are still printed, under a loud warning, but do not fail.
func verdict(in io.Reader, out io.Writer, allowStdlib bool) (bool, error) {
	called := map[string]finding{} // by advisory
	dec := json.NewDecoder(in)
	for {
		var msg struct {
			Finding *finding `json:"finding"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return false, fmt.Errorf("reading govulncheck -json: %w", err)
		}
		f := msg.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue
		}
		called[f.OSV] = *f
	}
	ids := make([]string, 0, len(called))
	for id := range called {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	ok := true
	var stdlib []string
	inUse := ""
	for _, id := range ids {
		f := called[id]
		t := f.Trace[0]
		fix := f.FixedVersion
		if fix == "" {
			fix = "no fixed version"
		}
		if t.Module == "stdlib" {
			stdlib = append(stdlib, fmt.Sprintf("%s (%s.%s, fixed in go%s)", id, t.Package, t.Function, strings.TrimPrefix(fix, "v")))
			inUse = "go" + strings.TrimPrefix(t.Version, "v")
			continue
		}
		ok = false
		fmt.Fprintf(out, "VULNERABLE: %s in %s@%s, called as %s.%s; fixed in %s: go get %s@%s && go mod tidy\n",
			id, t.Module, t.Version, t.Package, t.Function, fix, t.Module, fix)
	}
	if len(stdlib) > 0 {
		fmt.Fprintf(out, "VULNERABLE STANDARD LIBRARY: the Go toolchain in use (%s) has %d advisories this code calls:\n  %s\n"+
			"Fix: move to the newest Go named above: the go line of go.mod and go.work (scripts/go-toolchain.sh follows it), "+
			"DefaultGoVersion in internal/scaffold/answers.go and README's GOTOOLCHAIN export (docs/security.md, \"Toolchain policy\").\n",
			inUse, len(stdlib), strings.Join(stdlib, "\n  "))
		if allowStdlib {
			fmt.Fprintf(out, "%s\nWARNING: NOT FAILING on %d standard-library advisories because PAVE_VULN_ALLOW_STDLIB=1 (emergency opt-out).\n"+
				"WARNING: the binaries built here carry them. Unset PAVE_VULN_ALLOW_STDLIB as soon as the toolchain moves.\n%s\n",
				banner, len(stdlib), banner)
		} else {
			ok = false
		}
	}
	if len(ids) == 0 {
		fmt.Fprintln(out, "no called vulnerabilities")
	}
	return ok, nil
}

const banner = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
