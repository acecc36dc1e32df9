package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Every form of a put — new (0), any version (Any), an expected version;
// with and without an event — under a fence that no longer holds writes
// neither the object nor the event, and answers ErrFenced even when the
// version would also conflict. PostgreSQL makes each of these one
// statement (putStatement), so each form is its own SQL.
func TestStaleFenceWritesNothing(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		ls, pa := s.(Leases), s.(PutAppender)
		a, err := ls.TryLease(ctx, "leader", "a", "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		fa := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: a.Token})
		if _, _, err := pa.PutAppend(fa, "release", "r", []byte("1"), 0, Event{Kind: "release", Key: "r", Type: "created"}); err != nil {
			t.Fatalf("write under a held fence: %v", err)
		}
		if err := ls.ReleaseLease(ctx, "leader", "a", a.Token); err != nil {
			t.Fatal(err)
		}
		b, err := ls.TryLease(ctx, "leader", "b", "", time.Minute)
		if err != nil || b.Holder != "b" {
			t.Fatalf("takeover: %v %+v", err, b)
		}
		for _, ifVersion := range []int64{0, Any, 1, 7} {
			for _, key := range []string{"r", "new"} {
				name := fmt.Sprintf("%s at %d", key, ifVersion)
				if _, err := s.Put(fa, "release", key, []byte("x"), ifVersion); !errors.Is(err, ErrFenced) {
					t.Errorf("put %s: %v, want ErrFenced", name, err)
				}
				ev := Event{Kind: "release", Key: key, Type: "step"}
				if _, seq, err := pa.PutAppend(fa, "release", key, []byte("x"), ifVersion, ev); !errors.Is(err, ErrFenced) || seq != 0 {
					t.Errorf("put and append %s: %v (seq %d), want ErrFenced", name, err, seq)
				}
			}
		}
		o, err := s.Get(ctx, "release", "r")
		if err != nil || string(o.Data) != "1" || o.Version != 1 {
			t.Fatalf("a deposed write landed: %v %+v", err, o)
		}
		if _, err := s.Get(ctx, "release", "new"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a deposed create landed: %v", err)
		}
		if evs, _ := s.Events(ctx, "release", "", 0, 0); len(evs) != 1 || evs[0].Type != "created" {
			t.Fatalf("a deposed event landed: %+v", evs)
		}
		// The holder's own writes of every form go through, with their
		// events in order.
		fb := WithFence(ctx, Fence{Lease: "leader", Holder: "b", Token: b.Token})
		steps := []struct {
			key       string
			ifVersion int64
			want      int64
		}{{"r", 1, 2}, {"r", Any, 3}, {"new", 0, 1}, {"fresh", Any, 1}}
		var last int64
		for _, st := range steps {
			o, seq, err := pa.PutAppend(fb, "release", st.key, []byte("y"), st.ifVersion, Event{Kind: "release", Key: st.key, Type: "step"})
			if err != nil || o.Version != st.want || seq <= last {
				t.Fatalf("holder's put of %s at %d: %v, version %d (want %d), seq %d after %d", st.key, st.ifVersion, err, o.Version, st.want, seq, last)
			}
			last = seq
		}
		// A conflict under a held fence is a conflict, naming the stored
		// version, and writes no event.
		if _, _, err := pa.PutAppend(fb, "release", "r", []byte("z"), 1, Event{Kind: "release", Key: "r", Type: "lost"}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "at version 3, expected 1") {
			t.Fatalf("conflict under a held fence: %v", err)
		}
		if _, err := s.Put(fb, "release", "new", []byte("z"), 0); !errors.Is(err, ErrConflict) {
			t.Fatalf("create of an existing key: %v", err)
		}
		if evs, _ := s.Events(ctx, "release", "", 0, 0); len(evs) != 5 {
			t.Fatalf("events after the holder's writes: %d, want 5: %+v", len(evs), evs)
		}
	})
}

// A put that starts while a takeover is in flight (the lease row locked by
// the new holder's uncommitted update) waits for it, then finds the new
// token and writes nothing: PostgreSQL re-checks the locked row's newest
// version inside the one statement, as it did between the statements of
// the explicit transaction before.
func TestPostgresPutWaitsForTakeover(t *testing.T) {
	ctx := context.Background()
	s, err := OpenPostgres(ctx, postgresServer(t).Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.TryLease(ctx, "leader", "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	fa := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: a.Token})
	if _, err := s.Put(fa, "release", "r", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE leases SET holder='b', token=token+1 WHERE name='leader'`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.PutAppend(fa, "release", "r", []byte("2"), 1, Event{Kind: "release", Key: "r", Type: "step"})
		done <- err
	}()
	// The put must be waiting on the lease row, not finished.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type='Lock' AND query LIKE 'WITH fence%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the put finished while the takeover held the lease row: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the put never waited on the lease row")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("put after the takeover committed: %v, want ErrFenced", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the put did not finish after the takeover committed")
	}
	o, err := s.Get(ctx, "release", "r")
	if err != nil || string(o.Data) != "1" || o.Version != 1 {
		t.Fatalf("a deposed write landed: %v %+v", err, o)
	}
	if evs, _ := s.Events(ctx, "release", "r", 0, 0); len(evs) != 0 {
		t.Fatalf("a deposed event landed: %+v", evs)
	}
}
