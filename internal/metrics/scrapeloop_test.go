package metrics

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// The scrape loop's semantics, one scrape at a time, against a recording
// appender (the tests in store_test.go and beside it run it against the
// real TSDB and Prometheus' tools).

type sample struct {
	lset labels.Labels
	ref  storage.SeriesRef // the reference the loop passed
	t    int64
	v    float64
}

// recorder is an AppendableV2 keeping each committed batch.
type recorder struct {
	mu      sync.Mutex
	commits [][]sample
}

func (r *recorder) AppenderV2(context.Context) storage.AppenderV2 { return &recApp{r: r} }

func (r *recorder) last(t *testing.T) []sample {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.commits) == 0 {
		t.Fatal("nothing committed")
	}
	return r.commits[len(r.commits)-1]
}

type recApp struct {
	r       *recorder
	pending []sample
}

func (a *recApp) Append(ref storage.SeriesRef, ls labels.Labels, _, t int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	a.pending = append(a.pending, sample{lset: ls, ref: ref, t: t, v: v})
	return storage.SeriesRef(ls.Hash()), nil
}

func (a *recApp) Commit() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	a.r.commits = append(a.r.commits, a.pending)
	return nil
}

func (a *recApp) Rollback() error { a.pending = nil; return nil }

// exposition is a target whose body, content type and status a test sets.
type exposition struct {
	mu          sync.Mutex
	body        string
	contentType string
	status      int
	gzip        bool
}

func (e *exposition) set(body string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.body = body
}

func (e *exposition) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.contentType != "" {
		w.Header().Set("Content-Type", e.contentType)
	} else {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	}
	if e.status != 0 {
		w.WriteHeader(e.status)
	}
	if e.gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		_, _ = io.WriteString(gz, e.body)
		_ = gz.Close()
		return
	}
	_, _ = io.WriteString(w, e.body)
}

func newTestScraper(t *testing.T, o Options) (*scraper, *recorder) {
	t.Helper()
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = time.Minute
	}
	if o.SampleLimit == 0 {
		o.SampleLimit = DefaultSampleLimit
	}
	o.Log = slog.New(slog.DiscardHandler)
	rec := &recorder{}
	s := newScraper(o, rec, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.ctx = ctx
	return s, rec
}

// testLoop is a loop of one target serving e, not running: the test
// calls scrapeAndReport itself.
func testLoop(t *testing.T, s *scraper, job string, e http.Handler, lbls map[string]string) *scrapeLoop {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	st := newScrapeTarget(job, jobs[job], Target{Address: strings.TrimPrefix(srv.URL, "http://"), Labels: lbls}, s.interval, s.timeout)
	return newScrapeLoop(s, st)
}

// byName indexes a batch by metric name (first series of each name).
func byName(batch []sample) map[string]sample {
	out := map[string]sample{}
	for _, s := range batch {
		n := s.lset.Get(model.MetricNameLabel)
		if _, ok := out[n]; !ok {
			out[n] = s
		}
	}
	return out
}

func series(batch []sample, lsets string) (sample, bool) {
	for _, s := range batch {
		if s.lset.String() == lsets {
			return s, true
		}
	}
	return sample{}, false
}

