package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// sim is the simulated world of many services: a router and a target that
// answer at once, and a metric source whose counters grow with wall time
// at a request rate split by the router's weights, with the noise of real
// traffic (Poisson request counts, binomial errors, log-normal latency).
// One sim serves every replica (over HTTP in the failover run), as one
// mesh and one Prometheus would.
type sim struct {
	rps float64
	// bad is the error rate of canaries whose version starts with "bad".
	bad float64

	mu      sync.Mutex
	rng     *rand.Rand
	weights map[string]traffic.Weights
	counts  map[string]map[string]*stats.Version // service → version
	last    map[string]time.Time
	history []change // every SetWeights, in order
}

// change is one SetWeights the router received.
type change struct {
	Time    time.Time       `json:"time"`
	Replica string          `json:"replica"`
	Service string          `json:"service"`
	Weights traffic.Weights `json:"weights"`
}

const route = "GET /v1/orders/{id}"

// latencyBuckets is the share of requests in each histogram bucket for a
// log-normal latency with a 50 ms median and a 200 ms p99.
var latencyBuckets = func() []float64 {
	rng := rand.New(rand.NewPCG(11, 13))
	p := make([]float64, stats.NumBuckets)
	const n = 1 << 20
	for range n {
		p[stats.Bucket(50*math.Exp(0.596*rng.NormFloat64()))] += 1.0 / n
	}
	return p
}()

func newSim(rps float64, seed uint64) *sim {
	return &sim{rps: rps, bad: 0.2, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		weights: map[string]traffic.Weights{}, counts: map[string]map[string]*stats.Version{}, last: map[string]time.Time{}}
}

// seed gives a service its stable version at 100%.
func (s *sim) seed(service, stable string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.weights[service] = traffic.Weights{stable: traffic.Total}
	s.last[service] = time.Now()
}

func (s *sim) setWeights(replica, service string, w traffic.Weights) error {
	if err := w.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(service, time.Now())
	cp := traffic.Weights{}
	for k, v := range w {
		cp[k] = v
	}
	s.weights[service] = cp
	s.history = append(s.history, change{Time: time.Now(), Replica: replica, Service: service, Weights: cp})
	return nil
}

func (s *sim) getWeights(service string) traffic.Weights {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := traffic.Weights{}
	for k, v := range s.weights[service] {
		out[k] = v
	}
	return out
}

func (s *sim) changes() []change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]change(nil), s.history...)
}

// advance adds the traffic of the time since the last call.
func (s *sim) advance(service string, now time.Time) {
	last, ok := s.last[service]
	s.last[service] = now
	if !ok {
		return
	}
	n := s.poisson(s.rps * now.Sub(last).Seconds())
	if n == 0 {
		return
	}
	w := s.weights[service]
	if s.counts[service] == nil {
		s.counts[service] = map[string]*stats.Version{}
	}
	for _, v := range w.Versions() {
		k := uint64(math.Round(float64(n) * float64(w[v]) / float64(traffic.Total)))
		if k == 0 {
			continue
		}
		rate := 0.005
		if strings.HasPrefix(v, "bad") {
			rate = s.bad
		}
		c := s.counts[service][v]
		if c == nil {
			c = &stats.Version{Total: stats.Counts{Latency: make([]uint64, stats.NumBuckets)}, Routes: map[string]stats.Counts{}}
			s.counts[service][v] = c
		}
		errs := s.binomial(k, rate)
		c.Total.Requests += k
		c.Total.Errors += errs
		// Latency: log-normal, median 50 ms, p99 200 ms: the k requests
		// spread over the histogram's buckets as a multinomial draw, so
		// a window's counts vary as k independent requests' would.
		left, rest := k, 1.0
		for b, p := range latencyBuckets {
			if left == 0 || rest <= 0 {
				break
			}
			m := s.binomial(left, min(1, p/rest))
			c.Total.Latency[b] += m
			left -= m
			rest -= p
		}
		c.Total.Latency[len(latencyBuckets)-1] += left
		rc := c.Routes[route]
		rc.Requests, rc.Errors = c.Total.Requests, c.Total.Errors
		rc.Latency = append(rc.Latency[:0], c.Total.Latency...)
		c.Routes[route] = rc
	}
}

