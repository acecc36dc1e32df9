package config

import (
	"strings"
	"testing"
	"time"
)

func TestStateStoreSettings(t *testing.T) {
	c, err := load(t, nil, nil, "")
	if err != nil || c.StateStore != "sqlite" || c.LeaderLease != 15*time.Second || c.ReleaseWorkers != "16" {
		t.Fatalf("defaults: %v %q %s %s", err, c.StateStore, c.LeaderLease, c.ReleaseWorkers)
	}
	if c, err := load(t, []string{"--release-workers", "32"}, nil, ""); err != nil || c.ReleaseWorkers != "32" {
		t.Fatalf("release-workers 32: %v %q", err, c.ReleaseWorkers)
	}
	c, err = load(t, nil, map[string]string{"PAVE_STATE_STORE": "postgres://pave@db:5432/pave?sslmode=verify-full", "PAVE_LEADER_LEASE": "9s"}, "")
	if err != nil || c.StateStore != "postgres://pave@db:5432/pave?sslmode=verify-full" || c.LeaderLease != 9*time.Second {
		t.Fatalf("from the environment: %v %+v", err, c)
	}
	for _, tc := range []struct {
		args []string
		want []string
		not  string
	}{
		{[]string{"--state-store", "mysql://x"}, []string{"state-store", "--state-store", "postgres://"}, ""},
		{[]string{"--state-store", "postgres://pave:hunter2@db:99999999/x"}, []string{"state-store", "not a valid PostgreSQL URL"}, "hunter2"},
		{[]string{"--leader-lease", "1s"}, []string{"leader-lease", "between 3s and 5m"}, ""},
		{[]string{"--release-workers", "0"}, []string{"release-workers", "1 to 256"}, ""},
		{[]string{"--release-workers", "many"}, []string{"release-workers", "whole number"}, ""},
	} {
		_, err := load(t, tc.args, nil, "")
		if err == nil {
			t.Fatalf("%v: accepted", tc.args)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.args, err, w)
			}
		}
		if tc.not != "" && strings.Contains(err.Error(), tc.not) {
			t.Errorf("%v: error %q shows the password", tc.args, err)
		}
	}
}
