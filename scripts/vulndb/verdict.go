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
// code calls. It fails (returns false) on one in a module, which a
// `go get` fixes; one in the standard library is fixed by a newer Go
// toolchain (go.mod's go line, the scaffold's Go version and the
// machines), so it is reported loudly as that upgrade, and fails only
// with strictStdlib.
func verdict(in io.Reader, out io.Writer, strictStdlib bool) (bool, error) {
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
	for _, id := range ids {
		f := called[id]
		t := f.Trace[0]
		fix := f.FixedVersion
		if fix == "" {
			fix = "no fixed version"
		}
		if t.Module == "stdlib" {
			stdlib = append(stdlib, fmt.Sprintf("%s (%s.%s, fixed in go%s)", id, t.Package, t.Function, strings.TrimPrefix(fix, "v")))
			if strictStdlib {
				ok = false
			}
			continue
		}
		ok = false
		fmt.Fprintf(out, "VULNERABLE: %s in %s@%s, called as %s.%s; fixed in %s: go get %s@%s && go mod tidy\n",
			id, t.Module, t.Version, t.Package, t.Function, fix, t.Module, fix)
	}
	if len(stdlib) > 0 {
		fmt.Fprintf(out, "STANDARD LIBRARY: the Go toolchain in use has %d advisories this code calls; upgrade Go (go.mod's go line in the root module and kit, the Go version pave new writes, the machines):\n  %s\n",
			len(stdlib), strings.Join(stdlib, "\n  "))
	}
	if len(ids) == 0 {
		fmt.Fprintln(out, "no called vulnerabilities")
	}
	return ok, nil
}