func TestScrapeLoopMarksVanishedSeriesStale(t *testing.T) {
	s, rec := newTestScraper(t, Options{})
	e := &exposition{body: "a 1\nb 2\nc 3 1000\n"} // c has its own timestamp
	l := testLoop(t, s, JobGateway, e, nil)
	t0 := time.UnixMilli(1_700_000_000_000)

	l.scrapeAndReport(t0)
	first := rec.last(t)
	if n := byName(first); n["a"].v != 1 || n["b"].v != 2 || n["c"].t != 1000 || n["up"].v != 1 || n["scrape_samples_scraped"].v != 3 || n["scrape_series_added"].v != 3 {
		t.Fatalf("first scrape: %v", first)
	}

	e.set("a 5\n")
	l.scrapeAndReport(t0.Add(time.Minute))
	n := byName(rec.last(t))
	if !value.IsStaleNaN(n["b"].v) || n["b"].t != t0.Add(time.Minute).UnixMilli() {
		t.Errorf("b vanished: want a stale marker at the scrape's time, got %+v", n["b"])
	}
	if _, ok := n["c"]; ok {
		t.Errorf("c carried its own timestamp: no stale marker, as Prometheus; got %+v", n["c"])
	}
	if n["a"].v != 5 || n["a"].ref == 0 {
		t.Errorf("a should be appended with its cached reference: %+v", n["a"])
	}
	if n["scrape_series_added"].v != 0 {
		t.Errorf("no new series in the second scrape: %v", n["scrape_series_added"])
	}

	// A failed scrape marks what the last one had stale, once.
	e.mu.Lock()
	e.status = http.StatusInternalServerError
	e.mu.Unlock()
	l.scrapeAndReport(t0.Add(2 * time.Minute))
	n = byName(rec.last(t))
	if !value.IsStaleNaN(n["a"].v) || n["up"].v != 0 {
		t.Errorf("failed scrape: a should be stale and up 0: %v", rec.last(t))
	}
	if _, ok := n["b"]; ok {
		t.Errorf("b was already marked stale: %+v", n["b"])
	}
	if health, err, _, _ := l.target.status(); health != "down" || err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("target after an HTTP 500: %s %v", health, err)
	}
	l.scrapeAndReport(t0.Add(3 * time.Minute))
	for _, smp := range rec.last(t) {
		if value.IsStaleNaN(smp.v) {
			t.Errorf("a second failed scrape marks nothing stale again: %v", smp)
		}
	}

	// Back: values again, nothing stale.
	e.mu.Lock()
	e.status = 0
	e.body = "a 6\nb 7\n"
	e.mu.Unlock()
	l.scrapeAndReport(t0.Add(4 * time.Minute))
	n = byName(rec.last(t))
	if n["a"].v != 6 || n["b"].v != 7 || n["up"].v != 1 {
		t.Errorf("after recovery: %v", rec.last(t))
	}
}

func TestScrapeLoopSampleLimitKeepsNothingOfTheScrape(t *testing.T) {
	s, rec := newTestScraper(t, Options{SampleLimit: 3})
	e := &exposition{body: "a 1\nb 1\n"}
	l := testLoop(t, s, JobGateway, e, nil)
	t0 := time.UnixMilli(1_700_000_000_000)
	l.scrapeAndReport(t0)

	e.set("a 1\nb 1\nc 1\nd 1\ne 1\n")
	l.scrapeAndReport(t0.Add(time.Minute))
	batch := rec.last(t)
	n := byName(batch)
	for _, name := range []string{"c", "d", "e"} {
		if _, ok := n[name]; ok {
			t.Errorf("%s of the scrape over the limit was kept", name)
		}
	}
	if !value.IsStaleNaN(n["a"].v) || !value.IsStaleNaN(n["b"].v) {
		t.Errorf("the series of the last good scrape should be stale: %v", batch)
	}
	if n["up"].v != 0 || n["scrape_samples_scraped"].v != 5 {
		t.Errorf("report of the scrape over the limit: %v", batch)
	}
	if _, err, _, _ := l.target.status(); err == nil || err.Error() != "sample limit exceeded" {
		t.Errorf("last error: %v, want Prometheus' \"sample limit exceeded\"", err)
	}
	if v := testutil.ToFloat64(s.exceededSampleLimit); v != 1 {
		t.Errorf("prometheus_target_scrapes_exceeded_sample_limit_total = %v, want 1", v)
	}
}

func TestScrapeLoopTimesOut(t *testing.T) {
	s, rec := newTestScraper(t, Options{ScrapeInterval: 300 * time.Millisecond}) // timeout 300ms
	release := make(chan struct{})
	hang := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	l := testLoop(t, s, JobGateway, hang, nil)
	t.Cleanup(func() { close(release) })
	l.scrapeAndReport(time.Now())
	health, err, _, d := l.target.status()
	if health != "down" || err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("a target that never answers: %s %v", health, err)
	}
	if d < 300*time.Millisecond || d > 10*time.Second {
		t.Errorf("the scrape took %v, want about the 300ms timeout", d)
	}
	if n := byName(rec.last(t)); n["up"].v != 0 || n["scrape_duration_seconds"].v < 0.3 {
		t.Errorf("report: %v", rec.last(t))
	}
}

