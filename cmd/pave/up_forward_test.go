package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
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

// A standby applies its own front door before forwarding: the leader sees
// its own Host on the forwarded request, so a rebinding name must be
// refused here (421), while a request under a name of this server goes on
// to the forwarding, which answers 503 with no leader to reach.
func TestStandbyRefusesAForeignHostBeforeForwarding(t *testing.T) {
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	el := leader.New(st, leader.Options{TTL: 3 * time.Second}) // never started: a standby
	srv := server.New(server.Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	h := forwardToLeader(srv, el, config.Default(), slog.New(slog.DiscardHandler))
	for host, want := range map[string]int{"evil.example:7070": http.StatusMisdirectedRequest, "127.0.0.1:7070": http.StatusServiceUnavailable} {
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/api/v1/alerts", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: status %d, want %d: %s", host, rec.Code, want, rec.Body)
		}
	}
}
