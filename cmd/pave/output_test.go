package main

import (
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/buildinfo"
)

func TestOutputFormats(t *testing.T) {
	if (outputFormat{}).machine() {
		t.Error("the zero format (commands that build their own globals) must be text")
	}
	v := []map[string]any{
		{"kind": "Release", "metadata": map[string]any{"name": "orders-v2"}, "status": map[string]any{"phase": "promoted"}},
		{"name": "seoul"},
		{"service": "orders"},
	}
	for format, want := range map[string]string{
		"name":                        "release/orders-v2\nseoul\norders\n",
		"jsonpath={[0].status.phase}": "promoted\n",
		"jsonpath='{[*].name}'":       "seoul\n",
		"yaml":                        "- kind: Release\n  metadata:\n    name: orders-v2\n  status:\n    phase: promoted\n- name: seoul\n- service: orders\n",
		"jsonpath={.nosuch}":          "",
	} {
		f, err := parseOutput(format)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		var b strings.Builder
		if err := f.write(&b, v); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if b.String() != want {
			t.Errorf("-o %s: got %q, want %q", format, b.String(), want)
		}
	}
	for _, bad := range []string{"xml", "jsonpath=", "jsonpath={.a"} {
		if _, err := parseOutput(bad); err == nil {
			t.Errorf("-o %s accepted", bad)
		}
	}
}

// One -o jsonpath prints many times under --watch: a {range} works each
// time, on lists of any length.
func TestJSONPathPrintsAgain(t *testing.T) {
	f, err := parseOutput("jsonpath={range .items[*]}{.v}={.n} {end}")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		items []map[string]any
		want  string
	}{
		{[]map[string]any{{"v": "v1", "n": 1}}, "v1=1 \n"},
		{[]map[string]any{{"v": "v1", "n": 1}, {"v": "v2", "n": 0}}, "v1=1 v2=0 \n"},
		{[]map[string]any{{"v": "v1", "n": 1}, {"v": "v2", "n": 1}}, "v1=1 v2=1 \n"},
	} {
		var b strings.Builder
		if err := f.write(&b, map[string]any{"items": c.items}); err != nil {
			t.Fatalf("print %d items: %v", len(c.items), err)
		}
		if b.String() != c.want {
			t.Errorf("print %d items: %q, want %q", len(c.items), b.String(), c.want)
		}
	}
}

func TestVersionLine(t *testing.T) {
	for _, c := range []struct {
		info buildinfo.Info
		want string
	}{
		{buildinfo.Info{Version: "v0.0.0-20261203224616-e5e3a51d0f00", Revision: "e5e3a51d0f00aa", Time: "2026-12-03T22:46:16Z", Go: "go1.26.10"},
			"pave v0.0.0-20261203224616-e5e3a51d0f00 (e5e3a51d0f00), go1.26.10, committed 2026-12-03T22:46:16Z"},
		{buildinfo.Info{Version: "dev", Revision: "abc", Go: "go1.26.10"}, "pave dev (abc), go1.26.10"},
		{buildinfo.Info{Version: "dev", Go: "go1.26.10"}, "pave dev, go1.26.10; " + noRevision},
	} {
		if got := versionLine(c.info); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.info, got, c.want)
		}
	}
}
