package state

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
)

func open(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestPutGetVersions(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
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

func TestDurableAcrossReopen(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	type rec struct{ Step int }
	if _, err := PutJSON(ctx, s, "release", "orders", rec{Step: 3}, Any); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, Event{Kind: "release", Key: "orders", Type: "advanced", Data: []byte(`{"step":3}`)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := OpenSQLite(path)
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
func TestConcurrentWritersConflict(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
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

func TestListAndEventsOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
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
