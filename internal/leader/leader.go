// Package leader elects one control-plane replica among those sharing a
// state store, with a lease kept in the store itself (state.Leases).
//
// The leader runs the loops that decide (the release engine, the fleet
// controller, the schedulers); every replica serves the API. The leader's
// loops run under a context carrying its fence (state.WithFence): the
// store checks, in the transaction of each write, that the lease is still
// held with the same token, so a leader that was paused past its lease
// (a GC pause, a frozen VM, a partition) and wakes up late writes nothing.
//
// Timing, for a lease of L (the leader-lease setting, 15 s by default):
// the lease is stored for L-2L/15 and renewed every L/5; a standby tries
// every L/15. A leader killed right after renewing is replaced within
// L-L/15, which leaves L/15 for a loaded machine's scheduling.
// A leader that cannot renew steps down before its stored lease expires.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// DefaultLease is the leader-lease setting's default.
const DefaultLease = 15 * time.Second

// LeaseName is the lease the control plane's replicas campaign for.
const LeaseName = "control-plane"

// Elector campaigns for a lease and runs the leader's work while it
// holds it.
type Elector struct {
	leases   state.Leases
	name     string
	identity string
	note     string
	ttl      time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	fence   state.Fence
	leading bool
	cur     *term         // the current term, nil between terms
	changed chan struct{} // closed and replaced when a term starts
}

// term is one period of leadership: its context carries the fence and
// ends with the term; loops is the loops running in it.
type term struct {
	ctx   context.Context
	loops sync.WaitGroup
	ended bool
}

// Options configure an Elector.
type Options struct {
	Lease    string        // default LeaseName
	Identity string        // default host-pid-random
	Note     string        // published with the lease (this replica's API address)
	TTL      time.Duration // default DefaultLease
	Log      *slog.Logger
}

// New returns an Elector over leases.
func New(leases state.Leases, o Options) *Elector {
	if o.Lease == "" {
		o.Lease = LeaseName
	}
	if o.Identity == "" {
		o.Identity = Identity()
	}
	if o.TTL <= 0 {
		o.TTL = DefaultLease
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Elector{leases: leases, name: o.Lease, identity: o.Identity, note: o.Note, ttl: o.TTL, log: o.Log,
		changed: make(chan struct{})}
}

// Identity names this process uniquely: a restarted replica is a new
// holder, so its first term gets a new token.
func Identity() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// ID returns this replica's identity.
func (e *Elector) ID() string { return e.identity }

// Leading reports whether this replica leads, and under which fence.
func (e *Elector) Leading() (state.Fence, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fence, e.leading
}

// Lease reads the lease as stored.
func (e *Elector) Lease(ctx context.Context) (state.Lease, error) {
	return e.leases.GetLease(ctx, e.name)
}

func (e *Elector) stored() time.Duration { return e.ttl - 2*e.retry() }
func (e *Elector) renew() time.Duration  { return e.ttl / 5 }
func (e *Elector) retry() time.Duration  { return e.ttl / 15 }

// Run campaigns until ctx ends. Each time this replica wins, it calls
// lead (if not nil) and starts the Loops, with a context that carries the
// fence and ends when leadership is lost; Run waits for them to return
// before campaigning again. On shutdown a leader gives the lease up, so a
// standby takes over at once.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		l, err := e.leases.TryLease(ctx, e.name, e.identity, e.note, e.stored())
		if err != nil && ctx.Err() == nil {
			e.log.Warn("leader election: cannot reach the state store", "err", err)
		}
		if err == nil && l.Holder == e.identity {
			e.term(ctx, l, lead)
			continue
		}
		sleep(ctx, e.retry())
	}
}

