package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	err       error
}

func (c *clusterDrill) ok() bool {
	return c.err == nil && c.drain.Failed == 0 && c.loss.Failed*1000 <= c.loss.Sent
}

func (c *clusterDrill) problem() string {
	if c == nil || c.ok() {
		return ""
	}
	if c.err != nil {
		return "; cluster drill: " + c.err.Error()
	}
	return fmt.Sprintf("; cluster drill: %d requests failed during the drain, %d of %d during the loss", c.drain.Failed, c.loss.Failed, c.loss.Sent)
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
	fmt.Fprintf(w, "  loss (gateway and %d instances killed): traffic moved off it %.1fs later; %d requests in the event, %d failed (%.3f%%)\n",
		c.killed, c.shift.Seconds(), c.loss.Sent, c.loss.Failed, 100*float64(c.loss.Failed)/float64(max(c.loss.Sent, 1)))
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
	d.say("  failover %.1fs after the loss: %d requests in the event, %d failed", time.Since(lostAt).Seconds()-2, c.loss.Sent, c.loss.Failed)
	return c, nil
}
