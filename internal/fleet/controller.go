package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/traffic"
)

// Prober tells whether a cluster answers: its API server, or for an
// embedded cluster its gateway.
type Prober interface {
	Probe(ctx context.Context, c Cluster) error
}

// ProbeFunc adapts a function to Prober.
type ProbeFunc func(ctx context.Context, c Cluster) error

// Probe calls f.
func (f ProbeFunc) Probe(ctx context.Context, c Cluster) error { return f(ctx, c) }

// EdgeCounts reads the cumulative requests and errors the edge sent to a
// cluster, over every service; nil when the edge keeps none (DNS).
type EdgeCounts func(cluster string) (requests, errors uint64)

// ControllerOptions configure the failover and drain controller.
type ControllerOptions struct {
	Registry *Registry
	Edge     Edge
	// Services lists the services whose traffic the edge splits.
	Services func(ctx context.Context) ([]string, error)
	Prober   Prober
	Counts   EdgeCounts // optional
	// Interval between passes (default 500ms). FailAfter consecutive bad
	// probes fail a cluster (default 3); it serves again only after
	// RecoverAfter of good probes without a break (default 30s), so a
	// flapping cluster stays out.
	Interval     time.Duration
	FailAfter    int
	RecoverAfter time.Duration
	// ErrorRate above which the edge's recent traffic to a cluster counts
	// as a bad probe (default 0.5), over at least MinRequests (default 20)
	// in the last ErrorWindow (default 5s).
	ErrorRate   float64
	MinRequests uint64
	ErrorWindow time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// Controller moves traffic between clusters at the edge. Run it in one
// goroutine; Tick is one pass (tests call it directly).
type Controller struct {
	o ControllerOptions

	mu       sync.Mutex
	bad      map[string]int       // consecutive bad probes
	goodFrom map[string]time.Time // first good probe of an unbroken run
	counts   map[string][]sample  // recent cumulative edge counters
	applied  map[string]string    // service -> shares last applied
}

type sample struct {
	at             time.Time
	requests, errs uint64
}

// NewController returns a controller with defaults filled.
func NewController(o ControllerOptions) *Controller {
	if o.Interval == 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.FailAfter == 0 {
		o.FailAfter = 3
	}
	if o.RecoverAfter == 0 {
		o.RecoverAfter = 30 * time.Second
	}
	if o.ErrorRate == 0 {
		o.ErrorRate = 0.5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 20
	}
	if o.ErrorWindow == 0 {
		o.ErrorWindow = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Controller{o: o, bad: map[string]int{}, goodFrom: map[string]time.Time{}, counts: map[string][]sample{}, applied: map[string]string{}}
}

// Run passes every Interval until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		if err := c.Tick(ctx); err != nil && ctx.Err() == nil {
			c.o.Log.Warn("fleet", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick probes every cluster, records health changes, and applies each
// service's shares at the edge where they changed.
func (c *Controller) Tick(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	clusters, err := c.o.Registry.List(ctx)
	if err != nil {
		return err
	}
	now := c.o.Now().UTC()
	for i := range clusters {
		cl := &clusters[i]
		if err := c.judge(ctx, cl, now); err != nil {
			c.o.Log.Warn("fleet: record health", "cluster", cl.Name, "err", err)
		}
	}
	shares := Shares(clusters, now)
	if c.o.Edge == nil || c.o.Services == nil {
		return nil
	}
	services, err := c.o.Services(ctx)
	if err != nil {
		return err
	}
	key := sharesKey(shares)
	var errs []error
	for _, s := range services {
		if c.applied[s] == key {
			continue
		}
		if err := c.o.Edge.Apply(ctx, s, shares); err != nil {
			errs = append(errs, fmt.Errorf("edge: service %s: %w", s, err))
			continue
		}
		c.applied[s] = key
	}
	return errors.Join(errs...)
}

// judge probes one cluster and moves it between healthy and failed.
func (c *Controller) judge(ctx context.Context, cl *Cluster, now time.Time) error {
	pctx, cancel := context.WithTimeout(ctx, max(c.o.Interval*2, time.Second))
	err := c.o.Prober.Probe(pctx, *cl)
	cancel()
	if err == nil {
		err = c.edgeErrors(cl.Name, now)
	}
	if err != nil {
		c.bad[cl.Name]++
		delete(c.goodFrom, cl.Name)
		if cl.Health.State != Failed && c.bad[cl.Name] >= c.o.FailAfter {
			reason := err.Error()
			c.o.Log.Warn("fleet: cluster failed; moving its traffic to the others", "cluster", cl.Name, "reason", reason)
			return c.setHealth(ctx, cl, Health{State: Failed, Since: now, Reason: reason})
		}
		return nil
	}
	c.bad[cl.Name] = 0
	if cl.Health.State != Failed {
		if cl.Health.State == "" {
			return c.setHealth(ctx, cl, Health{State: Healthy, Since: now})
		}
		return nil
	}
	from, ok := c.goodFrom[cl.Name]
	if !ok {
		c.goodFrom[cl.Name] = now
		return nil
	}
	if now.Sub(from) >= c.o.RecoverAfter {
		c.o.Log.Info("fleet: cluster healthy again; it gets its traffic back", "cluster", cl.Name, "healthy_for", now.Sub(from))
		return c.setHealth(ctx, cl, Health{State: Healthy, Since: now, Reason: fmt.Sprintf("healthy for %s", now.Sub(from).Round(time.Second))})
	}
	return nil
}

func (c *Controller) setHealth(ctx context.Context, cl *Cluster, h Health) error {
	cl.Health = h
	if _, err := c.o.Registry.Update(ctx, cl.Name, func(x *Cluster) error { x.Health = h; return nil }); err != nil {
		return err
	}
	c.o.Registry.event(ctx, cl.Name, h.State, h)
	return nil
}

// edgeErrors judges the edge's recent traffic to a cluster.
func (c *Controller) edgeErrors(name string, now time.Time) error {
	if c.o.Counts == nil {
		return nil
	}
	req, errs := c.o.Counts(name)
	hist := append(c.counts[name], sample{now, req, errs})
	for len(hist) > 1 && now.Sub(hist[0].at) > c.o.ErrorWindow {
		hist = hist[1:]
	}
	c.counts[name] = hist
	first := hist[0]
	if req < first.requests || errs < first.errs { // the edge restarted
		c.counts[name] = hist[len(hist)-1:]
		return nil
	}
	dr, de := req-first.requests, errs-first.errs
	if dr >= c.o.MinRequests && float64(de) > c.o.ErrorRate*float64(dr) {
		return fmt.Errorf("%d of %d requests from the edge failed in the last %s", de, dr, now.Sub(first.at).Round(time.Second))
	}
	return nil
}

// Shares computes each cluster's part of traffic at t: its weight, times
// its drain factor, zero while failed. When that leaves nothing, drained
// healthy clusters serve; when every cluster failed, all serve by weight,
// since refusing all traffic is worse than trying.
func Shares(clusters []Cluster, t time.Time) []Share {
	raw := make([]float64, len(clusters))
	fill := func(f func(Cluster) float64) float64 {
		sum := 0.0
		for i, c := range clusters {
			raw[i] = float64(c.Weight) * f(c)
			sum += raw[i]
		}
		return sum
	}
	up := func(c Cluster) float64 {
		if c.Health.State == Failed {
			return 0
		}
		return 1
	}
	sum := fill(func(c Cluster) float64 { return up(c) * c.Drain.Factor(t) })
	if sum == 0 {
		sum = fill(up)
	}
	if sum == 0 {
		sum = fill(func(Cluster) float64 { return 1 })
	}
	// Factors are fractions: scale to integers fine enough that rounding
	// them moves no share by a part per million.
	scaled := make([]int64, len(raw))
	for i, r := range raw {
		scaled[i] = int64(math.Round(r / sum * 1e9))
	}
	parts := traffic.Apportion(scaled, traffic.Total)
	out := make([]Share, len(clusters))
	for i, c := range clusters {
		out[i] = Share{Cluster: c.Name, Datacenter: c.Datacenter, Weight: parts[i]}
	}
	return out
}

func sharesKey(s []Share) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func mustJSON(v any) []byte {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}

func nowUTC() time.Time { return time.Now().UTC() }
