// Package stats defines the request statistics that flow from a data plane
// (the embedded gateway, or PromQL in Kubernetes mode) to the release
// engine's judges: per version, in total and per route, counts by outcome
// and a latency histogram with fixed buckets. Counters are cumulative; a
// window is the difference of two snapshots (Sub), which is how the judges
// compare canary and stable over the same time window.
package stats

import (
	"context"
	"math"
	"sort"
	"time"
)

// LatencyBounds are the upper bounds, in milliseconds, of the latency
// histogram buckets; a last, implicit bucket holds everything above. The
// ratio between bounds is about 1.25, so any quantile read from the
// histogram is within 12% of the truth.
var LatencyBounds = func() []float64 {
	var b []float64
	for v := 0.25; v <= 120000; v *= 1.25 {
		b = append(b, math.Round(v*1000)/1000)
	}
	return b
}()

// NumBuckets is len(LatencyBounds)+1 (the overflow bucket).
var NumBuckets = len(LatencyBounds) + 1

// Bucket returns the index of the bucket holding a latency in milliseconds.
func Bucket(ms float64) int {
	return sort.SearchFloat64s(LatencyBounds, ms)
}

// Counts are the cumulative statistics of one version, or one route of it.
type Counts struct {
	Requests uint64 `json:"requests"`
	// Errors counts 5xx answers and failures to get an answer at all.
	Errors uint64 `json:"errors"`
	// ByClass counts answers by status class: "2xx", "3xx", "4xx", "5xx",
	// "failed" for no answer, and "ejected" for requests whose turn fell on
	// an ejected instance (see StatusEjected).
	ByClass map[string]uint64 `json:"by_class,omitempty"`
	// Latency has NumBuckets counts, one per LatencyBounds bucket.
	Latency []uint64 `json:"latency,omitempty"`
}

// StatusEjected is the status a data plane records for a request whose
// turn fell on an instance that passive outlier detection had ejected: the
// request was served by another instance of the version, but the version
// is charged an error for it (class "ejected"), so ejecting a broken
// replica does not hide it from the judges.
const StatusEjected = -1

// Observe adds one request.
func (c *Counts) Observe(status int, ms float64) {
	c.Requests++
	class := StatusClass(status)
	if IsErrorClass(class) {
		c.Errors++
	}
	if c.ByClass == nil {
		c.ByClass = map[string]uint64{}
	}
	c.ByClass[class]++
	if len(c.Latency) != NumBuckets {
		c.Latency = make([]uint64, NumBuckets)
	}
	c.Latency[Bucket(ms)]++
}

// IsErrorClass reports the classes that count as errors.
func IsErrorClass(class string) bool {
	return class == "5xx" || class == "failed" || class == "ejected"
}

// StatusClass maps an HTTP status to its class; 0 means no answer,
// StatusEjected an ejected instance's turn.
func StatusClass(status int) string {
	switch {
	case status == StatusEjected:
		return "ejected"
	case status <= 0:
		return "failed"
	case status < 300:
		return "2xx"
	case status < 400:
		return "3xx"
	case status < 500:
		return "4xx"
	}
	return "5xx"
}

// Sub returns c minus an earlier snapshot of the same counters.
func (c Counts) Sub(earlier Counts) Counts {
	out := Counts{Requests: c.Requests - earlier.Requests, Errors: c.Errors - earlier.Errors}
	if len(c.ByClass) > 0 {
		out.ByClass = make(map[string]uint64, len(c.ByClass))
		for k, v := range c.ByClass {
			out.ByClass[k] = v - earlier.ByClass[k]
		}
	}
	if len(c.Latency) > 0 {
		out.Latency = make([]uint64, len(c.Latency))
		for i, v := range c.Latency {
			if i < len(earlier.Latency) {
				v -= earlier.Latency[i]
			}
			out.Latency[i] = v
		}
	}
	return out
}

