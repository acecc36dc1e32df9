package main

import (
	"bytes"
	"strings"
	"testing"
)

const stream = `{"config":{"protocol_version":"v1.0.0"}}
{"osv":{"id":"GO-1"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve"}]}}
{"finding":{"osv":"GO-2","fixed_version":"v0.9.0","trace":[{"module":"example.com/m","version":"v0.8.0","package":"example.com/m/p"}]}}
`

const calledModule = `{"finding":{"osv":"GO-3","fixed_version":"v1.2.3","trace":[{"module":"example.com/m","version":"v1.2.0","package":"example.com/m/p","function":"Do"}]}}
`

func TestVerdictFailsOnEveryCalledAdvisory(t *testing.T) {
	for _, c := range []struct {
		name, in    string
		allow, want bool
		says, not   []string
	}{
		{"stdlib called, module only imported: fails by default", stream, false, false,
			[]string{"VULNERABLE STANDARD LIBRARY", "toolchain in use (go1.26.8) has 1 advisories", "GO-1 (net/http.Serve, fixed in go1.26.9)", "go line of go.mod"},
			[]string{"WARNING"}},
		{"the same with the emergency opt-out: passes under a loud warning", stream, true, true,
			[]string{"GO-1 (net/http.Serve, fixed in go1.26.9)", "WARNING: NOT FAILING on 1 standard-library advisories because PAVE_VULN_ALLOW_STDLIB=1", banner},
			nil},
		{"a module's function called", stream + calledModule, false, false,
			[]string{"VULNERABLE: GO-3 in example.com/m@v1.2.0", "go get example.com/m@v1.2.3"}, nil},
		{"a module's function called fails even with the opt-out", calledModule, true, false,
			[]string{"VULNERABLE: GO-3"}, []string{"WARNING", "STANDARD LIBRARY"}},
		{"nothing called", `{"finding":{"osv":"GO-2","trace":[{"module":"example.com/m"}]}}`, false, true,
			[]string{"no called vulnerabilities"}, []string{"WARNING"}},
		{"a standard-library package only imported", `{"finding":{"osv":"GO-4","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http"}]}}`, false, true,
			[]string{"no called vulnerabilities"}, []string{"GO-4"}},
	} {
		var out bytes.Buffer
		ok, err := verdict(strings.NewReader(c.in), &out, c.allow)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if ok != c.want {
			t.Errorf("%s: ok=%v, want %v\n%s", c.name, ok, c.want, out.String())
		}
		for _, s := range c.says {
			if !strings.Contains(out.String(), s) {
				t.Errorf("%s: output lacks %q:\n%s", c.name, s, out.String())
			}
		}
		for _, s := range append(c.not, "GO-2") {
			if strings.Contains(out.String(), s) {
				t.Errorf("%s: output has %q:\n%s", c.name, s, out.String())
			}
		}
	}
	if _, err := verdict(strings.NewReader("{not json"), &bytes.Buffer{}, false); err == nil {
		t.Error("a broken stream is accepted")
	}
}
