package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pave-platform/pave/internal/state/pgtest"
)

// Concurrent writers share commits (group commit, on both backends), yet
// each keeps its own outcome: a conflict, a fenced write and a given-up
// write fail alone, every other write lands once, and all of it is there
// after reopening.
func TestGroupCommitOutcomes(t *testing.T) {
	both(t, func(t *testing.T, s Store, reopen func() (Store, error)) {
		ctx := context.Background()
		pa := s.(PutAppender)
		if _, err := s.Put(ctx, "k", "shared", []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
		l, err := s.(Leases).TryLease(ctx, "leader", "a", "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		deposed := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: l.Token + 1})
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		before := s.(WriteCounter).WriteStats()

		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range 64 {
			wg.Go(func() { // its own key, with an event: lands
				if _, _, err := pa.PutAppend(ctx, "k", fmt.Sprint("own-", i), []byte(fmt.Sprint(i)), 0, Event{Kind: "k", Key: fmt.Sprint("own-", i), Type: "created"}); err != nil {
					t.Errorf("own key %d: %v", i, err)
				}
			})
			wg.Go(func() { // one key, one version: exactly one wins
				_, err := s.Put(ctx, "k", "shared", []byte(fmt.Sprint(i)), 1)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					t.Errorf("shared key: %v", err)
				}
			})
			if i%8 == 0 {
				wg.Go(func() {
					if _, err := s.Put(deposed, "k", fmt.Sprint("fenced-", i), []byte("x"), Any); !errors.Is(err, ErrFenced) {
						t.Errorf("a deposed write: %v, want ErrFenced", err)
					}
					if _, err := s.Put(cancelled, "k", fmt.Sprint("cancelled-", i), []byte("x"), Any); !errors.Is(err, context.Canceled) {
						t.Errorf("a cancelled write: %v, want context.Canceled", err)
					}
				})
			}
		}
		wg.Wait()
		if wins != 1 || conflicts != 63 {
			t.Errorf("shared key: %d won, %d conflicts; want 1 and 63", wins, conflicts)
		}
		after := s.(WriteCounter).WriteStats()
		writes, commits := after.Writes-before.Writes, after.Commits-before.Commits
		// 64 creates, 64 puts of the shared key and 8 deposed puts ran;
		// the cancelled ones never did. SQLite commits nothing when
		// every write of a group failed, so only the 65 that wrote are
		// sure to be counted.
		if writes < 65 || writes > 136 {
			t.Errorf("the commits carried %d writes, want 65 to 136", writes)
		}
		if commits >= writes {
			t.Errorf("%d writes took %d commits: no group commit", writes, commits)
		}
		t.Logf("%d writes in %d commits", writes, commits)
		s.Close()
		if _, err := s.Put(ctx, "k", "late", []byte("x"), Any); err == nil {
			t.Error("a write after Close succeeded")
		}

		s, err = reopen()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		objs, err := s.List(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		own := 0
		for _, o := range objs {
			switch {
			case strings.HasPrefix(o.Key, "own-"):
				own++
			case o.Key == "shared":
				if o.Version != 2 {
					t.Errorf("shared at version %d, want 2", o.Version)
				}
			default:
				t.Errorf("%s landed; it should not have", o.Key)
			}
		}
		evs, err := s.Events(ctx, "k", "", 0, 1000)
		if own != 64 || err != nil || len(evs) != 64 {
			t.Errorf("%d own keys and %d events (%v), want 64 each", own, len(evs), err)
		}
	})
}

// lockLease locks the lease row as a takeover in progress does, so every
// fenced put waits on it until the returned transaction ends.
func lockLease(t *testing.T, s *Postgres) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT 1 FROM leases WHERE name='leader' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitLocked waits until n puts wait on the lease row.
func waitLocked(t *testing.T, s *Postgres, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d puts waiting on the lease row", n), func() bool {
		var waiting int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		    WHERE wait_event_type='Lock' AND query LIKE 'WITH fence%' AND datname = current_database()`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		return waiting == n
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *pgGroup) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting)
}

// PostgreSQL's puts that arrive while groups are in flight leave together,
// one commit for the lot, each with its own outcome (written, conflict,
// fenced out); a group the server refuses (one statement in error) is
// sent again put by put, so only the put at fault fails.
func TestPostgresGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, err := OpenPostgres(ctx, postgresServer(t).Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.TryLease(ctx, "leader", "a", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fenced := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: l.Token})
	deposed := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: l.Token + 1})
	if _, err := s.Put(ctx, "k", "shared", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := map[string]error{}
	put := func(ctx context.Context, label, key string, ifVersion int64) {
		wg.Go(func() {
			_, _, err := s.PutAppend(ctx, "k", key, []byte(label), ifVersion, Event{Kind: "k", Key: key, Type: label})
			mu.Lock()
			errs[label] = err
			mu.Unlock()
		})
	}
	// fill holds both groups in flight on the lease row, queues puts
	// behind them, and lets everything go once they are all queued.
	fill := func(queue func() int) {
		tx := lockLease(t, s)
		put(fenced, "first", "first", Any)
		waitLocked(t, s, 1)
		put(fenced, "second", "second", Any)
		waitLocked(t, s, 2)
		n := queue()
		waitFor(t, fmt.Sprintf("%d puts queued", n), func() bool { return s.group.queued() == n })
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}

	before := s.WriteStats()
	fill(func() int {
		for i := range 20 {
			put(fenced, fmt.Sprint("own-", i), fmt.Sprint("own-", i), 0)
		}
		for i := range 5 { // one key, one version: one wins
			put(ctx, fmt.Sprint("shared-", i), "shared", 1)
		}
		for i := range 3 {
			put(deposed, fmt.Sprint("deposed-", i), fmt.Sprint("deposed-", i), Any)
		}
		put(ctx, "unfenced", "unfenced", Any)
		put(fenced, "own-0 again", "own-0", 0) // a second create of a key: one of the two wins
		return 30
	})
	after := s.WriteStats()
	wins, created := 0, 0
	for label, err := range errs {
		switch {
		case label == "own-0" || label == "own-0 again":
			if err == nil {
				created++
			} else if !errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v, want nil or ErrConflict", label, err)
			}
		case strings.HasPrefix(label, "shared-"):
			if err == nil {
				wins++
			} else if !errors.Is(err, ErrConflict) {
				t.Errorf("%s: %v, want nil or ErrConflict", label, err)
			}
		case strings.HasPrefix(label, "deposed-"):
			if !errors.Is(err, ErrFenced) {
				t.Errorf("%s: %v, want ErrFenced", label, err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", label, err)
			}
		}
	}
	if wins != 1 || created != 1 {
		t.Errorf("%d of the puts of one version won and %d of the creates of one key; want 1 each", wins, created)
	}
	if w, c := after.Writes-before.Writes, after.Commits-before.Commits; w != 32 || c > 4 {
		t.Errorf("32 puts took %d commits carrying %d writes; want at most 4 (two alone, the rest in up to two groups) carrying 32", c, w)
	}
	if o, err := s.Get(ctx, "k", "shared"); err != nil || o.Version != 2 {
		t.Errorf("shared: %+v %v, want version 2", o, err)
	}
	for _, key := range []string{"deposed-0", "deposed-1", "deposed-2"} {
		if _, err := s.Get(ctx, "k", key); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deposed put landed: %s: %v", key, err)
		}
	}
	if o, err := s.Get(ctx, "k", "own-0"); err != nil || o.Version != 1 {
		t.Errorf("own-0: %+v %v: the failed create changed it", o, err)
	}
	evs, err := s.Events(ctx, "k", "", 0, 1000)
	if err != nil || len(evs) != 24 { // first, second, 20 own, one shared, unfenced
		t.Errorf("%d events (%v), want 24: one per put written", len(evs), err)
	}

	// A statement the server refuses (text cannot hold a NUL byte) fails
	// its group as a whole; each put is sent again alone.
	clear(errs)
	fill(func() int {
		for i := range 9 {
			put(fenced, fmt.Sprint("again-", i), fmt.Sprint("again-", i), 0)
		}
		put(fenced, "bad", "bad\x00key", 0)
		return 10
	})
	for label, err := range errs {
		if (err != nil) != (label == "bad") {
			t.Errorf("%s: %v", label, err)
		}
	}
	if err := errs["bad"]; errors.Is(err, ErrConflict) || errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), "put k/bad") {
		t.Errorf("the bad put: %v, want the server's error naming the put", err)
	}
	objs, err := s.List(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 24+9 { // shared, first, second, 20 own, unfenced; 9 again
		t.Errorf("%d objects, want 33", len(objs))
	}
}

// Nothing acknowledged is lost when PostgreSQL is killed (kill -9) while
// groups are in flight: every put that returned before the kill is there
// after the restart, with its event. Puts in flight at the kill fail,
// and are not acknowledged.
func TestPostgresGroupCommitKill9(t *testing.T) {
	pg := pgtest.New(t)
	ctx := context.Background()
	s, err := OpenPostgres(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("g%02d-%06d", g, i)
				if _, _, err := s.PutAppend(ctx, "k", k, []byte("x"), 0, Event{Kind: "k", Key: k, Type: "created"}); err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[k] = true
				mu.Unlock()
			}
		})
	}
	waitFor(t, "500 acknowledged puts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 500
	})
	pg.Kill()
	wg.Wait()
	st := s.WriteStats()
	s.Close()
	if st.Commits >= st.Writes {
		t.Errorf("%d writes took %d commits: no group commit", st.Writes, st.Commits)
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenPostgres(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, err := s.List(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
	}
	evs, err := s.Events(ctx, "k", "", 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	for _, e := range evs {
		logged[e.Key] = true
	}
	for k := range acked {
		if !have[k] || !logged[k] {
			t.Errorf("%s was acknowledged but after kill -9 its object (%v) or event (%v) is missing", k, have[k], logged[k])
		}
	}
	t.Logf("%d puts acknowledged before the kill (%d writes in %d commits); %d objects after the restart",
		len(acked), st.Writes, st.Commits, len(have))
}
