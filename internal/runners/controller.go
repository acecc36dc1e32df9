package runners

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// A pool's records in the state store: its spec as applied, and what it
// has done (today's runner-hours, its recent decisions, the day's queue
// and runner count), so a restart keeps the budget and the panel.
const (
	kindPool       = "runners.pool"
	kindPoolRecord = "runners.poolrecord"
)

const (
	keptDecisions = 50              // recent scaling decisions per pool
	sampleEvery   = 2 * time.Minute // the day's plot resolution
	keptSamples   = 24 * time.Hour
	saveEvery     = time.Minute // runner-hours are written at least this often
)

// Controller keeps every applied pool at what Desire asks for, through
// the pool's Target, fed by the Queue.
type Controller struct {
	Queue *Queue
	Store state.Store
	// NewTarget returns a pool's target (default: local processes only;
	// `pave up` adds Kubernetes targets on registered clusters).
	NewTarget func(RunnerPool) (Target, error)
	Now       func() time.Time

	mu    sync.Mutex
	pools map[string]*poolState
}

type poolState struct {
	pool      RunnerPool
	target    Target
	current   int
	idleSince []time.Time // idle runners, oldest first
	last      time.Time
	decision  Decision
	queued    int
	busy      int
	oldest    time.Time
	err       string
	failures  int
	nextTry   time.Time
	saved     time.Time
	saveErr   string
	record    poolRecord
}

// poolRecord is what a pool has done, as stored.
type poolRecord struct {
	DayStart  time.Time       `json:"dayStart"`
	Hours     float64         `json:"runnerHoursToday"`
	Decisions []ScaleDecision `json:"decisions,omitempty"`
	Samples   []Sample        `json:"samples,omitempty"`
}

// ScaleDecision is one change of a pool's runner count the controller
// made or tried, and why.
type ScaleDecision struct {
	Time    time.Time `json:"time"`
	From    int       `json:"from"`
	To      int       `json:"to"`
	Desired int       `json:"desired"`
	Queued  int       `json:"queued"`
	Busy    int       `json:"busy"`
	Reason  string    `json:"reason"`
	Error   string    `json:"error,omitempty"`
}

// Sample is the pool at one moment of the day's plot.
type Sample struct {
	Time    time.Time `json:"t"`
	Queued  int       `json:"queued"`
	Busy    int       `json:"busy"`
	Runners int       `json:"runners"`
	Desired int       `json:"desired"`
}

// PoolStatus is a pool as `pave runners status` shows it.
type PoolStatus struct {
	Name             string   `json:"name"`
	Labels           []string `json:"labels"`
	Min              int      `json:"min"`
	Max              int      `json:"max"`
	Target           string   `json:"target"`
	Runners          int      `json:"runners"`
	Busy             int      `json:"busy"`
	Idle             int      `json:"idle"`
	Queued           int      `json:"queued"`
	OldestQueuedSecs float64  `json:"oldestQueuedSeconds"`
	Desired          int      `json:"desired"`
	Windows          []string `json:"activeWindows,omitempty"`
	RunnerHoursToday float64  `json:"runnerHoursToday"`
	BudgetPerDay     float64  `json:"runnerHoursPerDay,omitempty"`
	BudgetExhausted  bool     `json:"budgetExhausted,omitempty"`
	TargetError      string   `json:"targetError,omitempty"`
	RetryAt          string   `json:"retryAt,omitempty"`
	StoreError       string   `json:"storeError,omitempty"`
}

// PoolDetail is one pool with its spec, queue, recent decisions and the
// day's samples: the web UI's runners panel.
type PoolDetail struct {
	Status    PoolStatus      `json:"status"`
	Spec      Spec            `json:"spec"`
	Jobs      []QueuedJob     `json:"jobs"`
	Decisions []ScaleDecision `json:"decisions"`
	Samples   []Sample        `json:"samples"`
}

