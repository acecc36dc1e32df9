package main

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// Route is one endpoint of the simulated service and its share of requests.
type Route struct {
	Name  string
	Share float64
}

// Routes of the simulated service, as route templates (what kit reports
// and the default data plane keys its statistics by): a small route
// carries 2% of traffic.
var Routes = []Route{{"GET /v1/orders/{id}", 0.50}, {"GET /v1/items", 0.48}, {"POST /v1/pay", 0.02}}

// Behaviour is how a version answers on one route.
type Behaviour struct {
	ErrorRate    float64 // Bernoulli probability of a 5xx
	LatencyScale float64 // multiplies every latency
	// WrongRate is the probability that a 200 carries a wrong value (the
	// order's $.total changed): invisible to status codes and latency.
	WrongRate float64
}

// Stable latencies are log-normal with a 50 ms median and a 200 ms p99.
const (
	latencyMedianMs = 50
	latencySigma    = 0.596 // ln(200/50)/z(0.99)
	stableErrorRate = 0.005
)

// Traffic simulates a service at a fixed request rate split between a
// stable and a canary version by the router's weights, accumulating the
// cumulative per-version counters the gateway would report.
type Traffic struct {
	RPS            float64
	Stable, Canary string
	canary         func(route int) Behaviour
	rng            *rand.Rand
	counts         map[string]*stats.Version
	carry          float64
	// Per-version failed requests served, for the blast radius.
	Failed map[string]uint64
	// Per-version user requests served, and wrong answers (200 with a
	// changed field) served to users.
	Served, Wrong map[string]uint64
	// Shadow is the mirror's simulation (shadow.go); nil for a policy
	// that never mirrors.
	Shadow *Shadow
	// Env is what the cluster's datacenter adds for both versions: more
	// errors (ErrorRate added) and slower answers (LatencyScale).
	Env Behaviour
	// Drift, when set, multiplies both versions' latency and error rate
	// by a factor of the simulated second: load rising over the release.
	Drift func(sec int) float64
	sec   int
}

// NewTraffic returns a simulator; canary gives the canary's behaviour by
// route index (stable always answers with the base behaviour).
func NewTraffic(rps float64, seed uint64, canary func(route int) Behaviour) *Traffic {
	return &Traffic{RPS: rps, Stable: "v1", Canary: "v2", canary: canary,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), counts: map[string]*stats.Version{}, Failed: map[string]uint64{},
		Served: map[string]uint64{}, Wrong: map[string]uint64{}}
}

func (t *Traffic) version(v string) *stats.Version {
	c, ok := t.counts[v]
	if !ok {
		c = &stats.Version{Total: stats.Counts{Latency: make([]uint64, stats.NumBuckets)}, Routes: map[string]stats.Counts{}}
		t.counts[v] = c
	}
	return c
}

// Second simulates one second of traffic with canaryPPM parts per million
// going to the canary; while m is set, the mirror copies stable's
// mirrorable requests as the gateway does.
func (t *Traffic) Second(canaryPPM int64, m *traffic.Mirror) {
	t.carry += t.RPS
	n := int(t.carry)
	t.carry -= float64(n)
	w := float64(canaryPPM) / 1e6
	base := Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1}
	t.sec++
	drift := 1.0
	if t.Drift != nil {
		drift = t.Drift(t.sec)
	}
	envScale := t.Env.LatencyScale
	if envScale == 0 {
		envScale = 1
	}
	for range n {
		ri := t.pickRoute()
		v, b := t.Stable, base
		if t.rng.Float64() < w {
			v, b = t.Canary, t.canary(ri)
		}
		failed := t.rng.Float64() < (b.ErrorRate+t.Env.ErrorRate)*drift
		// Scales are rounded to 1% so the lookup tables stay few.
		scale := math.Round(100*b.LatencyScale*envScale*drift) / 100
		bucket := latencyTable(scale)[t.rng.Uint32()>>16]
		ver := t.version(v)
		observe(&ver.Total, failed, bucket)
		rc := ver.Routes[Routes[ri].Name]
		observe(&rc, failed, bucket)
		ver.Routes[Routes[ri].Name] = rc
		t.Served[v]++
		if failed {
			t.Failed[v]++
		} else if b.WrongRate > 0 && t.rng.Float64() < b.WrongRate {
			t.Wrong[v]++
		}
		if v == t.Stable && m != nil && t.Shadow != nil {
			t.Shadow.mirror(ri, m, drift)
		}
	}
}

func (t *Traffic) pickRoute() int {
	u := t.rng.Float64()
	for i, r := range Routes {
		if u < r.Share {
			return i
		}
		u -= r.Share
	}
	return len(Routes) - 1
}

func observe(c *stats.Counts, failed bool, bucket uint8) {
	if c.Latency == nil {
		c.Latency = make([]uint64, stats.NumBuckets)
	}
	c.Requests++
	if failed {
		c.Errors++
	}
	c.Latency[bucket]++
}

// Snapshot implements release.MetricSource with deep copies.
func (t *Traffic) Snapshot(context.Context, string) (stats.Snapshot, error) {
	out := stats.Snapshot{}
	for v, c := range t.counts {
		cp := stats.Version{Total: copyCounts(c.Total), Routes: map[string]stats.Counts{}}
		for r, rc := range c.Routes {
			cp.Routes[r] = copyCounts(rc)
		}
		out[v] = cp
	}
	return out, nil
}

// Window returns a version's counters (not copied), for the baseline policy.
func (t *Traffic) Window(v string) stats.Version { return *t.version(v) }

func copyCounts(c stats.Counts) stats.Counts {
	c.Latency = append([]uint64(nil), c.Latency...)
	return c
}

var (
	tablesMu sync.Mutex
	tables   = map[float64]*[65536]uint8{}
)

// latencyTable maps 16 random bits to a latency bucket of the log-normal
// distribution scaled by scale: an inverse-CDF lookup with a resolution of
// 1/65536, fine enough for a p99.
func latencyTable(scale float64) *[65536]uint8 {
	tablesMu.Lock()
	defer tablesMu.Unlock()
	if t, ok := tables[scale]; ok {
		return t
	}
	t := new([65536]uint8)
	mu := math.Log(latencyMedianMs * scale)
	for i := range t {
		u := (float64(i) + 0.5) / 65536
		z := math.Sqrt2 * math.Erfinv(2*u-1)
		t[i] = uint8(stats.Bucket(math.Exp(mu + latencySigma*z)))
	}
	tables[scale] = t
	return t
}
