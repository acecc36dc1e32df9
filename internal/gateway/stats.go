package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pave-platform/pave/internal/stats"
)

// maxRoutesPerVersion bounds the route keys kept per version, so a client
// walking random paths cannot grow memory or metric cardinality.
const maxRoutesPerVersion = 64

// otherRoute collects requests beyond maxRoutesPerVersion route keys.
const otherRoute = "other"

var classNames = [...]string{"2xx", "3xx", "4xx", "5xx", "failed", "ejected"}

// liveCounts are stats.Counts as atomics: the hot path only adds.
type liveCounts struct {
	requests atomic.Uint64
	errors   atomic.Uint64
	class    [len(classNames)]atomic.Uint64
	latency  []atomic.Uint64
}

func newLiveCounts() *liveCounts {
	return &liveCounts{latency: make([]atomic.Uint64, stats.NumBuckets)}
}

func classIndex(status int) int {
	switch {
	case status == stats.StatusEjected:
		return 5
	case status <= 0:
		return 4
	case status < 300:
		return 0
	case status < 400:
		return 1
	case status < 500:
		return 2
	}
	return 3
}

func (c *liveCounts) observe(status int, ms float64) {
	c.requests.Add(1)
	ci := classIndex(status)
	if ci >= 3 {
		c.errors.Add(1)
	}
	c.class[ci].Add(1)
	c.latency[stats.Bucket(ms)].Add(1)
}

func (c *liveCounts) snapshot() stats.Counts {
	out := stats.Counts{
		Requests: c.requests.Load(),
		Errors:   c.errors.Load(),
		ByClass:  map[string]uint64{},
		Latency:  make([]uint64, len(c.latency)),
	}
	for i := range c.class {
		if n := c.class[i].Load(); n > 0 {
			out.ByClass[classNames[i]] = n
		}
	}
	for i := range c.latency {
		out.Latency[i] = c.latency[i].Load()
	}
	return out
}

// trafficClass says how a request's version was chosen: by the weighted
// split (the only traffic the judges count) or by the client.
type trafficClass uint8

const (
	classJudged trafficClass = iota
	classPinned
	classSticky
	classMirrored
	numClasses
)

var unjudgedNames = [numClasses]string{"", stats.Pinned, stats.Sticky, stats.Mirrored}

// versionStats are one version's (or, at the edge, one cluster's) live
// counters, in total and by route key, and apart from them the requests
// that did not take the weighted split. They live outside the route table
// so that reconfiguration never resets them.
type versionStats struct {
	total    *liveCounts
	unjudged [numClasses]*liveCounts // index 0 unused: judged traffic is total
	mu       sync.RWMutex
	routes   map[string]*liveCounts
}

func newVersionStats() *versionStats {
	v := &versionStats{total: newLiveCounts(), routes: map[string]*liveCounts{}}
	for i := classPinned; i < numClasses; i++ {
		v.unjudged[i] = newLiveCounts()
	}
	return v
}

// observe counts one request of the given class; judged requests also by
// route key.
func (v *versionStats) observe(route []byte, status int, ms float64, class trafficClass) {
	if class != classJudged {
		v.unjudged[class].observe(status, ms)
		return
	}
	v.total.observe(status, ms)
	v.mu.RLock()
	c := v.routes[string(route)] // no allocation: the compiler avoids it for lookups
	v.mu.RUnlock()
	if c == nil {
		c = v.route(string(route))
	}
	c.observe(status, ms)
}

func (v *versionStats) route(key string) *liveCounts {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c := v.routes[key]; c != nil {
		return c
	}
	if len(v.routes) >= maxRoutesPerVersion {
		key = otherRoute
		if c := v.routes[key]; c != nil {
			return c
		}
	}
	c := newLiveCounts()
	v.routes[key] = c
	return c
}

func (v *versionStats) snapshot() stats.Version {
	out := stats.Version{Total: v.total.snapshot(), Routes: map[string]stats.Counts{}}
	v.mu.RLock()
	defer v.mu.RUnlock()
	for k, c := range v.routes {
		out.Routes[k] = c.snapshot()
	}
	for i := classPinned; i < numClasses; i++ {
		if c := v.unjudged[i]; c.requests.Load() > 0 {
			if out.Unjudged == nil {
				out.Unjudged = map[string]stats.Counts{}
			}
			out.Unjudged[unjudgedNames[i]] = c.snapshot()
		}
	}
	return out
}

// statsFor returns the counters of (service, version), creating them.
func (g *Gateway) statsFor(service, version string) *versionStats {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	byVersion := g.stats[service]
	if byVersion == nil {
		byVersion = map[string]*versionStats{}
		g.stats[service] = byVersion
	}
	vs := byVersion[version]
	if vs == nil {
		vs = newVersionStats()
		byVersion[version] = vs
	}
	return vs
}

// Snapshot returns a service's cumulative statistics by version (at the
// edge, by "cluster:NAME"). It reads atomic counters only; the release
// engine takes two snapshots and subtracts them (stats.Version.Sub) to
// judge a window.
func (g *Gateway) Snapshot(service string) stats.Snapshot {
	g.statsMu.Lock()
	vs := make(map[string]*versionStats, len(g.stats[service]))
	for v, s := range g.stats[service] {
		vs[v] = s
	}
	g.statsMu.Unlock()
	out := stats.Snapshot{}
	for v, s := range vs {
		out[v] = s.snapshot()
	}
	return out
}

// Watch pushes a snapshot of service every interval until ctx ends (see
// stats.Watch).
func (g *Gateway) Watch(ctx context.Context, service string, every time.Duration) <-chan stats.Snapshot {
	return stats.Watch(ctx, every, func() stats.Snapshot { return g.Snapshot(service) })
}

// StatsSource is the gateway as the release engine's metric source
// (Snapshot with a context and an error, as PromQL-backed sources need).
type StatsSource struct{ Gateway *Gateway }

// Snapshot returns the live cumulative statistics of a service.
func (s StatsSource) Snapshot(_ context.Context, service string) (stats.Snapshot, error) {
	return s.Gateway.Snapshot(service), nil
}
