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

func TestVerdictFailsOnACalledModuleAdvisoryOnly(t *testing.T) {
	for _, c := range []struct {
		name, in     string
		strict, want bool
		says         []string
	}{
		{"stdlib called, module only imported", stream, false, true, []string{"STANDARD LIBRARY", "GO-1 (net/http.Serve, fixed in go1.26.9)"}},
		{"the same, strict about the standard library", stream, true, false, []string{"GO-1"}},
		{"a module's function called", stream + calledModule, false, false, []string{"VULNERABLE: GO-3 in example.com/m@v1.2.0", "go get example.com/m@v1.2.3"}},
		{"nothing called", `{"finding":{"osv":"GO-2","trace":[{"module":"example.com/m"}]}}`, true, true, []string{"no called vulnerabilities"}},
	} {
		var out bytes.Buffer
		ok, err := verdict(strings.NewReader(c.in), &out, c.strict)
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
		if strings.Contains(out.String(), "GO-2") {
			t.Errorf("%s: an advisory the code does not call is reported:\n%s", c.name, out.String())
		}
	}
	if _, err := verdict(strings.NewReader("{not json"), &bytes.Buffer{}, false); err == nil {
		t.Error("a broken stream is accepted")
	}
}