// Add returns the sum of two counters.
func (c Counts) Add(o Counts) Counts {
	out := Counts{Requests: c.Requests + o.Requests, Errors: c.Errors + o.Errors}
	if len(c.ByClass)+len(o.ByClass) > 0 {
		out.ByClass = map[string]uint64{}
		for k, v := range c.ByClass {
			out.ByClass[k] += v
		}
		for k, v := range o.ByClass {
			out.ByClass[k] += v
		}
	}
	if len(c.Latency)+len(o.Latency) > 0 {
		out.Latency = make([]uint64, NumBuckets)
		for i := range out.Latency {
			if i < len(c.Latency) {
				out.Latency[i] += c.Latency[i]
			}
			if i < len(o.Latency) {
				out.Latency[i] += o.Latency[i]
			}
		}
	}
	return out
}

// Quantile estimates the q-quantile (0..1) of latency in milliseconds, by
// linear interpolation inside the bucket; NaN without samples.
func (c Counts) Quantile(q float64) float64 {
	var total uint64
	for _, n := range c.Latency {
		total += n
	}
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	var seen float64
	for i, n := range c.Latency {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			lo, hi := 0.0, 0.0
			if i > 0 {
				lo = LatencyBounds[i-1]
			}
			if i < len(LatencyBounds) {
				hi = LatencyBounds[i]
			} else {
				return LatencyBounds[len(LatencyBounds)-1]
			}
			return lo + (hi-lo)*(rank-seen)/float64(n)
		}
		seen += float64(n)
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

// ErrorRate is Errors/Requests, 0 without requests.
func (c Counts) ErrorRate() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Requests)
}

// Version is one version's cumulative statistics, in total and by route
// (the route template or path prefix the data plane matched).
//
// Total and Routes hold only the traffic of the weighted split: what the
// judges compare. Requests that did not take the split are counted in
// Unjudged by reason (Pinned, Sticky, Mirrored) and never judged: anyone
// able to pin requests could otherwise force a rollback with failing ones
// or dilute a regression with healthy ones.
type Version struct {
	Total    Counts            `json:"total"`
	Routes   map[string]Counts `json:"routes,omitempty"`
	Unjudged map[string]Counts `json:"unjudged,omitempty"`
}

// Reasons a request is counted in Version.Unjudged.
const (
	// Pinned: a version header chose the version.
	Pinned = "pinned"
	// Sticky: a sticky key (header or cookie) chose the version.
	Sticky = "sticky"
	// Mirrored: a copy of a request sent to a version besides the one
	// that answered it.
	Mirrored = "mirrored"
)

// Sub returns v minus an earlier snapshot.
func (v Version) Sub(earlier Version) Version {
	return Version{Total: v.Total.Sub(earlier.Total), Routes: subMap(v.Routes, earlier.Routes), Unjudged: subMap(v.Unjudged, earlier.Unjudged)}
}

func subMap(m, earlier map[string]Counts) map[string]Counts {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]Counts, len(m))
	for k, c := range m {
		out[k] = c.Sub(earlier[k])
	}
	return out
}

func addMap(a, b map[string]Counts) map[string]Counts {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make(map[string]Counts, len(a)+len(b))
	for k, c := range a {
		out[k] = c
	}
	for k, c := range b {
		out[k] = out[k].Add(c)
	}
	return out
}

// Snapshot is a service's statistics by version at one moment.
type Snapshot map[string]Version

// Add returns the sum of two versions' statistics (the same version in
// two clusters, say).
func (v Version) Add(o Version) Version {
	return Version{Total: v.Total.Add(o.Total), Routes: addMap(v.Routes, o.Routes), Unjudged: addMap(v.Unjudged, o.Unjudged)}
}

// Watch sends snapshot() every interval until ctx ends, so a judge or a
// page sees traffic with no scrape delay. A slow reader misses
// intermediate snapshots rather than blocking anything: the channel holds
// one, and counters are cumulative, so nothing is lost.
func Watch(ctx context.Context, every time.Duration, snapshot func() Snapshot) <-chan Snapshot {
	if every <= 0 {
		every = time.Second
	}
	ch := make(chan Snapshot, 1)
	go func() {
		defer close(ch)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			snap := snapshot()
			select {
			case <-ch: // drop the unread older snapshot
			default:
			}
			select {
			case ch <- snap:
			case <-ctx.Done():
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}
