package alert

import (
	"strings"
	"testing"
)

// FuzzParseMatchers: the silence-matcher parser never panics, and what it
// accepts selects something specific (never every alert) and holds only
// valid label names.
func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{"service=orders", `service=orders,severity=~"page|ticket"`, `{service="orders"}`, "cluster!=east", "a!~b.*",
		"service=~.*", "=x", `{a="`, "a=\"\\", "a=b,,c=d", "é=ü", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMatchers(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		specific := false
		for _, m := range ms {
			if m.Name == "" {
				t.Fatalf("%q: a matcher without a label name", s)
			}
			if !m.Matches("") {
				specific = true
			}
		}
		if !specific {
			t.Fatalf("%q accepted though it matches every alert", s)
		}
		if len(toPB(ms)) != len(ms) {
			t.Fatal("conversion lost matchers")
		}
	})
}

// FuzzRuleFile: loading a rule file never panics; a refusal names the
// file; an accepted file's groups all have names and rules with exprs.
func FuzzRuleFile(f *testing.F) {
	f.Add([]byte(ordersRules))
	f.Add([]byte(inhibitionRules))
	f.Add(watchdogRules)
	f.Add([]byte("groups:\n- name: a\n  rules:\n  - alert: X\n    expr: sum(rate(x[5m]) by\n"))
	f.Add([]byte("groups: [{name: a, rules: [{record: 'a:b', expr: 'up', labels: {x: '{{ $value }}'}}]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newRuleSources(nil)
		rgs, err := s.parse("fuzz.yml", b)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yml") {
				t.Fatalf("refusal does not name the file: %v", err)
			}
			return
		}
		for _, g := range rgs.Groups {
			if g.Name == "" {
				t.Fatal("accepted a group without a name")
			}
			for _, r := range g.Rules {
				if r.Expr == "" {
					t.Fatal("accepted a rule without an expression")
				}
				if _, err := s.Parse(r.Expr); err != nil {
					t.Fatalf("accepted an expression that does not parse: %q: %v", r.Expr, err)
				}
			}
		}
	})
}
