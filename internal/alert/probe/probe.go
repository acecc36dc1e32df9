// Package probe runs the synthetic checks of the services' `probes:`
// (.pave.yaml): an HTTP request through each cluster's gateway every
// interval, its result kept as the gauges pave_probe_success and
// pave_probe_duration_seconds{service,cluster,route}. The metrics store
// scrapes them from Pave's own /metrics and the rules of internal/alert/slo
// page when a probe fails for a while, so a service without traffic still
// pages when it is down.
package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/alert/slo"
	"github.com/prometheus/client_golang/prometheus"
)

// Check is one probe of one service in one cluster.
type Check struct {
	Service string
	Cluster string
	// URL is the cluster's gateway, e.g. http://127.0.0.1:8080; the probe's
	// path is appended as a client would send it.
	URL string
	// Host is the Host header the gateway routes the service by; empty
	// sends the URL's host.
	Host  string
	Probe slo.Probe
}

// Gateway is a cluster's gateway as Checks sees it.
type Gateway struct {
	Cluster string
	URL     string
	Host    string
}

// Checks expands a service's probes over the gateways of the clusters each
// probe applies to (all, unless the probe lists clusters).
func Checks(svc slo.Service, gateways []Gateway) []Check {
	var out []Check
	for _, p := range svc.Probes {
		for _, g := range gateways {
			if len(p.Clusters) > 0 && !contains(p.Clusters, g.Cluster) {
				continue
			}
			out = append(out, Check{Service: svc.Name, Cluster: g.Cluster, URL: g.URL, Host: g.Host, Probe: p})
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

type key struct{ service, cluster, route string }

func (c Check) key() key { return key{c.Service, c.Cluster, c.Probe.Route()} }

func (c Check) labels() []string { return []string{c.Service, c.Cluster, c.Probe.Route()} }

// Prober runs checks and exports their results.
type Prober struct {
	client   *http.Client
	log      *slog.Logger
	success  *prometheus.GaugeVec
	duration *prometheus.GaugeVec

	mu      sync.Mutex
	ctx     context.Context // Run's; nil before Run and after it ends
	checks  map[key]Check
	running map[key]context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a prober whose gauges are registered on reg. log may be nil.
func New(reg prometheus.Registerer, log *slog.Logger) (*Prober, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := []string{"service", "cluster", "route"}
	p := &Prober{
		// No redirects: a probe expecting 302 must see the 302, and a
		// redirect off the gateway is not the service answering.
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:    log,
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pave_probe_success",
			Help: "1 if the last synthetic check of the route through the cluster's gateway got the expected status in time, else 0."}, labels),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pave_probe_duration_seconds",
			Help: "Duration of the last synthetic check, until the answer's headers or the failure."}, labels),
		checks:  map[key]Check{},
		running: map[key]context.CancelFunc{},
	}
	for _, c := range []prometheus.Collector{p.success, p.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("probe: register metrics: %w", err)
		}
	}
	return p, nil
}

// Set replaces the checks of service: checks no longer listed stop and their
// series go, changed ones restart, new ones start (at once, if Run runs).
func (p *Prober) Set(service string, checks []Check) error {
	want := map[key]Check{}
	for i, c := range checks {
		if c.Service != service {
			return fmt.Errorf("probe: checks[%d] is of service %q, not %q", i, c.Service, service)
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("probe: %s in %s: gateway URL %q is not an http(s) URL", c.Probe.Route(), c.Cluster, c.URL)
		}
		if c.Probe.Interval <= 0 || c.Probe.Timeout <= 0 || c.Probe.Method == "" || c.Probe.ExpectStatus == 0 {
			return fmt.Errorf("probe: %s in %s: the probe lacks its defaults (read it with slo.Read)", c.Probe.Route(), c.Cluster)
		}
		want[c.key()] = c
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, old := range p.checks {
		if k.service != service {
			continue
		}
		if c, ok := want[k]; ok && equal(c, old) {
			delete(want, k)
			continue
		}
		p.stopLocked(k)
		delete(p.checks, k)
	}
	for k, c := range want {
		p.checks[k] = c
		p.startLocked(k)
	}
	return nil
}

func equal(a, b Check) bool {
	return a.URL == b.URL && a.Host == b.Host && a.Probe.Method == b.Probe.Method && a.Probe.Path == b.Probe.Path &&
		a.Probe.ExpectStatus == b.Probe.ExpectStatus && a.Probe.Interval == b.Probe.Interval && a.Probe.Timeout == b.Probe.Timeout
}

// Run runs the checks until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.ctx != nil {
		p.mu.Unlock()
		return errors.New("probe: Run called twice")
	}
	p.ctx = ctx
	for k := range p.checks {
		p.startLocked(k)
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	for k := range p.running {
		p.running[k]()
		delete(p.running, k)
	}
	p.ctx = nil
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

func (p *Prober) startLocked(k key) {
	if p.ctx == nil {
		return
	}
	if cancel, ok := p.running[k]; ok {
		cancel()
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.running[k] = cancel
	c := p.checks[k]
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(ctx, c)
	}()
}

func (p *Prober) stopLocked(k key) {
	if cancel, ok := p.running[k]; ok {
		cancel()
		delete(p.running, k)
	}
	c := p.checks[k]
	p.success.DeleteLabelValues(c.labels()...)
	p.duration.DeleteLabelValues(c.labels()...)
}

// loop checks at once, then every interval, until ctx ends.
func (p *Prober) loop(ctx context.Context, c Check) {
	t := time.NewTicker(time.Duration(c.Probe.Interval))
	defer t.Stop()
	for {
		ok, took, err := p.check(ctx, c)
		if ctx.Err() != nil {
			return // stopped mid-check: the result is not the service's
		}
		v := 0.0
		if ok {
			v = 1
		} else {
			p.log.Warn("probe failed", "service", c.Service, "cluster", c.Cluster, "route", c.Probe.Route(), "err", err)
		}
		p.success.WithLabelValues(c.labels()...).Set(v)
		p.duration.WithLabelValues(c.labels()...).Set(took.Seconds())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check sends one request; ok means the expected status within the timeout.
func (p *Prober) check(ctx context.Context, c Check) (ok bool, took time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.Probe.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.Probe.Method, strings.TrimRight(c.URL, "/")+c.Probe.Path, nil)
	if err != nil {
		return false, 0, err
	}
	if c.Host != "" {
		req.Host = c.Host
	}
	req.Header.Set("User-Agent", "pave-probe")
	start := time.Now()
	resp, err := p.client.Do(req)
	took = time.Since(start)
	if err != nil {
		return false, took, err
	}
	// Read a little so the connection is reused; the body is not judged.
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	if resp.StatusCode != c.Probe.ExpectStatus {
		return false, took, fmt.Errorf("status %d, want %d", resp.StatusCode, c.Probe.ExpectStatus)
	}
	return true, took, nil
}
