package metrics

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// The scraper is Pave's own scrape loop, a close copy of Prometheus'
// scrape package's semantics (scrape/scrape.go) without its per-scrape
// OpenTelemetry wrapper: bench/metrics measured that wrapper (otelhttp
// transport, spans, attribute sets) at 8-15% of the store's CPU per
// sample, all of the gap to Prometheus. Everything a scrape stores goes
// through Prometheus' own parsers (model/textparse) into the TSDB's
// appender; what lives here is the loop: when to scrape, the HTTP
// request, the labels of a series, staleness, limits and the report
// series.

// jobs are the scrape pools Pave runs. A kit service labels its series
// with its own version; honouring its labels keeps the name `version`
// (not exported_version) for the dashboard. Pave's own targets keep the
// labels Pave sets.
var jobs = map[string]bool{JobServices: true, JobGateway: false, JobPave: false}

// scraper runs one loop per target of every job.
type scraper struct {
	interval, timeout time.Duration
	sampleLimit       int
	app               storage.AppendableV2
	client            *http.Client
	log               *slog.Logger
	seed              uint64 // spreads this host's offsets, as Prometheus' offsetSeed

	exceededSampleLimit prometheus.Counter

	mu    sync.Mutex
	ctx   context.Context // nil until run
	want  map[string][]Target
	loops map[string]map[uint64]*scrapeLoop // job → target hash → loop
	wg    sync.WaitGroup
}

func newScraper(o Options, app storage.AppendableV2, reg prometheus.Registerer) *scraper {
	host, _ := os.Hostname()
	h := fnv.New64a()
	h.Write([]byte(host))
	s := &scraper{
		interval: o.ScrapeInterval, timeout: min(o.ScrapeInterval, 10*time.Second),
		sampleLimit: o.SampleLimit, app: app, log: o.Log.With("component", "scrape"), seed: h.Sum64(),
		client: &http.Client{Transport: newScrapeTransport()},
		// The name Prometheus exports, which Pave's own alert on the
		// store (internal/alert/slo) reads.
		exceededSampleLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prometheus_target_scrapes_exceeded_sample_limit_total",
			Help: "Total number of scrapes that hit the sample limit and were rejected.",
		}),
		want:  map[string][]Target{},
		loops: map[string]map[uint64]*scrapeLoop{},
	}
	reg.MustRegister(s.exceededSampleLimit)
	return s
}

// newScrapeTransport is Prometheus' scrape transport (common/config's
// defaults): keep-alive connections, one per target, kept five minutes;
// compression is asked for and decoded by the loop itself, which keeps a
// gzip reader per target instead of one per response.
func newScrapeTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          20000,
		MaxIdleConnsPerHost:   1000,
		IdleConnTimeout:       5 * time.Minute,
		DisableCompression:    true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// setTargets replaces the targets of job: loops of targets that stay
// keep running (and their caches), new ones start, gone ones stop and
// mark their series stale.
func (s *scraper) setTargets(job string, ts []Target) {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b Target) int { return strings.Compare(a.Address+a.Path, b.Address+b.Path) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.want[job]; ok && slices.EqualFunc(old, ts, func(a, b Target) bool {
		return a.Address == b.Address && a.Path == b.Path && maps.Equal(a.Labels, b.Labels)
	}) {
		return // a poll that changed nothing
	}
	s.want[job] = ts
	if s.ctx != nil {
		s.sync(job)
	}
}

// sync starts and stops job's loops to match s.want[job]. s.mu is held.
func (s *scraper) sync(job string) {
	honor, ok := jobs[job]
	if !ok {
		s.log.Error("targets of an unknown job ignored", "job", job)
		return
	}
	loops := s.loops[job]
	if loops == nil {
		loops = map[uint64]*scrapeLoop{}
		s.loops[job] = loops
	}
	keep := map[uint64]bool{}
	for _, t := range s.want[job] {
		st := newScrapeTarget(job, honor, t, s.interval, s.timeout)
		keep[st.hash] = true
		if _, running := loops[st.hash]; running {
			continue
		}
		l := newScrapeLoop(s, st)
		loops[st.hash] = l
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run()
		}()
	}
	for h, l := range loops {
		if !keep[h] {
			l.cancel()
			delete(loops, h)
		}
	}
}

