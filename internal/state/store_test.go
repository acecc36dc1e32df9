package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state/pgtest"
)

// The contract suite: every test runs against both backends, SQLite in a
// temporary file and PostgreSQL in a throwaway cluster (one per test
// binary, a fresh database per test).

type backend struct {
	name string
	// open returns a new store and a function that opens the same state
	// again (after the first was closed).
	open func(t *testing.T) (Store, func() (Store, error))
}

var (
	pgOnce   sync.Once
	pgServer *pgtest.Server
	pgErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pgServer != nil {
		pgServer.Close()
	}
	os.Exit(code)
}

// postgresServer starts the package's PostgreSQL cluster on first use,
// failing (never skipping) the test when PostgreSQL is missing.
func postgresServer(t *testing.T) *pgtest.Server {
	t.Helper()
	pgOnce.Do(func() { pgServer, pgErr = pgtest.Start(pgtest.Options{}) })
	if pgErr != nil {
		t.Fatalf("PostgreSQL: %v", pgErr)
	}
	return pgServer
}

var backends = []backend{
	{"sqlite", func(t *testing.T) (Store, func() (Store, error)) {
		path := filepath.Join(t.TempDir(), "state.db")
		s, err := OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func() (Store, error) { return OpenSQLite(path) }
	}},
	{"postgres", func(t *testing.T) (Store, func() (Store, error)) {
		url := postgresServer(t).Database(t)
		s, err := OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, func() (Store, error) { return OpenPostgres(context.Background(), url) }
	}},
}

// both runs f as a subtest per backend.
func both(t *testing.T, f func(t *testing.T, s Store, reopen func() (Store, error))) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s, reopen := b.open(t)
			f(t, s, reopen)
		})
	}
}

func TestPutGetVersions(t *testing.T) { both(t, testPutGetVersions) }

func testPutGetVersions(t *testing.T, s Store, _ func() (Store, error)) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "release", "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v, want ErrNotFound", err)
	}
	o, err := s.Put(ctx, "release", "a", []byte(`{"x":1}`), 0)
	if err != nil || o.Version != 1 {
		t.Fatalf("create: %v %+v", err, o)
	}
	if _, err := s.Put(ctx, "release", "a", []byte(`{"x":2}`), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("create twice: %v, want ErrConflict", err)
	}
	if _, err := s.Put(ctx, "release", "a", []byte(`{"x":2}`), 7); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale version: %v, want ErrConflict", err)
	}
	o, err = s.Put(ctx, "release", "a", []byte(`{"x":2}`), 1)
	if err != nil || o.Version != 2 {
		t.Fatalf("update: %v %+v", err, o)
	}
	got, err := s.Get(ctx, "release", "a")
	if err != nil || string(got.Data) != `{"x":2}` || got.Version != 2 {
		t.Fatalf("get: %v %+v", err, got)
	}
	if err := s.Delete(ctx, "release", "a", 1); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete stale: %v", err)
	}
	if err := s.Delete(ctx, "release", "a", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "release", "a", Any); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestDurableAcrossReopen(t *testing.T) { both(t, testDurableAcrossReopen) }

func testDurableAcrossReopen(t *testing.T, s Store, reopen func() (Store, error)) {
	ctx := context.Background()
	type rec struct{ Step int }
	if _, err := PutJSON(ctx, s, "release", "orders", rec{Step: 3}, Any); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, Event{Kind: "release", Key: "orders", Type: "advanced", Data: []byte(`{"step":3}`)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var r rec
	if _, err := GetJSON(ctx, s2, "release", "orders", &r); err != nil || r.Step != 3 {
		t.Fatalf("after reopen: %v %+v", err, r)
	}
	evs, err := s2.Events(ctx, "release", "orders", 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Type != "advanced" {
		t.Fatalf("events after reopen: %v %+v", err, evs)
	}
}

// Optimistic concurrency: of many writers starting from the same version,
// exactly one wins each round.
func TestConcurrentWritersConflict(t *testing.T) { both(t, testConcurrentWritersConflict) }

func testConcurrentWritersConflict(t *testing.T, s Store, _ func() (Store, error)) {
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", "x", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Put(ctx, "k", "x", []byte("1"), 1); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers won, want exactly 1", wins)
	}
}

func TestListAndEventsOrder(t *testing.T) { both(t, testListAndEventsOrder) }

