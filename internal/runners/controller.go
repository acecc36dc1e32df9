package runners

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Controller keeps every applied pool at what Desire asks for, through
// the pool's Target, fed by the Queue.
type Controller struct {
	Queue *Queue
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
	dayStart  time.Time
	hours     float64 // runner-hours today
	last      time.Time
	decision  Decision
	queued    int
	busy      int
	oldest    time.Time
	err       string
	failures  int
	nextTry   time.Time
}

// PoolStatus is a pool as `pave runners status` shows it.
type PoolStatus struct {
	Name             string   `json:"name"`
	Labels           []string `json:"labels"`
	Min              int      `json:"min"`
	Max              int      `json:"max"`
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
}

// NewController returns a controller over q with local targets.
func NewController(q *Queue) *Controller {
	return &Controller{Queue: q, Now: time.Now, pools: map[string]*poolState{},
		NewTarget: func(p RunnerPool) (Target, error) {
			if p.Spec.Target.Local == nil {
				return nil, &FieldError{Path: "spec.target.kubernetes", Err: fmt.Errorf("%w: this controller has no Kubernetes clusters; use target: {local: {}}", ErrInvalid)}
			}
			return NewLocalTarget(p), nil
		}}
}

// Apply creates or replaces a pool (validated by Parse). A pool whose
// target changes gets a new target; the old one is closed.
func (c *Controller) Apply(p RunnerPool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.pools[p.Metadata.Name]
	if st != nil && sameTarget(st.pool, p) {
		st.pool = p
		return nil
	}
	t, err := c.NewTarget(p)
	if err != nil {
		return err
	}
	if st != nil {
		_ = st.target.Close()
	}
	c.pools[p.Metadata.Name] = &poolState{pool: p, target: t}
	return nil
}

func sameTarget(a, b RunnerPool) bool {
	if (a.Spec.Target.Local == nil) != (b.Spec.Target.Local == nil) {
		return false
	}
	if a.Spec.Target.Local != nil {
		return slices.Equal(a.Spec.Target.Local.Command, b.Spec.Target.Local.Command)
	}
	return *a.Spec.Target.Kubernetes == *b.Spec.Target.Kubernetes
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
	c.Queue.Prune(now)
	for _, st := range c.pools {
		c.reconcile(ctx, st, now)
	}
}

func (c *Controller) reconcile(ctx context.Context, st *poolState, now time.Time) {
	s := &st.pool.Spec
	if day := s.BudgetDayStart(now); !day.Equal(st.dayStart) {
		st.dayStart, st.hours = day, 0
	} else if !st.last.IsZero() {
		st.hours += float64(st.current) * now.Sub(st.last).Hours()
	}
	st.last = now
	st.queued, st.busy, st.oldest = c.Queue.Counts(s.Labels)
	// Idle runners, newest last: a job takes the newest (as in Simulate).
	idle := max(st.current-st.busy, 0)
	for len(st.idleSince) < idle {
		st.idleSince = append(st.idleSince, now)
	}
	st.idleSince = st.idleSince[:idle]
	st.decision = s.Desire(Observation{Now: now, Queued: st.queued, Busy: st.busy, RunnerHoursToday: st.hours})
	want := st.current
	if st.current < st.decision.Desired {
		want = st.decision.Desired
	} else {
		want -= s.Retirable(now, st.current, st.decision.Desired, st.idleSince)
	}
	want = min(max(want, s.Min), s.Max) // also after the target comes back
	if want == st.current && st.err == "" {
		return
	}
	if now.Before(st.nextTry) {
		return
	}
	n, err := st.target.Scale(ctx, want)
	if err != nil {
		st.failures++
		st.err = err.Error()
		st.nextTry = now.Add(backoff(st.failures))
		return
	}
	st.err, st.failures, st.nextTry = "", 0, time.Time{}
	if n < st.current {
		st.idleSince = st.idleSince[min(st.current-n, len(st.idleSince)):]
	}
	st.current = n
}

// backoff is 1 s doubling to 5 min.
func backoff(failures int) time.Duration {
	d := time.Second << min(failures-1, 9)
	return min(d, 5*time.Minute)
}

// Run reconciles every interval until ctx ends, then closes the targets.
func (c *Controller) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		c.Reconcile(ctx)
		select {
		case <-ctx.Done():
			c.mu.Lock()
			for _, st := range c.pools {
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
	for name, st := range c.pools {
		s := st.pool.Spec
		ps := PoolStatus{Name: name, Labels: s.Labels, Min: s.Min, Max: s.Max, Runners: st.current, Busy: min(st.busy, st.current),
			Idle: max(st.current-st.busy, 0), Queued: st.queued, Desired: st.decision.Desired, Windows: st.decision.Windows,
			RunnerHoursToday: st.hours, BudgetPerDay: s.RunnerHoursPerDay, BudgetExhausted: st.decision.BudgetExhausted, TargetError: st.err}
		if !st.oldest.IsZero() {
			ps.OldestQueuedSecs = now.Sub(st.oldest).Seconds()
		}
		if !st.nextTry.IsZero() {
			ps.RetryAt = st.nextTry.UTC().Format(time.RFC3339)
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b PoolStatus) int { return cmpString(a.Name, b.Name) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
