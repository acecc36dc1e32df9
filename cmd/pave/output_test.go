package main

import (
	"strings"
	"testing"
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