// term runs one term of leadership: lead and the Loops run while the
// lease is renewed; the term ends when they all returned.
func (e *Elector) term(ctx context.Context, l state.Lease, lead func(context.Context)) {
	f := state.Fence{Lease: e.name, Holder: e.identity, Token: l.Token}
	e.log.Info("leading the control plane", "replica", e.identity, "token", l.Token)
	lctx, cancel := context.WithCancel(state.WithFence(ctx, f))
	t := &term{ctx: lctx}
	e.mu.Lock()
	e.fence, e.leading, e.cur = f, true, t
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	if lead != nil {
		t.loops.Add(1)
		go func() {
			defer t.loops.Done()
			lead(lctx)
		}()
	}
	why := e.hold(lctx, l)
	e.mu.Lock()
	t.ended, e.leading, e.cur = true, false, nil
	e.mu.Unlock()
	cancel()
	t.loops.Wait()
	if ctx.Err() != nil {
		// Shutting down: hand over now rather than after the lease.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = e.leases.ReleaseLease(rctx, e.name, e.identity, f.Token)
		rcancel()
		e.log.Info("gave up the leadership on shutdown", "replica", e.identity, "token", f.Token)
		return
	}
	e.log.Warn("stepped down", "replica", e.identity, "token", f.Token, "reason", why)
}

// Loop runs loop during every term this replica leads, until ctx ends:
// it waits for leadership, runs loop with a context that carries the
// fence and ends with the term, and waits again when it returns. A loop
// that returns early is started again after a second (if still leading).
// Loop is how the release engine, the fleet controller and the schedulers
// run on the leader only.
func (e *Elector) Loop(ctx context.Context, loop func(ctx context.Context) error) error {
	for {
		t, ok := e.await(ctx)
		if !ok {
			return nil
		}
		tctx, cancel := context.WithCancel(t.ctx)
		stop := context.AfterFunc(ctx, cancel)
		err := loop(tctx)
		stop()
		cancel()
		t.loops.Done()
		if err != nil && tctx.Err() == nil {
			e.log.Warn("leader loop", "err", err)
		}
		if tctx.Err() == nil && !sleep(ctx, time.Second) {
			return nil
		}
	}
}

// await blocks until this replica leads, and registers a loop in the term.
func (e *Elector) await(ctx context.Context) (*term, bool) {
	for {
		e.mu.Lock()
		t, ch := e.cur, e.changed
		if t != nil && !t.ended && t.ctx.Err() == nil {
			t.loops.Add(1)
			e.mu.Unlock()
			return t, true
		}
		e.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-ch:
		}
	}
}

type gateKey struct{}

// NewContext returns a context carrying e, for Gate.
func NewContext(ctx context.Context, e *Elector) context.Context {
	return context.WithValue(ctx, gateKey{}, e)
}

// FromContext returns the Elector ctx carries (NewContext), if any.
func FromContext(ctx context.Context) (*Elector, bool) {
	e, ok := ctx.Value(gateKey{}).(*Elector)
	return e, ok
}

// Gate runs loop on the leader only, through the Elector ctx carries
// (NewContext): the one-line way for code that starts a control loop to
// leave the decision of where it runs to the wiring. Without an Elector
// in ctx (one replica, tests) loop runs at once, once.
func Gate(ctx context.Context, loop func(ctx context.Context) error) error {
	if e, ok := ctx.Value(gateKey{}).(*Elector); ok {
		return e.Loop(ctx, loop)
	}
	return loop(ctx)
}

// hold renews the lease until it is lost or ctx ends, and says why it
// stopped. A renewal that fails is retried until the stored lease is
// about to run out (measured on this replica's clock from the start of
// the last good renewal): then the leader steps down before anyone else
// can have taken over.
func (e *Elector) hold(ctx context.Context, l state.Lease) string {
	lastGood := time.Now()
	deadline := e.stored() - e.retry()
	wait := e.renew()
	for {
		if !sleep(ctx, wait) {
			return "shutdown"
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, max(time.Second, e.renew()))
		nl, err := e.leases.TryLease(rctx, e.name, e.identity, e.note, e.stored())
		cancel()
		switch {
		case err == nil && nl.Holder == e.identity && nl.Token == l.Token:
			lastGood, wait = start, e.renew()
			continue
		case err == nil && nl.Holder != e.identity:
			return "the lease passed to " + nl.Holder
		case err == nil:
			return fmt.Sprintf("the lease lapsed (token %d, now %d)", l.Token, nl.Token)
		}
		if ctx.Err() != nil {
			return "shutdown"
		}
		if time.Since(lastGood) >= deadline {
			return "cannot renew the lease: " + err.Error()
		}
		e.log.Warn("leader election: renewing the lease failed; retrying", "err", err)
		wait = e.retry()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