func TestScrapeLoopGarbageAndMissingContentType(t *testing.T) {
	for name, e := range map[string]*exposition{
		"garbage":         {body: "this is { not the exposition format\n"},
		"no content type": {body: "a 1\n", contentType: "application/x-unknown"},
		"no metric name":  {body: "{a=\"1\"} 1\n"},
	} {
		t.Run(name, func(t *testing.T) {
			s, rec := newTestScraper(t, Options{})
			l := testLoop(t, s, JobGateway, e, nil)
			l.scrapeAndReport(time.Now())
			batch := rec.last(t)
			if len(batch) != len(reportNames) {
				t.Errorf("only the report series should be stored: %v", batch)
			}
			if health, err, _, _ := l.target.status(); health != "down" || err == nil {
				t.Errorf("%s: %s %v", name, health, err)
			}
		})
	}
}

func TestScrapeLoopHonorLabels(t *testing.T) {
	body := "m{job=\"x\",instance=\"i\",version=\"v9\"} 1\nn{job=\"x\",exported_job=\"y\"} 1\n"
	tl := map[string]string{"version": "v1", "instance": "a-0"}
	t0 := time.UnixMilli(1_700_000_000_000)

	s, rec := newTestScraper(t, Options{})
	testLoop(t, s, JobServices, &exposition{body: body}, tl).scrapeAndReport(t0) // honors
	batch := rec.last(t)
	if _, ok := series(batch, `{__name__="m", instance="i", job="x", version="v9"}`); !ok {
		t.Errorf("honor_labels: the exposed labels win: %v", batch)
	}
	if _, ok := series(batch, `{__name__="up", instance="a-0", job="services", version="v1"}`); !ok {
		t.Errorf("report series carry the target's labels: %v", batch)
	}

	s, rec = newTestScraper(t, Options{})
	testLoop(t, s, JobGateway, &exposition{body: body}, tl).scrapeAndReport(t0) // does not
	batch = rec.last(t)
	if _, ok := series(batch, `{__name__="m", exported_instance="i", exported_job="x", exported_version="v9", instance="a-0", job="gateway", version="v1"}`); !ok {
		t.Errorf("without honor_labels the target's labels win, the exposed ones become exported_*: %v", batch)
	}
	if _, ok := series(batch, `{__name__="n", exported_exported_job="x", exported_job="y", instance="a-0", job="gateway", version="v1"}`); !ok {
		t.Errorf("an exported_ label taken already gets another prefix: %v", batch)
	}
}

func TestScrapeLoopFormatsAndDuplicates(t *testing.T) {
	s, rec := newTestScraper(t, Options{})
	om := &exposition{contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8",
		body: "# TYPE req counter\n# HELP req Requests.\nreq_total 3\n# EOF\n", gzip: true}
	l := testLoop(t, s, JobGateway, om, nil)
	l.scrapeAndReport(time.Now())
	if n := byName(rec.last(t)); n["req_total"].v != 3 || n["up"].v != 1 {
		t.Errorf("gzipped OpenMetrics: %v", rec.last(t))
	}
	if md := l.target.metadata("req"); len(md) != 1 || md[0].Type != model.MetricTypeCounter || md[0].Help != "Requests." {
		t.Errorf("metadata: %+v", md)
	}

	s, rec = newTestScraper(t, Options{})
	l = testLoop(t, s, JobGateway, &exposition{body: "a 1\na 2\n"}, nil)
	l.scrapeAndReport(time.Now())
	n, count := byName(rec.last(t)), 0
	for _, smp := range rec.last(t) {
		if smp.lset.Get(model.MetricNameLabel) == "a" {
			count++
		}
	}
	if count != 1 || n["a"].v != 1 || n["up"].v != 1 {
		t.Errorf("a series twice in one exposition is stored once (the first): %v", rec.last(t))
	}
}

