package leader

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/state/pgtest"
)

// replica is one elector and what its lead function saw.
type replica struct {
	e      *Elector
	terms  atomic.Int32
	cancel context.CancelFunc
	done   chan struct{}
	// wrote counts the leader's fenced writes that landed; fencedErrs
	// those the store refused.
	wrote, fencedErrs atomic.Int32
}

// start runs an elector whose leader writes under its fence every 50 ms.
func start(t *testing.T, store state.Store, name string, ttl time.Duration) *replica {
	r := &replica{done: make(chan struct{})}
	r.e = New(store.(state.Leases), Options{Identity: name, Note: name + ".example:8080", TTL: ttl})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.e.Run(ctx, func(ctx context.Context) {
			r.terms.Add(1)
			for ctx.Err() == nil {
				_, err := store.Put(ctx, "tick", name, []byte("1"), state.Any)
				switch {
				case err == nil:
					r.wrote.Add(1)
				case errors.Is(err, state.ErrFenced):
					r.fencedErrs.Add(1)
				}
				sleep(ctx, 50*time.Millisecond)
			}
		})
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func leading(rs ...*replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if _, ok := r.e.Leading(); ok {
			out = append(out, r)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, timeout)
	return 0
}

var (
	pgOnce sync.Once
	pg     *pgtest.Server
	pgErr  error
)

func postgres(t *testing.T) (*pgtest.Server, state.Store) {
	t.Helper()
	pgOnce.Do(func() { pg, pgErr = pgtest.Start(pgtest.Options{}) })
	if pgErr != nil {
		t.Fatalf("PostgreSQL: %v", pgErr)
	}
	s, err := state.OpenPostgres(context.Background(), pg.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return pg, s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg != nil {
		pg.Close()
	}
	os.Exit(code)
}

// Two replicas: exactly one leads; when it shuts down, it hands over at
// once (it gives the lease up) and the other leads with the next token.
func TestOneLeaderAndHandover(t *testing.T) {
	_, store := postgres(t)
	a := start(t, store, "a", 3*time.Second)
	b := start(t, store, "b", 3*time.Second)
	waitFor(t, "a leader", 10*time.Second, func() bool { return len(leading(a, b)) == 1 })
	time.Sleep(time.Second)
	if n := len(leading(a, b)); n != 1 {
		t.Fatalf("%d leaders", n)
	}
	first := leading(a, b)[0]
	other := map[*replica]*replica{a: b, b: a}[first]
	f1, _ := first.e.Leading()
	l, err := other.e.Lease(context.Background())
	if err != nil || l.Holder != first.e.ID() || l.Note != first.e.ID()+".example:8080" || !l.Live() {
		t.Fatalf("the standby reads the lease as %+v (%v), want held by %s", l, err, first.e.ID())
	}
	first.stop()
	took := waitFor(t, "the standby leads", 5*time.Second, func() bool { _, ok := other.e.Leading(); return ok })
	if took > time.Second {
		t.Errorf("a handover on shutdown took %s: the lease should be given up", took)
	}
	f2, _ := other.e.Leading()
	if f2.Token != f1.Token+1 {
		t.Fatalf("tokens %d then %d, want consecutive", f1.Token, f2.Token)
	}
	if first.fencedErrs.Load() != 0 {
		t.Fatalf("the leader's writes were fenced while it led: %d", first.fencedErrs.Load())
	}
}

// Losing PostgreSQL: the leader steps down (its loops stop) before its
// lease could pass on; when the database returns a leader is elected
// again and its loops resume.
func TestPostgresLostAndBack(t *testing.T) {
	srv, store := postgres(t)
	ttl := 3 * time.Second
	a := start(t, store, "a", ttl)
	waitFor(t, "a leads", 10*time.Second, func() bool { _, ok := a.e.Leading(); return ok })
	srv.Stop()
	stepped := waitFor(t, "a steps down", 4*ttl, func() bool { _, ok := a.e.Leading(); return !ok })
	if stepped > ttl+2*time.Second {
		t.Errorf("stepped down after %s, lease %s", stepped, ttl)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a leads again", 30*time.Second, func() bool { _, ok := a.e.Leading(); return ok })
	// Leading turns true just before the new term's function starts.
	waitFor(t, "a new term after the database returned", 5*time.Second, func() bool { return a.terms.Load() >= 2 })
	before := a.wrote.Load()
	waitFor(t, "the leader writes again", 10*time.Second, func() bool { return a.wrote.Load() > before+3 })
}

// A leader frozen past its lease (simulated: its renewals hang) is
// replaced within the lease, and its late writes are refused.
func TestFrozenLeaderIsFenced(t *testing.T) {
	_, store := postgres(t)
	ttl := 3 * time.Second
	frozen := &freezable{Leases: store.(state.Leases), wake: make(chan struct{})}
	a := &replica{done: make(chan struct{})}
	a.e = New(frozen, Options{Identity: "a", TTL: ttl})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	late := make(chan error, 1)
	go func() {
		defer close(a.done)
		a.e.Run(ctx, func(lctx context.Context) {
			<-frozen.wake // the leader's loop is paused...
			// ...and wakes up after the standby took over.
			// (A write already in flight: its context is not cancelled.)
			_, err := store.Put(context.WithoutCancel(lctx), "release", "r", []byte("late"), state.Any)
			late <- err
			<-lctx.Done()
		})
	}()
	defer a.stop()
	waitFor(t, "a leads", 10*time.Second, func() bool { _, ok := a.e.Leading(); return ok })
	frozen.freeze()
	b := start(t, store, "b", ttl)
	took := waitFor(t, "b takes over", 3*ttl, func() bool { _, ok := b.e.Leading(); return ok })
	if took > ttl+time.Second {
		t.Errorf("takeover in %s, lease %s", took, ttl)
	}
	close(frozen.wake)
	if err := <-late; !errors.Is(err, state.ErrFenced) {
		t.Fatalf("the deposed leader's late write: %v, want ErrFenced", err)
	}
	if _, err := store.Get(context.Background(), "release", "r"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("the late write landed: %v", err)
	}
}

// freezable hangs lease calls once frozen, as a paused process would.
type freezable struct {
	state.Leases
	frozen atomic.Bool
	wake   chan struct{}
}

func (f *freezable) freeze() { f.frozen.Store(true) }

func (f *freezable) TryLease(ctx context.Context, name, holder, note string, ttl time.Duration) (state.Lease, error) {
	if f.frozen.Load() {
		<-ctx.Done()
		return state.Lease{}, ctx.Err()
	}
	return f.Leases.TryLease(ctx, name, holder, note, ttl)
}

// On SQLite (one process per data directory) the only replica leads at
// once, so the same code path runs on both backends.
func TestSQLiteLeadsAtOnce(t *testing.T) {
	s, err := state.OpenSQLite(t.TempDir() + "/state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := start(t, s, "a", time.Second)
	waitFor(t, "a leads", 5*time.Second, func() bool { return a.wrote.Load() > 2 })
}

// Gated loops run on the leader only, start again in each new term, and
// run at once without an elector.
func TestGate(t *testing.T) {
	_, store := postgres(t)
	ttl := 3 * time.Second
	a := start(t, store, "a", ttl)
	waitFor(t, "a leads", 10*time.Second, func() bool { _, ok := a.e.Leading(); return ok })
	b := start(t, store, "b", ttl)
	var runsA, runsB atomic.Int32
	gated := func(e *Elector, runs *atomic.Int32) {
		ctx, cancel := context.WithCancel(NewContext(context.Background(), e))
		t.Cleanup(cancel)
		go Gate(ctx, func(ctx context.Context) error {
			if _, ok := state.FenceFrom(ctx); !ok {
				t.Error("a gated loop runs without a fence")
			}
			runs.Add(1)
			<-ctx.Done()
			return nil
		})
	}
	gated(a.e, &runsA)
	gated(b.e, &runsB)
	waitFor(t, "the loop runs on a", 5*time.Second, func() bool { return runsA.Load() == 1 })
	time.Sleep(500 * time.Millisecond)
	if runsB.Load() != 0 {
		t.Fatal("a gated loop runs on the standby")
	}
	a.stop()
	waitFor(t, "the loop runs on b", 10*time.Second, func() bool { return runsB.Load() == 1 })
	ran := false
	Gate(context.Background(), func(ctx context.Context) error { ran = true; return nil })
	if !ran {
		t.Fatal("Gate without an elector did not run the loop")
	}
}
