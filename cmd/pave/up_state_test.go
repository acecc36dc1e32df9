package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state/pgtest"
)

func controlPlane(t *testing.T, api string) (controlPlaneStatus, error) {
	t.Helper()
	out, err := pave(t, []string{"PAVE_SERVER=" + api}, "status", "-o", "json")
	if err != nil {
		return controlPlaneStatus{}, err
	}
	var st controlPlaneStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("pave status -o json: %v\n%s", err, out)
	}
	return st, nil
}

// Two `pave up` replicas on one PostgreSQL: both serve the API and name
// the same leader, exactly one leads; kill -9 of the leader, and the
// standby leads within the leader-lease.
func TestUpReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	pg := pgtest.New(t)
	url := pg.Database(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startUp(t, dirA, "--state-store", url)
	b := startUp(t, dirB, "--state-store", url)
	var sa, sb controlPlaneStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		var errA, errB error
		sa, errA = controlPlane(t, a.api)
		sb, errB = controlPlane(t, b.api)
		if errA == nil && errB == nil && sa.Leader != nil && sb.Leader != nil && sa.Leader.Live && sa.Leader.ID == sb.Leader.ID &&
			sa.Replica.Leading != sb.Replica.Leading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single leader named by both replicas: %+v (%v) / %+v (%v)", sa, errA, sb, errB)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Each replica's embedded cluster keeps its instance records on its
	// own machine, never in the store the replicas share.
	for _, dir := range []string{dirA, dirB} {
		if _, err := os.Stat(filepath.Join(dir, "clusters", "local", "state.db")); err != nil {
			t.Errorf("embedded cluster's own store: %v", err)
		}
	}
	if !strings.HasPrefix(sa.StateStore, "postgres://pave@") {
		t.Errorf("state store shown as %q", sa.StateStore)
	}
	leader, standby, standbyStatus := a, b, sb
	if sb.Replica.Leading {
		leader, standby, standbyStatus = b, a, sa
	}
	if want := strings.TrimPrefix(leader.api, "http://"); sa.Leader.Address != want {
		t.Errorf("leader's address %q, want %q", sa.Leader.Address, want)
	}
	out, err := pave(t, []string{"PAVE_SERVER=" + standby.api}, "status")
	if err != nil || !strings.Contains(out, "(standby)") || !strings.Contains(out, "leader       "+sa.Leader.ID+" at "+sa.Leader.Address) {
		t.Fatalf("pave status on the standby: %v\n%s", err, out)
	}

	_ = leader.cmd.Process.Kill() // kill -9
	killed := time.Now()
	<-leader.done
	for {
		st, err := controlPlane(t, standby.api)
		if err == nil && st.Replica.Leading && st.Leader != nil && st.Leader.ID == standbyStatus.Replica.ID && st.Leader.Live {
			if st.Leader.Token <= sa.Leader.Token {
				t.Fatalf("the new term's token %d is not above the old %d", st.Leader.Token, sa.Leader.Token)
			}
			break
		}
		// The lease (15 s) bounds the takeover; one more second for the
		// polling through the CLI on a loaded machine.
		if time.Since(killed) > 16*time.Second {
			t.Fatalf("the standby did not take over within the lease: %+v %v\n%s", st, err, standby.out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("takeover after kill -9 in %s", time.Since(killed).Round(time.Millisecond))
}

// An unreachable or read-only PostgreSQL stops pave up at once with the
// setting named, never its password.
func TestUpStateStoreUnavailable(t *testing.T) {
	t.Parallel()
	pg := pgtest.New(t)
	for name, c := range map[string]struct{ url, want string }{
		"unreachable": {"postgres://pave:hunter2@127.0.0.1:1/pave?connect_timeout=2", "127.0.0.1:1"},
		"read-only":   {pg.Database(t) + "&options=-c%20default_transaction_read_only%3Don", "is read-only"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := pave(t, nil, "up", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--otlp-addr", freeAddr(t), "--gateway-addr", freeAddr(t), "--state-store", c.url)
			if err == nil || !strings.Contains(out, "setting state-store") || !strings.Contains(out, c.want) {
				t.Fatalf("want a failure naming the setting and %q, got %v:\n%s", c.want, err, out)
			}
			if strings.Contains(out, "hunter2") || strings.Contains(out, "pave is up") {
				t.Fatalf("the password shown, or pave up served:\n%s", out)
			}
		})
	}
}