// TestScrapeLoopRemovedTargetGoesStale runs real loops: a target removed
// from the job gets stale markers after two intervals, Pave's shutdown
// writes none.
func TestScrapeLoopRemovedTargetGoesStale(t *testing.T) {
	s, rec := newTestScraper(t, Options{ScrapeInterval: 200 * time.Millisecond})
	srv := httptest.NewServer(&exposition{body: "a 1\n"})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx = nil
	done := make(chan struct{})
	go func() { s.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	s.setTargets(JobGateway, []Target{{Address: strings.TrimPrefix(srv.URL, "http://")}})

	wait := func(what string, ok func([]sample) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			rec.mu.Lock()
			var all []sample
			for _, c := range rec.commits {
				all = append(all, c...)
			}
			rec.mu.Unlock()
			if ok(all) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	wait("a scrape", func(all []sample) bool { return len(all) > 0 })
	if a := s.active(); len(a[JobGateway]) != 1 {
		t.Fatalf("active targets: %v", a)
	}
	s.setTargets(JobGateway, nil)
	if a := s.active(); len(a[JobGateway]) != 0 {
		t.Fatalf("a removed target is still active: %v", a)
	}
	wait("stale markers of a and up", func(all []sample) bool {
		stale := map[string]bool{}
		for _, smp := range all {
			if value.IsStaleNaN(smp.v) {
				stale[smp.lset.Get(model.MetricNameLabel)] = true
			}
		}
		return stale["a"] && stale["up"]
	})
}

func TestTargetOffsetIsWithinTheInterval(t *testing.T) {
	for i := range 50 {
		st := newScrapeTarget(JobServices, true, Target{Address: fmt.Sprintf("127.0.0.1:%d", 1000+i)}, time.Second, time.Second)
		if o := st.offset(time.Second, uint64(i)*7919); o < 0 || o > time.Second {
			t.Fatalf("offset %v outside [0, 1s]", o)
		}
	}
	a := newScrapeTarget(JobServices, true, Target{Address: "127.0.0.1:1", Labels: map[string]string{"service": "x"}}, time.Second, time.Second)
	b := newScrapeTarget(JobServices, true, Target{Address: "127.0.0.1:1", Labels: map[string]string{"service": "x"}}, time.Second, time.Second)
	if a.hash != b.hash || a.labels.String() != `{instance="127.0.0.1:1", job="services", service="x"}` {
		t.Errorf("target identity and labels: %x %x %s", a.hash, b.hash, a.labels)
	}
}

// FuzzScrapeAppend: whatever a target answers, the loop neither panics
// nor stores a series without a name or without the target's job, and a
// failed scrape stores nothing of the body.
func FuzzScrapeAppend(f *testing.F) {
	for _, seed := range []string{
		"a 1\n", "a{b=\"c\"} 1 1000\n", "# TYPE a counter\n# HELP a x\na_total 1\n",
		"this is { not\n", "a{job=\"x\"} NaN\n", "{\"a.b\"} 1\n", "a 1\na 1\n",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed+"# EOF\n"), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, om bool) {
		s, rec := newTestScraper(t, Options{SampleLimit: 50})
		ct := "text/plain; version=0.0.4"
		if om {
			ct = "application/openmetrics-text; version=1.0.0"
		}
		st := newScrapeTarget(JobGateway, false, Target{Address: "127.0.0.1:1"}, s.interval, s.timeout)
		l := newScrapeLoop(s, st)
		for i := range 2 {
			app := rec.AppenderV2(context.Background())
			_, _, _, err := l.append(app, body, ct, time.UnixMilli(int64(1_700_000_000_000+i*60_000)))
			if err != nil {
				_ = app.Rollback()
				app = rec.AppenderV2(context.Background())
				if _, _, _, err := l.append(app, nil, "", time.Now()); err != nil {
					t.Fatalf("stale markers after a failed append: %v", err)
				}
			}
			_ = app.Commit()
			for _, smp := range rec.last(t) {
				if smp.lset.Get(model.MetricNameLabel) == "" || smp.lset.Get(model.JobLabel) != JobGateway {
					t.Fatalf("stored %s", smp.lset)
				}
				if err != nil && !value.IsStaleNaN(smp.v) {
					t.Fatalf("a failed scrape stored %s %v", smp.lset, smp.v)
				}
			}
		}
	})
}

// TestScrapeLoopShutdownRecordsNothing: a scrape in flight when Pave
// stops is not a target that went down: no up 0, no stale markers.
func TestScrapeLoopShutdownRecordsNothing(t *testing.T) {
	s, rec := newTestScraper(t, Options{ScrapeInterval: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx = ctx
	started := make(chan struct{})
	hang := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	l := testLoop(t, s, JobGateway, hang, nil)
	done := make(chan struct{})
	go func() { l.scrapeAndReport(time.Now()); close(done) }()
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the scrape outlived the shutdown")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.commits) != 0 {
		t.Errorf("a shutdown recorded %v", rec.commits)
	}
	if health, _, _, _ := l.target.status(); health != "unknown" {
		t.Errorf("health after a shutdown mid-scrape: %s", health)
	}
}