func testListAndEventsOrder(t *testing.T, s Store, _ func() (Store, error)) {
	ctx := context.Background()
	for _, k := range []string{"b", "a", "c"} {
		if _, err := PutJSON(ctx, s, "svc", k, map[string]string{"name": k}, Any); err != nil {
			t.Fatal(err)
		}
	}
	list, err := ListJSON[map[string]string](ctx, s, "svc")
	if err != nil || len(list) != 3 || list[0]["name"] != "a" || list[2]["name"] != "c" {
		t.Fatalf("list: %v %+v", err, list)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Append(ctx, Event{Kind: "svc", Key: "a", Type: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ := s.Events(ctx, "svc", "a", 0, 2)
	if len(evs) != 2 || evs[0].Seq >= evs[1].Seq {
		t.Fatalf("events page: %+v", evs)
	}
	rest, _ := s.Events(ctx, "svc", "a", evs[1].Seq, 0)
	if len(rest) != 3 {
		t.Fatalf("events after cursor: %d, want 3", len(rest))
	}
}

// Keys list in byte order on both backends (PostgreSQL's collation would
// otherwise sort "B" after "a").
func TestListByteOrder(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		for _, k := range []string{"a", "B", "_x", "a-1", "a.1"} {
			if _, err := s.Put(ctx, "svc", k, []byte("{}"), 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Put(ctx, "other", "A", []byte("{}"), 0); err != nil {
			t.Fatal(err)
		}
		list, err := s.List(ctx, "svc")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range list {
			keys = append(keys, o.Key)
		}
		if got := strings.Join(keys, " "); got != "B _x a a-1 a.1" {
			t.Fatalf("keys %q, want byte order", got)
		}
	})
}

// An empty key lists every event of the kind; other kinds stay out.
func TestEventsOfKind(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		for i, k := range []string{"a", "b", "a"} {
			if _, err := s.Append(ctx, Event{Kind: "release", Key: k, Type: fmt.Sprint(i), Data: []byte(`{"i":1}`)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Append(ctx, Event{Kind: "audit", Key: "a", Type: "x"}); err != nil {
			t.Fatal(err)
		}
		evs, err := s.Events(ctx, "release", "", 0, 0)
		if err != nil || len(evs) != 3 || evs[1].Key != "b" || string(evs[0].Data) != `{"i":1}` {
			t.Fatalf("events of kind: %v %+v", err, evs)
		}
		if evs[0].Time.IsZero() {
			t.Fatal("event without a time")
		}
		empty, _ := s.Events(ctx, "audit", "a", 0, 0)
		if len(empty) != 1 || empty[0].Data != nil {
			t.Fatalf("event without data: %+v", empty)
		}
	})
}

// A write under a fence commits while the lease is held with that token,
// and fails with ErrFenced, writing nothing, once another holder took it.
func TestFencedWrites(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		ls := s.(Leases)
		a, err := ls.TryLease(ctx, "leader", "a", "addr-a", time.Minute)
		if err != nil || a.Holder != "a" || a.Token != 1 || !a.Live() {
			t.Fatalf("first acquire: %v %+v", err, a)
		}
		fa := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: a.Token})
		if _, err := s.Put(fa, "release", "r", []byte("1"), 0); err != nil {
			t.Fatalf("write under a held fence: %v", err)
		}
		// b cannot take a live lease.
		b, err := ls.TryLease(ctx, "leader", "b", "addr-b", time.Minute)
		if err != nil || b.Holder != "a" || b.Note != "addr-a" {
			t.Fatalf("b took a live lease: %v %+v", err, b)
		}
		// a renews: same token.
		a2, err := ls.TryLease(ctx, "leader", "a", "addr-a", time.Minute)
		if err != nil || a2.Token != a.Token || !a2.Acquired.Equal(a.Acquired) {
			t.Fatalf("renew changed the term: %v %+v, was %+v", err, a2, a)
		}
		// a gives it up; b takes it at once, with the next token.
		if err := ls.ReleaseLease(ctx, "leader", "a", a.Token); err != nil {
			t.Fatal(err)
		}
		b, err = ls.TryLease(ctx, "leader", "b", "addr-b", time.Minute)
		if err != nil || b.Holder != "b" || b.Token != 2 {
			t.Fatalf("takeover: %v %+v", err, b)
		}
		got, err := ls.GetLease(ctx, "leader")
		if err != nil || got.Holder != "b" || !got.Live() || got.Note != "addr-b" {
			t.Fatalf("get lease: %v %+v", err, got)
		}
		// a wakes up late: none of its writes land.
		if _, err := s.Put(fa, "release", "r", []byte("2"), Any); !errors.Is(err, ErrFenced) {
			t.Fatalf("deposed put: %v, want ErrFenced", err)
		}
		if _, err := s.Append(fa, Event{Kind: "release", Key: "r", Type: "advanced"}); !errors.Is(err, ErrFenced) {
			t.Fatalf("deposed append: %v, want ErrFenced", err)
		}
		if err := s.Delete(fa, "release", "r", Any); !errors.Is(err, ErrFenced) {
			t.Fatalf("deposed delete: %v, want ErrFenced", err)
		}
		o, err := s.Get(ctx, "release", "r")
		if err != nil || string(o.Data) != "1" || o.Version != 1 {
			t.Fatalf("a deposed write landed: %v %+v", err, o)
		}
		if evs, _ := s.Events(ctx, "release", "r", 0, 0); len(evs) != 0 {
			t.Fatalf("a deposed event landed: %+v", evs)
		}
		fb := WithFence(ctx, Fence{Lease: "leader", Holder: "b", Token: b.Token})
		if _, err := s.Put(fb, "release", "r", []byte("3"), 1); err != nil {
			t.Fatalf("the new leader's write: %v", err)
		}
		// a stale token of the right holder is fenced too.
		if _, err := s.Put(WithFence(ctx, Fence{Lease: "leader", Holder: "b", Token: 1}), "release", "r", []byte("4"), Any); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale token: %v, want ErrFenced", err)
		}
		// Unfenced writes (a person's action through the API) still go
		// through optimistic concurrency only.
		if _, err := s.Put(ctx, "release", "r", []byte("5"), 2); err != nil {
			t.Fatal(err)
		}
	})
}