// NewController returns a controller over q, keeping its pools in
// store, with local targets.
func NewController(q *Queue, store state.Store) *Controller {
	return &Controller{Queue: q, Store: store, Now: time.Now, pools: map[string]*poolState{},
		NewTarget: func(p RunnerPool) (Target, error) {
			if p.Spec.Target.Local == nil {
				return nil, &FieldError{Path: "spec.target.kubernetes", Err: fmt.Errorf("%w: this controller has no Kubernetes clusters; use target: {local: {}}", ErrInvalid)}
			}
			return NewLocalTarget(p), nil
		}}
}

// Load installs the pools kept in the store, with what they had done. A
// pool whose target cannot be made now (its cluster was removed) is
// installed anyway and reports the error in its status, as an
// unreachable target does; a stored pool that no longer parses is
// skipped and named in the error.
func (c *Controller) Load(ctx context.Context) error {
	objs, err := c.Store.List(ctx, kindPool)
	if err != nil {
		return fmt.Errorf("runner pools: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, o := range objs {
		p, err := Parse(o.Data)
		if err != nil {
			errs = append(errs, fmt.Errorf("stored runner pool %s: %w (apply it again)", o.Key, err))
			continue
		}
		t, err := c.NewTarget(p)
		if err != nil {
			t = brokenTarget{err}
		}
		st := &poolState{pool: p, target: t}
		if _, err := state.GetJSON(ctx, c.Store, kindPoolRecord, o.Key, &st.record); err != nil && !errors.Is(err, state.ErrNotFound) {
			errs = append(errs, fmt.Errorf("runner pool %s: %w", o.Key, err))
		}
		c.pools[p.Metadata.Name] = st
	}
	return errors.Join(errs...)
}

// brokenTarget stands for a stored pool's target that could not be made.
type brokenTarget struct{ err error }

func (b brokenTarget) Scale(context.Context, int) (int, error) { return 0, b.err }
func (b brokenTarget) Close() error                            { return nil }

// Apply creates or replaces a pool (validated by Parse) and keeps it in
// the store. A pool whose target changes gets a new target; the old one
// is closed.
func (c *Controller) Apply(ctx context.Context, p RunnerPool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.pools[p.Metadata.Name]
	var t Target
	if st == nil || !sameTarget(st.pool, p) {
		var err error
		if t, err = c.NewTarget(p); err != nil {
			return err
		}
	}
	if _, err := state.PutJSON(ctx, c.Store, kindPool, p.Metadata.Name, p, state.Any); err != nil {
		if t != nil {
			_ = t.Close()
		}
		return fmt.Errorf("storing runner pool %s: %w", p.Metadata.Name, err)
	}
	switch {
	case st == nil:
		c.pools[p.Metadata.Name] = &poolState{pool: p, target: t}
	case t == nil:
		st.pool = p
	default:
		_ = st.target.Close()
		st.pool, st.target, st.current, st.idleSince = p, t, 0, nil
		st.err, st.failures, st.nextTry = "", 0, time.Time{}
	}
	return nil
}

// Delete removes a pool: its local runners stop; a Kubernetes runner set
// or Deployment is left as it is.
func (c *Controller) Delete(ctx context.Context, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.pools[name]
	if !ok {
		return fmt.Errorf("no runner pool %q (pave runners status lists them): %w", name, state.ErrNotFound)
	}
	for _, kind := range []string{kindPool, kindPoolRecord} {
		if err := c.Store.Delete(ctx, kind, name, state.Any); err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("deleting runner pool %s: %w", name, err)
		}
	}
	_ = st.target.Close()
	delete(c.pools, name)
	return nil
}

func sameTarget(a, b RunnerPool) bool {
	at, bt := a.Spec.Target, b.Spec.Target
	switch {
	case at.Local != nil && bt.Local != nil:
		return slices.Equal(at.Local.Command, bt.Local.Command)
	case at.Kubernetes != nil && bt.Kubernetes != nil:
		return *at.Kubernetes == *bt.Kubernetes && (at.Kubernetes.AutoscalingRunnerSet == "" || a.Spec.Max == b.Spec.Max)
	}
	return false
}

// Pool returns an applied pool.
func (c *Controller) Pool(name string) (RunnerPool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.pools[name]
	if !ok {
		return RunnerPool{}, false
	}
	return st.pool, true
}

