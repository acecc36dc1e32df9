package alert

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify"
)

// TestOutboxRetention: a notification not delivered within the retention
// expires (dropped from disk, listed as expired), a refused one older than
// it leaves the disk, younger ones stay; across a reopen as well.
func TestOutboxRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	log := slog.New(slog.DiscardHandler)
	o, err := openOutbox(dir, map[string]notify.Integration{}, time.Hour, log)
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, state string, age time.Duration) {
		d := &Delivery{ID: id, Receiver: "hook", Integration: "webhook", Key: "hook/webhook/0", Created: now.Add(-age), State: state,
			Attempts: 3, LastAttempt: now.Add(-age), LastError: "connection refused"}
		if err := o.write(d); err != nil {
			t.Fatal(err)
		}
	}
	put("a-old-pending", "pending", 2*time.Hour)
	put("b-new-pending", "pending", 10*time.Minute)
	put("c-old-failed", "failed", 3*time.Hour)
	put("d-new-failed", "failed", 5*time.Minute)

	o, err = openOutbox(dir, map[string]notify.Integration{}, time.Hour, log)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, d := range o.deliveries() {
		states[d.ID] = d.State
	}
	want := map[string]string{"a-old-pending": "expired", "b-new-pending": "pending", "d-new-failed": "failed"}
	if len(states) != len(want) {
		t.Fatalf("listed %v, want %v", states, want)
	}
	for id, s := range want {
		if states[id] != s {
			t.Errorf("%s is %q, want %q (all: %v)", id, states[id], s, states)
		}
	}
	if got := files(t, dir); len(got) != 2 || got[0] != "b-new-pending.json" || got[1] != "d-new-failed.json" {
		t.Fatalf("files left %v, want the young pending and the young refused one", got)
	}

	// Time passes: the rest expires in the running outbox.
	o.expire(now.Add(2 * time.Hour))
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("files left after the retention: %v", got)
	}
	for _, d := range o.deliveries() {
		if d.ID == "b-new-pending" && d.State != "expired" {
			t.Fatalf("pending delivery past the retention is %s", d.State)
		}
		if d.ID == "d-new-failed" {
			t.Fatalf("refused delivery past the retention still listed")
		}
	}
}

// TestOutboxKeepsABoundedListOfRefusedNotifications: refused
// notifications beyond the listed ones leave the disk.
func TestOutboxKeepsABoundedListOfRefusedNotifications(t *testing.T) {
	dir := t.TempDir()
	o, err := openOutbox(dir, map[string]notify.Integration{}, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recentDeliveries + 50 {
		d := &Delivery{ID: fmt.Sprintf("%04d", i), State: "failed", Created: time.Now(), LastAttempt: time.Now()}
		if err := o.write(d); err != nil {
			t.Fatal(err)
		}
		o.mu.Lock()
		o.remember(d)
		o.mu.Unlock()
	}
	if n := len(files(t, dir)); n != recentDeliveries {
		t.Fatalf("%d refused notifications on disk, want at most %d", n, recentDeliveries)
	}
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if filepath.Ext(e.Name()) == ".json" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