// poisson draws exactly for small means (Knuth) and by the normal
// approximation for large ones.
func (s *sim) poisson(mean float64) uint64 {
	if mean <= 0 {
		return 0
	}
	if mean < 30 {
		l, k, p := math.Exp(-mean), uint64(0), 1.0
		for {
			p *= s.rng.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	return uint64(max(0, math.Round(mean+math.Sqrt(mean)*s.rng.NormFloat64())))
}

// binomial draws n Bernoulli(p) trials: exactly when few, else by the
// normal approximation.
func (s *sim) binomial(n uint64, p float64) uint64 {
	if p >= 1 {
		return n
	}
	if mean := float64(n) * p; n > 64 && mean < 30 && p < 0.05 {
		return min(n, s.poisson(mean))
	}
	if n <= 64 {
		var k uint64
		for range n {
			if s.rng.Float64() < p {
				k++
			}
		}
		return k
	}
	mean := float64(n) * p
	return uint64(min(float64(n), max(0, math.Round(mean+math.Sqrt(mean*(1-p))*s.rng.NormFloat64()))))
}

func (s *sim) snapshot(service string) stats.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(service, time.Now())
	out := stats.Snapshot{}
	for v, c := range s.counts[service] {
		cp := stats.Version{Total: c.Total, Routes: map[string]stats.Counts{}}
		cp.Total.Latency = append([]uint64(nil), c.Total.Latency...)
		for r, rc := range c.Routes {
			rc.Latency = append([]uint64(nil), rc.Latency...)
			cp.Routes[r] = rc
		}
		out[v] = cp
	}
	return out
}

// simCluster is the sim as the release engine's seams, in process.
type simCluster struct {
	s       *sim
	replica string
}

func (c simCluster) SetWeights(_ context.Context, service string, w traffic.Weights) error {
	return c.s.setWeights(c.replica, service, w)
}

func (c simCluster) Weights(_ context.Context, service string) (traffic.Weights, error) {
	return c.s.getWeights(service), nil
}

func (c simCluster) Deploy(context.Context, release.Deployment) error { return nil }
func (c simCluster) Remove(context.Context, string, string) error     { return nil }
func (c simCluster) Status(context.Context, string, string) (bool, int, int, error) {
	return true, 2, 2, nil
}

func (c simCluster) Snapshot(_ context.Context, service string) (stats.Snapshot, error) {
	return c.s.snapshot(service), nil
}

func (c simCluster) fleet() release.Clusters {
	return release.Clusters{{Name: release.DefaultCluster, Router: c, Target: c, Metrics: c}}
}

// ServeHTTP serves the sim to replicas in other processes.
func (s *sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	service := r.URL.Query().Get("service")
	switch r.URL.Path {
	case "/weights":
		if r.Method == http.MethodPost {
			var wt traffic.Weights
			if err := json.NewDecoder(r.Body).Decode(&wt); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := s.setWeights(r.Header.Get("X-Replica"), service, wt); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			return
		}
		_ = json.NewEncoder(w).Encode(s.getWeights(service))
	case "/snapshot":
		_ = json.NewEncoder(w).Encode(s.snapshot(service))
	default:
		http.NotFound(w, r)
	}
}

// remoteCluster is the sim as seams, over HTTP (a replica's view).
type remoteCluster struct {
	url, replica string
	hc           *http.Client
}

func (c remoteCluster) do(ctx context.Context, method, path, service string, in, out any) error {
	var body strings.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = *strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path+"?service="+service, &body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Replica", c.replica)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sim %s: %s", path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (c remoteCluster) SetWeights(ctx context.Context, service string, w traffic.Weights) error {
	return c.do(ctx, http.MethodPost, "/weights", service, w, nil)
}

func (c remoteCluster) Weights(ctx context.Context, service string) (traffic.Weights, error) {
	var w traffic.Weights
	err := c.do(ctx, http.MethodGet, "/weights", service, nil, &w)
	return w, err
}

func (c remoteCluster) Deploy(context.Context, release.Deployment) error { return nil }
func (c remoteCluster) Remove(context.Context, string, string) error     { return nil }
func (c remoteCluster) Status(context.Context, string, string) (bool, int, int, error) {
	return true, 2, 2, nil
}

func (c remoteCluster) Snapshot(ctx context.Context, service string) (stats.Snapshot, error) {
	var s stats.Snapshot
	err := c.do(ctx, http.MethodGet, "/snapshot", service, nil, &s)
	return s, err
}

func (c remoteCluster) fleet() release.Clusters {
	return release.Clusters{{Name: release.DefaultCluster, Router: c, Target: c, Metrics: c}}
}