// Reconcile runs one pass over every pool.
func (c *Controller) Reconcile(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Now()
	c.Queue.Prune(ctx, now)
	for _, st := range c.pools {
		c.reconcile(ctx, st, now)
	}
}

func (c *Controller) reconcile(ctx context.Context, st *poolState, now time.Time) {
	s := &st.pool.Spec
	r := &st.record
	if day := s.BudgetDayStart(now); !day.Equal(r.DayStart) {
		r.DayStart, r.Hours = day, 0
	} else if !st.last.IsZero() {
		r.Hours += float64(st.current) * now.Sub(st.last).Hours()
	}
	st.last = now
	st.queued, st.busy, st.oldest = c.Queue.Counts(s.Labels)
	// Idle runners, newest last: a job takes the newest (as in Simulate).
	idle := max(st.current-st.busy, 0)
	for len(st.idleSince) < idle {
		st.idleSince = append(st.idleSince, now)
	}
	st.idleSince = st.idleSince[:idle]
	st.decision = s.Desire(Observation{Now: now, Queued: st.queued, Busy: st.busy, RunnerHoursToday: r.Hours})
	want := st.current
	if st.current < st.decision.Desired {
		want = st.decision.Desired
	} else {
		want -= s.Retirable(now, st.current, st.decision.Desired, st.idleSince)
	}
	want = min(max(want, s.Min), s.Max) // also after the target comes back
	changed := false
	if (want != st.current || st.err != "") && !now.Before(st.nextTry) {
		changed = true
		d := ScaleDecision{Time: now, From: st.current, To: want, Desired: st.decision.Desired, Queued: st.queued, Busy: st.busy,
			Reason: reason(s, st.decision, st.current, want)}
		n, err := st.target.Scale(ctx, want)
		if err != nil {
			st.failures++
			st.err = err.Error()
			st.nextTry = now.Add(backoff(st.failures))
			d.Error = st.err
		} else {
			st.err, st.failures, st.nextTry = "", 0, time.Time{}
			if n < st.current {
				st.idleSince = st.idleSince[min(st.current-n, len(st.idleSince)):]
			}
			d.To = n
			st.current = n
		}
		// A repeated failure is one decision, not one per retry.
		if k := len(r.Decisions); d.Error == "" || k == 0 || r.Decisions[k-1].Error != d.Error || r.Decisions[k-1].To != d.To {
			r.Decisions = append(r.Decisions, d)
			if len(r.Decisions) > keptDecisions {
				r.Decisions = slices.Delete(r.Decisions, 0, len(r.Decisions)-keptDecisions)
			}
		}
	}
	if k := len(r.Samples); k == 0 || now.Sub(r.Samples[k-1].Time) >= sampleEvery {
		r.Samples = append(r.Samples, Sample{Time: now, Queued: st.queued, Busy: min(st.busy, st.current), Runners: st.current, Desired: st.decision.Desired})
		i := 0
		for i < len(r.Samples) && now.Sub(r.Samples[i].Time) > keptSamples {
			i++
		}
		r.Samples = slices.Delete(r.Samples, 0, i)
	}
	if changed || now.Sub(st.saved) >= saveEvery {
		c.save(ctx, st, now)
	}
}

// save writes the pool's record; a failure is shown in the status and
// tried again on the next pass.
func (c *Controller) save(ctx context.Context, st *poolState, now time.Time) {
	if _, err := state.PutJSON(ctx, c.Store, kindPoolRecord, st.pool.Metadata.Name, st.record, state.Any); err != nil {
		st.saveErr = err.Error()
		return
	}
	st.saved, st.saveErr = now, ""
}

