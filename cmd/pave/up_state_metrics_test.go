package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pave-platform/pave/internal/state"
)

// The state store's group commits are on Pave's own metrics: concurrent
// writes, fewer commits, and the writes per commit between the two.
func TestStateMetricsCountGroupCommits(t *testing.T) {
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	registerStateMetrics(reg, st)
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			if _, err := st.Put(context.Background(), "k", fmt.Sprint(i), []byte("x"), 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			got[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	writes, commits, per := got["pave_state_writes_total"], got["pave_state_commits_total"], got["pave_state_writes_per_commit"]
	if writes != 64 || commits < 1 || commits >= 64 || per != writes/commits {
		t.Errorf("pave_state_writes_total %v, pave_state_commits_total %v, pave_state_writes_per_commit %v; want 64 writes in fewer commits", writes, commits, per)
	}
}
