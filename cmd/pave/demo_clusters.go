package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/loadgen"
	"github.com/pave-platform/pave/internal/server"
)

// clusterDrill is what the demo's cluster drill observed: a drain and
// undrain of one cluster, then its loss.
type clusterDrill struct {
	cluster   string
	drain     loadgen.Counts
	drainTook time.Duration
	loss      loadgen.Counts
	shift     time.Duration // loss until the fleet moved the share
	killed    int
	failures  []string // the first failed requests of the loss, with their time after it
	err       error
}

// The drill's goals. A drain loses nothing. The loss of a cluster fails
// at most 0.1% of the requests in the event that a gateway could have
// retried elsewhere (none, in practice: every idempotent request and
// every request no byte of which reached the lost cluster's instances is
// retried in the other cluster). Apart from those, the non-idempotent
// requests already sent to the lost cluster's instances when they were
// killed fail unavoidably: no gateway may repeat a POST that may
// have been acted on. They are counted and shown apart; more than 1% of
// the event would mean something else fails.
const (
	lossAvoidableBudget   = 1000 // at most 1 in 1000 requests
	lossUnretriableBudget = 100  // at most 1 in 100 requests
)

func (c *clusterDrill) ok() bool {
	return c.err == nil && c.drain.Failed == 0 && c.loss.Retriable()*lossAvoidableBudget <= c.loss.Sent &&
		c.loss.Unretriable*lossUnretriableBudget <= c.loss.Sent
}

func (c *clusterDrill) problem() string {
	if c == nil || c.ok() {
		return ""
	}
	if c.err != nil {
		return "; cluster drill: " + c.err.Error()
	}
	return fmt.Sprintf("; cluster drill: %d requests failed during the drain (want 0); of %d during the loss, %d failed that a gateway could have retried (want at most 0.1%%) and %d already sent to the lost cluster's instances (want at most 1%%)",
		c.drain.Failed, c.loss.Sent, c.loss.Retriable(), c.loss.Unretriable)
}

func (c *clusterDrill) print(w io.Writer) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "\nCluster drill on %s:\n", c.cluster)
	if c.err != nil {
		fmt.Fprintf(w, "  stopped: %v\n", c.err)
		return
	}
	fmt.Fprintf(w, "  drain (50%%/s) took %.1fs: %d requests, %d failed; served by %v\n", c.drainTook.Seconds(), c.drain.Sent, c.drain.Failed, c.drain.ByHeader)
	pct := func(n uint64) float64 { return 100 * float64(n) / float64(max(c.loss.Sent, 1)) }
	fmt.Fprintf(w, "  loss (gateway and %d instances killed): traffic moved off it %.1fs later; %d requests in the event, %d failed (%.3f%%)\n",
		c.killed, c.shift.Seconds(), c.loss.Sent, c.loss.Failed, pct(c.loss.Failed))
	fmt.Fprintf(w, "    %d (%.3f%%) a gateway could have retried in the other cluster (goal: at most 0.1%%)\n", c.loss.Retriable(), pct(c.loss.Retriable()))
	fmt.Fprintf(w, "    %d (%.3f%%) POSTs already sent to the lost cluster's instances, killed before answering: never repeated by a gateway (they may have been acted on), their clients decide\n",
		c.loss.Unretriable, pct(c.loss.Unretriable))
	for _, f := range c.failures {
		fmt.Fprintf(w, "    failed: %s\n", f)
	}
}

// clusterDrill drains a cluster at 50%/s and brings it back, then loses it
// and waits for the edge to fail over, counting failed requests throughout.
func (d *demo) clusterDrill(ctx context.Context, name string) (*clusterDrill, error) {
	c := &clusterDrill{cluster: name}
	path := "/api/v1/clusters/" + url.PathEscape(name)
	share := func() (float64, string, error) {
		var v server.ClusterView
		err := d.g.client().Do(ctx, http.MethodGet, path, nil, &v)
		return v.Share, v.Health.State, err
	}
	waitFor := func(what string, limit time.Duration, done func(float64, string) bool) (time.Duration, error) {
		start := time.Now()
		for time.Since(start) < limit {
			s, h, err := share()
			if err != nil {
				return 0, err
			}
			if done(s, h) {
				return time.Since(start), nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		return 0, fmt.Errorf("cluster %s: %s did not happen within %s", name, what, limit)
	}

	d.say("cluster drill: drain %s at 50%%/s (as for a Kubernetes or Istio upgrade)", name)
	before := d.load.Counts()
	start := time.Now()
	if err := d.g.client().Do(ctx, http.MethodPost, path+"/drain", server.DrainRequest{Pace: "50%/s"}, nil); err != nil {
		return nil, err
	}
	if _, err := waitFor("the drain", 30*time.Second, func(s float64, _ string) bool { return s == 0 }); err != nil {
		c.err = err
		return c, nil
	}
	c.drainTook = time.Since(start)
	time.Sleep(time.Second) // requests already on their way to it finish
	c.drain = d.load.Counts().Sub(before)
	d.say("  %s drained in %.1fs: %d requests, %d failed", name, c.drainTook.Seconds(), c.drain.Sent, c.drain.Failed)
	if err := d.g.client().Do(ctx, http.MethodPost, path+"/undrain", server.DrainRequest{Pace: "50%/s"}, nil); err != nil {
		return nil, err
	}
	if _, err := waitFor("the undrain", 30*time.Second, func(s float64, _ string) bool { return s > 0 }); err != nil {
		c.err = err
		return c, nil
	}
	time.Sleep(3 * time.Second)
	d.say("  %s serves again; now lose it: its gateway and instances are killed", name)

	before = d.load.Counts()
	var lost server.LoseAnswer
	lostAt := time.Now()
	if err := d.g.client().Do(ctx, http.MethodPost, path+"/lose", nil, &lost); err != nil {
		return nil, err
	}
	c.killed = lost.KilledInstances
	shift, err := waitFor("the failover", 30*time.Second, func(s float64, h string) bool { return s == 0 && h == fleet.Failed })
	if err != nil {
		c.err = err
		return c, nil
	}
	c.shift = shift
	time.Sleep(2 * time.Second)
	c.loss = d.load.Counts().Sub(before)
	c.failures = d.failures.since(lostAt, 5)
	d.say("  failover %.1fs after the loss: %d requests in the event, %d failed (%d of them POSTs already sent to the lost cluster's instances)",
		time.Since(lostAt).Seconds()-2, c.loss.Sent, c.loss.Failed, c.loss.Unretriable)
	return c, nil
}

// failureLog keeps the latest failed requests of the demo's load with
// their time, so the drill can say which failed and why.
type failureLog struct {
	mu   sync.Mutex
	last []failure
}

type failure struct {
	at  time.Time
	err error
}

const failureLogSize = 64

func (l *failureLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == failureLogSize {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, failure{at: time.Now(), err: err})
}

// since returns up to n failures after t, each with its delay after t.
func (l *failureLog) since(t time.Time, n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, f := range l.last {
		if !f.at.Before(t) && len(out) < n {
			out = append(out, fmt.Sprintf("+%.3fs %v", f.at.Sub(t).Seconds(), f.err))
		}
	}
	return out
}
