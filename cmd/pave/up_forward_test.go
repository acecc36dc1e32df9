package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The routes a standby forwards are the leader-only components' and no
// others: a prefix must end at a path segment.
func TestLeaderOnlyRoutes(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/v1/rules":                     true,
		"/api/v1/alerts":                    true,
		"/api/v1/alerting/silences":         true,
		"/api/v1/alerting/silences/abc":     true,
		"/api/v1/runnerpools":               true,
		"/api/v1/runnerpools/linux/suggest": true,
		"/hooks/github":                     true,
		"/api/v1/alertsx":                   false,
		"/api/v1/runnerpoolsx":              false,
		"/api/v1/releases":                  false,
		"/api/v1/control-plane":             false,
		"/api/v1/tokens":                    false,
		"/ui/alerts.html":                   false,
		"/api/v1/alerting":                  false,
	} {
		if got := leaderOnly(path); got != want {
			t.Errorf("leaderOnly(%q) = %v, want %v", path, got, want)
		}
	}
}

// A term's metrics leave the registry with the term, so the next term's
// engine registers the same collectors again without a panic.
func TestTermRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	for term := range 3 {
		tr := &termRegisterer{reg: reg}
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pave_test_total"})
		tr.MustRegister(c)
		if err := tr.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "pave_test_total"})); err == nil {
			t.Fatalf("term %d: a duplicate registered", term)
		}
		mfs, _ := reg.Gather()
		if len(mfs) != 1 {
			t.Fatalf("term %d: %d metric families, want 1", term, len(mfs))
		}
		tr.unregister()
		if mfs, _ := reg.Gather(); len(mfs) != 0 {
			t.Fatalf("term %d: %d metric families left after the term", term, len(mfs))
		}
	}
}