// A lease that expired passes on, in a new term, and a write fenced with
// it fails even before anyone else took it.
func TestLeaseExpires(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		ls := s.(Leases)
		a, err := ls.TryLease(ctx, "leader", "a", "", 200*time.Millisecond)
		if err != nil || a.Holder != "a" {
			t.Fatalf("acquire: %v %+v", err, a)
		}
		time.Sleep(400 * time.Millisecond)
		fa := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: a.Token})
		if _, err := s.Put(fa, "k", "x", []byte("1"), Any); !errors.Is(err, ErrFenced) {
			t.Fatalf("write under an expired lease: %v, want ErrFenced", err)
		}
		if l, _ := ls.GetLease(ctx, "leader"); l.Live() {
			t.Fatalf("expired lease reads live: %+v", l)
		}
		b, err := ls.TryLease(ctx, "leader", "b", "", time.Minute)
		if err != nil || b.Holder != "b" || b.Token != a.Token+1 {
			t.Fatalf("takeover of an expired lease: %v %+v", err, b)
		}
		if _, err := ls.GetLease(ctx, "nothing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing lease: %v", err)
		}
	})
}

// Many replicas campaigning at once: exactly one holds the lease.
func TestLeaseOneHolder(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		ls := s.(Leases)
		var wg sync.WaitGroup
		var mu sync.Mutex
		holders := map[string]bool{}
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				me := fmt.Sprint("r", i)
				l, err := ls.TryLease(ctx, "leader", me, "", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if l.Holder == me {
					mu.Lock()
					holders[me] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("%d replicas hold the lease: %v", len(holders), holders)
		}
	})
}

// PutAppend keeps an object and its event together: both or neither.
func TestPutAppendAtomic(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		pa := s.(PutAppender)
		o, seq, err := pa.PutAppend(ctx, "release", "r", []byte("1"), 0, Event{Kind: "release", Key: "r", Type: "step", Data: []byte(`{"step":0}`)})
		if err != nil || o.Version != 1 || seq == 0 {
			t.Fatalf("put and append: %v %+v %d", err, o, seq)
		}
		// A conflict writes neither.
		if _, _, err := pa.PutAppend(ctx, "release", "r", []byte("2"), 7, Event{Kind: "release", Key: "r", Type: "step"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale version: %v", err)
		}
		// Nor does a write under a fence that does not hold.
		ctx2 := WithFence(ctx, Fence{Lease: "leader", Holder: "x", Token: 1})
		if _, _, err := pa.PutAppend(ctx2, "release", "r", []byte("2"), 1, Event{Kind: "release", Key: "r", Type: "step"}); !errors.Is(err, ErrFenced) {
			t.Fatalf("unheld fence: %v", err)
		}
		evs, _ := s.Events(ctx, "release", "r", 0, 0)
		got, _ := s.Get(ctx, "release", "r")
		if len(evs) != 1 || got.Version != 1 || evs[0].Seq != seq || string(evs[0].Data) != `{"step":0}` {
			t.Fatalf("after refused writes: %+v %+v", evs, got)
		}
	})
}

// Versions lists a kind's keys and versions without the data, in byte
// order, and follows every write and delete.
func TestVersions(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		v, ok := s.(Versioner)
		if !ok {
			t.Fatalf("%T has no Versions", s)
		}
		for _, k := range []string{"b", "a", "B"} {
			if _, err := s.Put(ctx, "release", k, []byte(`{}`), 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Put(ctx, "release", "a", []byte(`{"x":1}`), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "other", "z", []byte(`{}`), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "release", "b", Any); err != nil {
			t.Fatal(err)
		}
		got, err := v.Versions(ctx, "release")
		if err != nil {
			t.Fatal(err)
		}
		want := []KeyVersion{{"B", 1}, {"a", 2}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("versions %v, want %v", got, want)
		}
		if n, err := v.Version(ctx, "release", "a"); err != nil || n != 2 {
			t.Fatalf("version of a: %d, %v; want 2", n, err)
		}
		if _, err := v.Version(ctx, "release", "b"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("version of a deleted key: %v, want ErrNotFound", err)
		}
	})
}