// reason says why the pool goes from one count to another.
func reason(s *Spec, d Decision, from, to int) string {
	switch {
	case to == from:
		return "retry"
	case to < from && to == s.Min && d.Desired <= s.Min:
		return fmt.Sprintf("idle for %s: back to min %d", s.IdleTimeout, s.Min)
	case to < from:
		return fmt.Sprintf("idle for %s: down to %d wanted", s.IdleTimeout, to)
	}
	var why []string
	if d.Floor > 0 && d.Floor >= to {
		why = append(why, fmt.Sprintf("schedule %s floor %d", strings.Join(d.Windows, ", "), d.Floor))
	} else {
		why = append(why, "queue")
		if d.Spare > 0 {
			why = append(why, fmt.Sprintf("spare %d of schedule %s", d.Spare, strings.Join(d.Windows, ", ")))
		}
	}
	if to == s.Max && d.Desired >= s.Max {
		why = append(why, fmt.Sprintf("capped at max %d", s.Max))
	}
	if d.BudgetExhausted {
		why = append(why, "budget spent: no warm runners")
	}
	if to == s.Min && from < s.Min {
		why = []string{fmt.Sprintf("min %d", s.Min)}
	}
	return strings.Join(why, "; ")
}

// backoff is 1 s doubling to 5 min.
func backoff(failures int) time.Duration {
	d := time.Second << min(failures-1, 9)
	return min(d, 5*time.Minute)
}

// Run reconciles every interval until ctx ends, then saves every pool's
// record and closes the targets.
func (c *Controller) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.Reconcile(ctx)
		select {
		case <-ctx.Done():
			c.mu.Lock()
			for _, st := range c.pools {
				c.save(context.WithoutCancel(ctx), st, c.Now())
				_ = st.target.Close()
			}
			c.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// Status returns every pool, by name.
func (c *Controller) Status() []PoolStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Now()
	out := make([]PoolStatus, 0, len(c.pools))
	for _, st := range c.pools {
		out = append(out, st.status(now))
	}
	slices.SortFunc(out, func(a, b PoolStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (st *poolState) status(now time.Time) PoolStatus {
	s := st.pool.Spec
	ps := PoolStatus{Name: st.pool.Metadata.Name, Labels: s.Labels, Min: s.Min, Max: s.Max, Target: s.Target.String(), Runners: st.current, Busy: min(st.busy, st.current),
		Idle: max(st.current-st.busy, 0), Queued: st.queued, Desired: st.decision.Desired, Windows: st.decision.Windows,
		RunnerHoursToday: st.record.Hours, BudgetPerDay: s.RunnerHoursPerDay, BudgetExhausted: st.decision.BudgetExhausted, TargetError: st.err,
		StoreError: st.saveErr}
	if !st.oldest.IsZero() {
		ps.OldestQueuedSecs = now.Sub(st.oldest).Seconds()
	}
	if !st.nextTry.IsZero() {
		ps.RetryAt = st.nextTry.UTC().Format(time.RFC3339)
	}
	return ps
}

// Detail returns one pool with its spec, queue, decisions and samples.
func (c *Controller) Detail(name string) (PoolDetail, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.pools[name]
	if !ok {
		return PoolDetail{}, fmt.Errorf("no runner pool %q (pave runners status lists them): %w", name, state.ErrNotFound)
	}
	d := PoolDetail{Status: st.status(c.Now()), Spec: st.pool.Spec, Jobs: c.Queue.Jobs(st.pool.Spec.Labels),
		Decisions: slices.Clone(st.record.Decisions), Samples: slices.Clone(st.record.Samples)}
	slices.Reverse(d.Decisions) // newest first
	if d.Jobs == nil {
		d.Jobs = []QueuedJob{}
	}
	return d, nil
}

// Suggest learns a schedule for the pool from the queue history of the
// last `weeks` weeks (see Suggest), in zone.
func (c *Controller) Suggest(name, zone string, weeks int) (Suggestion, RunnerPool, error) {
	p, ok := c.Pool(name)
	if !ok {
		return Suggestion{}, p, fmt.Errorf("no runner pool %q: apply it with pave runners apply -f FILE", name)
	}
	hist := c.Queue.History(p.Spec.Labels, c.Now().AddDate(0, 0, -7*weeks))
	if len(hist) == 0 {
		return Suggestion{}, p, fmt.Errorf("pool %q has no finished jobs in the last %d weeks of queue history: nothing to learn from yet", name, weeks)
	}
	s, err := Suggest(p, zone, hist, SimOptions{StartUp: 60 * time.Second, Tick: 5 * time.Second})
	return s, p, err
}
