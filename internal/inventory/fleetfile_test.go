package inventory

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFleetFile(t *testing.T) {
	f, err := Parse([]byte(`# the platform's services
services:
  - path: ./orders
  - {git: https://git.example.com/pay/ledger.git, ref: main}
  - git: git@github.com:pay/refunds.git
    name: refunds-api
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Services) != 3 {
		t.Fatalf("services = %+v", f.Services)
	}
	want := []struct{ label, path, git, ref string }{
		{"orders", "./orders", "", ""},
		{"ledger", "", "https://git.example.com/pay/ledger.git", "main"},
		{"refunds-api", "", "git@github.com:pay/refunds.git", ""},
	}
	for i, w := range want {
		e := f.Services[i]
		if e.Label() != w.label || e.Path != w.path || e.Git != w.git || e.Ref != w.ref {
			t.Errorf("services[%d] = %+v (label %q), want %+v", i, e, e.Label(), w)
		}
	}
	if f.Services[1].Line != 4 {
		t.Errorf("line of services[1] = %d, want 4", f.Services[1].Line)
	}
}

func TestParseFleetFileErrorsNameLineAndField(t *testing.T) {
	for _, c := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"empty", "", 0, "empty fleet file"},
		{"not a mapping", "- path: x\n", 1, "want a mapping"},
		{"unknown top key", "services: []\nservice: []\n", 2, `service: unknown field`},
		{"no services", "# nothing\n{}\n", 2, "services: missing"},
		{"services not a list", "services: ./orders\n", 1, "want a list"},
		{"unknown entry key", "services:\n  - path: ./a\n  - pth: ./b\n", 3, "services[1].pth: unknown field; known fields here: name, path, git, ref"},
		{"neither", "services:\n  - ref: main\n", 2, "want one of path"},
		{"both", "services:\n  - {path: ./a, git: https://h/a}\n", 2, "both path and git"},
		{"ref without git", "services:\n  - {path: ./a, ref: main}\n", 2, "ref goes with git"},
		{"bad url", "services:\n  - git: ftp://h/a\n", 2, `scheme "ftp"`},
		{"option-like url", "services:\n  - git: --upload-pack=evil\n", 2, "cannot start with '-'"},
		{"bad ref", "services:\n  - {git: https://h/a, ref: 'a b'}\n", 2, "not a usable Git"},
		{"list value", "services:\n  - path: [a]\n", 2, "want a string, got a list"},
		{"duplicate", "services:\n  - path: ./a\n  - path: ./a\n", 3, "same repository as line 2"},
		{"duplicate name", "services:\n  - path: ./x/a\n  - path: ./y/a\n", 3, `"a" is also the name`},
		{"twice", "services:\n  - {path: ./a, path: ./b}\n", 0, "path"},
		{"not yaml", "services: [\n", 0, "not YAML"},
		{"two documents", "services: []\n---\nservices: []\n", 2, "second YAML document"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse: %v, want a *ParseError", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if c.line > 0 && pe.Line != c.line {
				t.Errorf("error %q: line %d, want %d", err, pe.Line, c.line)
			}
		})
	}
}

// FuzzParse: the parser never panics, and what it accepts is well formed.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"services:\n  - path: ./orders\n  - {git: https://h/a.git, ref: main}\n",
		"services: []\n", "services:\n  - name: a\n    git: git@h:a\n", "- a\n", "services: {a: 1}\n", "&a [*a]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		names := map[string]bool{}
		for _, e := range file.Services {
			if (e.Path == "") == (e.Git == "") {
				t.Fatalf("accepted entry with path %q and git %q", e.Path, e.Git)
			}
			if e.Label() == "" || names[e.Label()] {
				t.Fatalf("accepted empty or duplicate name %q", e.Label())
			}
			names[e.Label()] = true
		}
	})
}
