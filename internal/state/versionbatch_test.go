package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Many workers asking versions at once while a writer writes: each answer
// is at least the version committed before it was asked (as a query of
// its own would give), a key without an object is ErrNotFound, and the
// asks share queries.
func TestVersionBatch(t *testing.T) {
	both(t, func(t *testing.T, s Store, _ func() (Store, error)) {
		ctx := context.Background()
		const keys = 20
		var committed [keys]atomic.Int64
		for i := range keys {
			o, err := s.Put(ctx, "release", fmt.Sprint("r", i), []byte(`{}`), 0)
			if err != nil {
				t.Fatal(err)
			}
			committed[i].Store(o.Version)
		}
		var b *versionBatch
		switch s := s.(type) {
		case *SQLite:
			b = &s.versions
		case *Postgres:
			b = &s.versions
		}
		var queries, asks atomic.Int64
		query := b.query
		b.query = func(ctx context.Context, kind string, keys []string) (map[string]int64, error) {
			queries.Add(1)
			return query(ctx, kind, keys)
		}
		v := s.(Versioner)
		stop := make(chan struct{})
		var writer sync.WaitGroup
		writer.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := n % keys
				o, err := s.Put(ctx, "release", fmt.Sprint("r", i), []byte(`{}`), Any)
				if err != nil {
					t.Error(err)
					return
				}
				committed[i].Store(o.Version)
			}
		})
		var readers sync.WaitGroup
		for w := range 16 {
			readers.Go(func() {
				for n := range 60 {
					i := (w*7 + n) % keys
					before := committed[i].Load()
					asks.Add(1)
					got, err := v.Version(ctx, "release", fmt.Sprint("r", i))
					if err != nil || got < before {
						t.Errorf("version of r%d: %d, %v; %d was committed before it was asked", i, got, err, before)
						return
					}
					if n%10 == 0 {
						asks.Add(1)
						if _, err := v.Version(ctx, "release", "none"); !errors.Is(err, ErrNotFound) {
							t.Errorf("version of a missing key: %v, want ErrNotFound", err)
						}
					}
				}
			})
		}
		readers.Wait()
		close(stop)
		writer.Wait()
		t.Logf("%d asks answered by %d queries", asks.Load(), queries.Load())
		if queries.Load() >= asks.Load() {
			t.Errorf("%d asks took %d queries: none were shared", asks.Load(), queries.Load())
		}
		// A caller whose context has ended gets its error, at once.
		done, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := v.Version(done, "release", "r1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("version under an ended context: %v", err)
		}
	})
}
