package release

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// DefaultWorkers is how many releases the engine reconciles at once unless
// WithWorkers says otherwise (the release-workers setting).
const DefaultWorkers = 16

// WithWorkers sets how many releases Run reconciles at once (at least 1).
func WithWorkers(n int) Option {
	return func(e *Engine) {
		if n > 0 {
			e.workers = n
		}
	}
}

// Timing is one reconcile of one release by Run: when the release became
// due (its periodic turn, or its retry after an error), when a worker took
// it and when the reconcile ended. Done−Due is what a user waits for a
// decision; Done−Start is the reconcile itself.
type Timing struct {
	Release          string
	Due, Start, Done time.Time
	Err              error
}

// WithTimings calls f after each reconcile Run makes (metrics, the scale
// benchmark). f runs on the worker: it must be quick.
func WithTimings(f func(Timing)) Option { return func(e *Engine) { e.timings = f } }

// Run reconciles releases until ctx ends, as a Kubernetes controller does:
// every interval it lists the releases that still need work and queues
// their names on a work queue (client-go's workqueue), and the engine's
// workers (WithWorkers) take names from it and call ReconcileOne.
//
//   - A name is never reconciled by two workers at once; a name queued
//     again while it is being reconciled is reconciled once more after
//     (the queue's dirty set), and a name queued twice waits once.
//   - Level-triggered: each reconcile starts from the stored release, so a
//     missed or repeated turn changes nothing but timing.
//   - A release whose reconcile fails is retried after an exponential
//     back-off (interval/10 doubling up to 5 intervals), not on every
//     pass, so one broken cluster does not take the workers' time.
//   - Each release has its own turn within the interval (turn: a hash of
//     its name), so a pass does not make every release due at the same
//     instant: neither at the start (a leader taking over 1,000 releases,
//     each due for its first, heavier, reconcile) nor later, when
//     releases that started together step together. Each release is
//     still reconciled once an interval.
//   - Releases of one service are serialised by the service's lock
//     (ReconcileOne, Act, Create): their traffic changes never interleave.
//     Releases of different services run in parallel.
//
// Every write still goes through ctx, so it carries the leader's fencing
// token (internal/leader) when Run runs under leader.Gate.
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	c := newController(e, interval)
	var wg sync.WaitGroup
	for range e.workers {
		wg.Go(func() { c.work(ctx) })
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.resync(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("release list", "err", err)
		}
		select {
		case <-ctx.Done():
			c.queue.ShutDown() // workers finish the reconcile they are in
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// controller is one Run's queue and the state around it.
type controller struct {
	e        *Engine
	interval time.Duration
	queue    workqueue.TypedDelayingInterface[string]
	backoff  workqueue.TypedRateLimiter[string]

	mu  sync.Mutex
	due map[string]time.Time // queued names: since when they wait
}

func newController(e *Engine, interval time.Duration) *controller {
	base := max(interval/10, time.Millisecond)
	return &controller{
		e:        e,
		interval: interval,
		queue:    workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{}),
		backoff:  workqueue.NewTypedItemExponentialFailureRateLimiter[string](base, 5*max(interval, base)),
		due:      map[string]time.Time{},
	}
}

// enqueue queues name now, or after delay; a name already queued keeps
// its place and the time it became due.
func (c *controller) enqueue(name string, delay time.Duration) {
	c.mu.Lock()
	if _, ok := c.due[name]; !ok {
		c.due[name] = time.Now().Add(delay)
	}
	c.mu.Unlock()
	if delay > 0 {
		c.queue.AddAfter(name, delay)
	} else {
		c.queue.Add(name)
	}
}

// resync queues every release that still needs work, except those
// waiting for their retry after an error.
func (c *controller) resync(ctx context.Context) error {
	names, err := c.e.pendingWork(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if c.backoff.NumRequeues(n) == 0 {
			c.enqueue(n, c.turn(n))
		}
	}
	return nil
}

// turn is when name is due within each interval, from the pass. bench/
// scale measured what it spreads: with every release due at the pass,
// the 1,000 releases that took a step together waited behind each
// other's writes for over a second (wait p99 1.1 s on PostgreSQL), while
// the passes between were idle.
func (c *controller) turn(name string) time.Duration {
	if c.interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(c.interval))
}

func (c *controller) work(ctx context.Context) {
	for {
		name, shutdown := c.queue.Get()
		if shutdown {
			return
		}
		c.mu.Lock()
		due, ok := c.due[name]
		delete(c.due, name) // queued again from now on, it is due again
		c.mu.Unlock()
		start := time.Now()
		if !ok || due.After(start) {
			due = start
		}
		err := c.e.ReconcileOne(ctx, name)
		done := time.Now()
		switch {
		case err == nil || ctx.Err() != nil:
			c.backoff.Forget(name)
		default:
			d := c.backoff.When(name)
			c.e.log.Warn("release reconcile", "release", name, "err", err, "retry in", d)
			c.enqueue(name, d)
		}
		c.queue.Done(name)
		if c.e.timings != nil {
			c.e.timings(Timing{Release: name, Due: due, Start: start, Done: done, Err: err})
		}
	}
}

// pendingWork lists the names of the releases a reconcile may still
// change, oldest first (lister.go).
func (e *Engine) pendingWork(ctx context.Context) ([]string, error) {
	return e.lister.pending(ctx)
}

// serviceLocks serialises the changes to one service's releases: a
// reconcile, a person's action, a new release superseding the running one.
// Releases of different services never wait for each other.
type serviceLocks struct {
	mu    sync.Mutex
	locks map[string]*serviceLock
}

type serviceLock struct {
	sync.Mutex
	users int // holders and waiters; the entry goes when none is left
}

// lock takes service's lock and returns its unlock.
func (s *serviceLocks) lock(service string) (unlock func()) {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*serviceLock{}
	}
	l := s.locks[service]
	if l == nil {
		l = &serviceLock{}
		s.locks[service] = l
	}
	l.users++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.locks, service)
		}
		s.mu.Unlock()
	}
}