// run scrapes until ctx ends, then waits for every loop to stop.
func (s *scraper) run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	for job := range s.want {
		s.sync(job)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

// active lists the targets being scraped, per job.
func (s *scraper) active() map[string][]*scrapeTarget {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]*scrapeTarget{}
	for job, loops := range s.loops {
		for _, l := range loops {
			out[job] = append(out[job], l.target)
		}
	}
	return out
}

// scrapeTarget is one endpoint of one job: where to scrape it, the labels
// its series get, and the outcome of its last scrape.
type scrapeTarget struct {
	job        string
	url        string
	honor      bool
	discovered labels.Labels // as Prometheus' service discovery would hand them over
	labels     labels.Labels // job, instance and the runtime's labels
	hash       uint64

	mu           sync.Mutex
	health       string
	lastErr      error
	lastScrape   time.Time
	lastDuration time.Duration
	// meta is what the target's last scrapes said of each metric family
	// (# TYPE, # HELP, # UNIT). Only the target's loop writes it, under
	// mu; the API reads it under mu.
	meta map[string]*metaEntry
}

type metaEntry struct {
	typ      model.MetricType
	help     string
	unit     string
	lastIter uint64 // loop-only
}

// MetricMetadata is what a target said of one metric family.
type MetricMetadata struct {
	MetricFamily string
	Type         model.MetricType
	Help, Unit   string
}

// newScrapeTarget builds the labels of t as Prometheus' target labelling
// does (scrape/target.go PopulateLabels, no relabelling): the job, the
// instance defaulting to the address, and the runtime's labels; labels
// starting with __ and empty ones are not kept.
func newScrapeTarget(job string, honor bool, t Target, interval, timeout time.Duration) *scrapeTarget {
	path := t.Path
	if path == "" {
		path = "/metrics"
	}
	d := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range t.Labels {
		d.Set(k, v)
	}
	for _, l := range []labels.Label{
		{Name: model.JobLabel, Value: job},
		{Name: model.AddressLabel, Value: t.Address},
		{Name: model.MetricsPathLabel, Value: path},
		{Name: model.SchemeLabel, Value: "http"},
		{Name: model.ScrapeIntervalLabel, Value: model.Duration(interval).String()},
		{Name: model.ScrapeTimeoutLabel, Value: model.Duration(timeout).String()},
	} {
		if d.Get(l.Name) == "" {
			d.Set(l.Name, l.Value)
		}
	}
	discovered := d.Labels()
	if d.Get(model.InstanceLabel) == "" {
		d.Set(model.InstanceLabel, t.Address)
	}
	discovered.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, model.ReservedLabelPrefix) {
			d.Del(l.Name)
		}
	})
	st := &scrapeTarget{
		job: job, honor: honor, discovered: discovered, labels: d.Labels(),
		url:    "http://" + t.Address + path,
		health: "unknown", meta: map[string]*metaEntry{},
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%016d", st.labels.Hash())
	h.Write([]byte(st.url))
	st.hash = h.Sum64()
	return st
}

// offset is how long the target's loop waits before its first scrape:
// every target is scraped at its own fixed point in the interval, as in
// Prometheus (Target.offset), so the scrapes spread over the interval.
func (t *scrapeTarget) offset(interval time.Duration, seed uint64) time.Duration {
	now := time.Now().UnixNano()
	base := int64(interval) - now%int64(interval)
	next := base + int64((t.hash^seed)%uint64(interval))
	if next > int64(interval) {
		next -= int64(interval)
	}
	return time.Duration(next)
}

func (t *scrapeTarget) report(start time.Time, d time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.health, t.lastErr, t.lastScrape, t.lastDuration = "up", err, start, d
	if err != nil {
		t.health = "down"
	}
}

// status is the target's last scrape: health, error, when, how long.
func (t *scrapeTarget) status() (health string, err error, last time.Time, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.health, t.lastErr, t.lastScrape, t.lastDuration
}

// metadata lists what the target said of metric (all families if "").
func (t *scrapeTarget) metadata(metric string) []MetricMetadata {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []MetricMetadata
	for name, e := range t.meta {
		if metric == "" || metric == name {
			out = append(out, MetricMetadata{MetricFamily: name, Type: e.typ, Help: e.help, Unit: e.unit})
		}
	}
	slices.SortFunc(out, func(a, b MetricMetadata) int { return strings.Compare(a.MetricFamily, b.MetricFamily) })
	return out
}
