package metrics

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

var (
	errSampleLimit        = errors.New("sample limit exceeded")
	errNameLabelMandatory = fmt.Errorf("missing metric name (%s label)", model.MetricNameLabel)
)

// Prometheus' defaults for a scrape config without native histograms:
// the protocols it asks for, most preferred first, and its user agent's
// shape.
var (
	acceptHeader = func() string {
		protos := config.DefaultScrapeProtocols
		vals := make([]string, 0, len(protos)+1)
		weight := len(config.ScrapeProtocolsHeaders) + 1
		for _, p := range protos {
			v := config.ScrapeProtocolsHeaders[p]
			if p == config.PrometheusText1_0_0 || p == config.OpenMetricsText1_0_0 {
				v += ";" + model.EscapingKey + "=" + model.AllowUTF8
			}
			vals = append(vals, fmt.Sprintf("%s;q=0.%d", v, weight))
			weight--
		}
		return strings.Join(append(vals, fmt.Sprintf("*/*;q=0.%d", weight)), ",")
	}()
	userAgent = "Pave-metrics/1.0"
)

const (
	// maxAheadTime rejects samples stamped further in the future.
	maxAheadTime = 10 * time.Minute
	// timestampTolerance: a scrape starting this close to its slot is
	// stamped with the slot, so timestamps stay evenly spaced and the
	// TSDB's delta-of-delta encoding keeps them in a few bits.
	timestampTolerance = 2 * time.Millisecond
	// metaKeepIters keeps metadata of a family that disappeared.
	metaKeepIters = 10
)

// bodies are scrape buffers shared by all loops (at most a few are in
// use at once, the scrapes being spread over the interval).
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// scrapeLoop scrapes one target every interval until cancelled.
type scrapeLoop struct {
	s      *scraper
	target *scrapeTarget
	ctx    context.Context
	cancel context.CancelFunc

	req      *http.Request
	br       *bufio.Reader
	gz       *gzip.Reader
	lastSize int

	// The series cache, as Prometheus' scrapeCache: the exposition's raw
	// series text → its reference and labels, so a steady-state scrape
	// builds no labels. iter counts appends (failed scrapes included).
	cache map[string]*cacheEntry
	iter  uint64
	// done is the last append that completed (was not rolled back): its
	// series are the ones the next append marks stale when missing.
	done    uint64
	symbols *labels.SymbolTable
	lb      *labels.Builder
	reports [len(reportNames)]reportSeries
}

type cacheEntry struct {
	ref      storage.SeriesRef
	lset     labels.Labels
	lastIter uint64 // last append that saw it
	// staleIter is the last append that stamped it with the scrape's
	// time: when the next append does not see it, it gets a stale marker.
	// prevStale is the one before, restored when that append fails.
	staleIter, prevStale uint64
}

// The series every scrape reports about itself, as Prometheus'.
var reportNames = [...]string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling", "scrape_series_added"}

type reportSeries struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

func newScrapeLoop(s *scraper, t *scrapeTarget) *scrapeLoop {
	ctx, cancel := context.WithCancel(s.ctx)
	req, _ := http.NewRequest(http.MethodGet, t.url, http.NoBody) // a URL from host:port and a path
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(s.timeout.Seconds(), 'f', -1, 64))
	l := &scrapeLoop{s: s, target: t, ctx: ctx, cancel: cancel, req: req,
		cache: map[string]*cacheEntry{}, iter: 1, symbols: labels.NewSymbolTable()}
	l.lb = labels.NewBuilderWithSymbolTable(l.symbols)
	for i, name := range reportNames {
		// Report series carry the target's labels, which win over none.
		l.lb.Reset(t.labels)
		l.lb.Set(model.MetricNameLabel, name)
		l.reports[i].lset = l.lb.Labels()
	}
	return l
}

// run is Prometheus' scrapeLoop.run: wait for the target's offset, then
// scrape on a ticker, stamping each scrape with its slot when it is
// within the tolerance of it.
func (l *scrapeLoop) run() {
	interval := l.s.interval
	var last time.Time
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	defer func() {
		if l.s.ctx.Err() == nil { // the target went away, Pave did not stop
			l.endOfRunStaleness(last, ticker, interval)
		}
	}()
	select {
	case <-time.After(l.target.offset(interval, l.s.seed)):
	case <-l.ctx.Done():
		return
	}
	ticker.Reset(interval)
	aligned := time.Now().Round(0)
	tolerance := min(interval/100, timestampTolerance)
	for {
		select {
		case <-l.ctx.Done():
			return
		default:
		}
		now := time.Now().Round(0)
		for now.Sub(aligned) >= interval { // a tick was skipped
			aligned = aligned.Add(interval)
		}
		if now.Sub(aligned) <= tolerance {
			now = aligned
		}
		l.scrapeAndReport(now)
		last = now
		select {
		case <-l.ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// scrapeAndReport scrapes once and appends the samples and the report
// series in one commit. A failed scrape (HTTP, parse, limit) appends
// nothing of the body: its series get stale markers and up is 0.
func (l *scrapeLoop) scrapeAndReport(ts time.Time) {
	start := time.Now()
	buf := bodies.Get().(*bytes.Buffer)
	buf.Reset()
	buf.Grow(l.lastSize + bytes.MinRead)
	defer bodies.Put(buf)

	contentType, scrapeErr := l.fetch(buf)
	if scrapeErr != nil && l.s.ctx.Err() != nil {
		return // Pave is stopping: the target is not down, record nothing
	}
	var b []byte
	if scrapeErr == nil {
		b = buf.Bytes()
		if len(b) > 0 {
			l.lastSize = len(b)
		}
	}

	app := l.s.app.AppenderV2(context.Background())
	total, added, seriesAdded, appErr := l.append(app, b, contentType, ts)
	if appErr != nil {
		_ = app.Rollback()
		app = l.s.app.AppenderV2(context.Background())
		if _, _, _, err := l.append(app, nil, "", ts); err != nil { // stale markers
			_ = app.Rollback()
			app = l.s.app.AppenderV2(context.Background())
			l.s.log.Warn("appending stale markers failed", "target", l.target.url, "err", err)
		}
		if scrapeErr == nil {
			scrapeErr = appErr
		}
	}
	d := time.Since(start)
	l.target.report(ts, d, scrapeErr)
	up := 0.0
	if scrapeErr == nil {
		up = 1
	}
	if err := l.appendReport(app, timestamp.FromTime(ts), [...]float64{up, d.Seconds(), float64(total), float64(added), float64(seriesAdded)}, false); err != nil {
		_ = app.Rollback()
		l.s.log.Warn("appending the scrape report failed", "target", l.target.url, "err", err)
		return
	}
	if err := app.Commit(); err != nil {
		l.s.log.Error("scrape commit failed", "target", l.target.url, "err", err)
	}
}

// fetch GETs the target into buf within the scrape timeout, decoding
// gzip, and returns the Content-Type. A scrape in flight when its target
// is removed finishes (as in Prometheus); Pave stopping ends it.
func (l *scrapeLoop) fetch(buf *bytes.Buffer) (string, error) {
	ctx, cancel := context.WithTimeout(l.s.ctx, l.s.timeout)
	defer cancel()
	resp, err := l.s.client.Do(l.req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, resp.Body) // the connection is reused
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("server returned HTTP status %s", resp.Status)
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if l.gz == nil {
			l.br = bufio.NewReader(resp.Body)
			if l.gz, err = gzip.NewReader(l.br); err != nil {
				l.gz = nil
				return "", err
			}
		} else {
			l.br.Reset(resp.Body)
			if err := l.gz.Reset(l.br); err != nil {
				return "", err
			}
		}
		defer l.gz.Close()
		r = l.gz
	}
	if _, err := buf.ReadFrom(r); err != nil {
		return "", err
	}
	return resp.Header.Get("Content-Type"), nil
}

// append parses b and appends its samples at ts (or their own
// timestamps), then stale markers for the series the last append had and
// this one has not. An empty b (failed scrape, target gone) appends only
// the stale markers. It is Prometheus' scrapeLoopAppenderV2.append for
// a scrape config without relabelling, native histograms or exemplar
// storage.
func (l *scrapeLoop) append(app storage.AppenderV2, b []byte, contentType string, ts time.Time) (total, added, seriesAdded int, err error) {
	l.iter++
	defTime := timestamp.FromTime(ts)
	if len(b) == 0 {
		return 0, 0, 0, l.staleMarkers(app, defTime)
	}
	p, err := textparse.New(b, contentType, l.symbols, textparse.ParserOptions{IgnoreNativeHistograms: true})
	if p == nil {
		return 0, 0, 0, fmt.Errorf("content type %q: %w", contentType, err)
	}
	var (
		lset        labels.Labels
		limitErr    error
		appended    int
		dropped     int // out of order, duplicate, out of bounds
		maxTime     = timestamp.FromTime(time.Now().Add(maxAheadTime))
		metaChanged bool
	)
loop:
	for {
		var et textparse.Entry
		if et, err = p.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			break
		}
		switch et {
		case textparse.EntryType:
			name, typ := p.Type()
			metaChanged = l.setMeta(name, func(e *metaEntry) bool { c := e.typ != typ; e.typ = typ; return c }) || metaChanged
			continue
		case textparse.EntryHelp:
			name, help := p.Help()
			metaChanged = l.setMeta(name, func(e *metaEntry) bool {
				c := e.help != string(help)
				if c {
					e.help = string(help)
				}
				return c
			}) || metaChanged
			continue
		case textparse.EntryUnit:
			name, unit := p.Unit()
			metaChanged = l.setMeta(name, func(e *metaEntry) bool {
				c := e.unit != string(unit)
				if c {
					e.unit = string(unit)
				}
				return c
			}) || metaChanged
			continue
		case textparse.EntryComment:
			continue
		case textparse.EntryHistogram:
			// Native histograms are not scraped (IgnoreNativeHistograms):
			// a parser yields none; count and skip should one appear.
			total++
			continue
		}
		total++
		met, parsedTS, val := p.Series()
		t := defTime
		if parsedTS != nil {
			t = *parsedTS
		}
		ce, cached := l.cache[string(met)]
		if cached {
			lset = ce.lset
		} else {
			p.Labels(&lset)
			lset = l.targetLabels(lset)
			if lset.IsEmpty() {
				continue
			}
			if !lset.Has(model.MetricNameLabel) {
				err = errNameLabelMandatory
				break loop
			}
			if !lset.IsValid(model.UTF8Validation) {
				err = fmt.Errorf("invalid metric name or label names: %s", lset.String())
				break loop
			}
		}
		added++
		if cached && ce.lastIter == l.iter && parsedTS == nil {
			dropped++ // the same series twice in one exposition
			continue
		}
		if !value.IsStaleNaN(val) {
			appended++
			if appended > l.s.sampleLimit {
				limitErr = errSampleLimit // count the rest, append nothing
				continue
			}
		}
		if t > maxTime {
			dropped++
			continue
		}
		var ref storage.SeriesRef
		if cached {
			ref = ce.ref
		}
		ref, aerr := app.Append(ref, lset, 0, t, val, nil, nil, storage.AOptions{})
		switch {
		case aerr == nil:
		case errors.Is(aerr, storage.ErrOutOfOrderSample), errors.Is(aerr, storage.ErrDuplicateSampleForTimestamp),
			errors.Is(aerr, storage.ErrOutOfBounds), errors.Is(aerr, storage.ErrTooOldSample):
			dropped++
			continue
		default:
			err = aerr
			break loop
		}
		if !cached {
			ce = &cacheEntry{lset: lset}
			l.cache[string(met)] = ce
			seriesAdded++
		}
		ce.ref = ref
		ce.lastIter = l.iter
		if parsedTS == nil && ce.staleIter != l.iter {
			ce.prevStale, ce.staleIter = ce.staleIter, l.iter
		}
	}
	if err == nil && limitErr != nil {
		l.s.exceededSampleLimit.Inc()
		err = limitErr
	}
	if dropped > 0 {
		l.s.log.Debug("samples dropped: out of order, duplicate or out of bounds", "target", l.target.url, "dropped", dropped)
	}
	if err != nil {
		// The caller rolls the samples back: so does the cache, so the
		// stale markers that follow go to the last completed scrape's series.
		for _, ce := range l.cache {
			if ce.staleIter == l.iter {
				ce.staleIter = ce.prevStale
			}
		}
		return total, added, seriesAdded, err
	}
	if metaChanged || l.iter%metaKeepIters == 0 {
		l.pruneMeta()
	}
	return total, added, seriesAdded, l.staleMarkers(app, defTime)
}

// targetLabels adds the target's labels to a scraped series' labels
// (Prometheus' mutateSampleLabels without relabelling): with honor_labels
// the exposed labels win; without it the target's win and a clashing
// exposed label is kept as exported_NAME.
func (l *scrapeLoop) targetLabels(lset labels.Labels) labels.Labels {
	lb := l.lb
	lb.Reset(lset)
	if l.target.honor {
		l.target.labels.Range(func(t labels.Label) {
			if !lset.Has(t.Name) {
				lb.Set(t.Name, t.Value)
			}
		})
		return lb.Labels()
	}
	var clashes []labels.Label
	l.target.labels.Range(func(t labels.Label) {
		if v := lset.Get(t.Name); v != "" {
			clashes = append(clashes, labels.Label{Name: t.Name, Value: v})
		}
		lb.Set(t.Name, t.Value)
	})
	// Shorter names first, as Prometheus' resolveConflictingExposedLabels.
	slices.SortStableFunc(clashes, func(a, b labels.Label) int { return len(a.Name) - len(b.Name) })
	for _, c := range clashes {
		name := c.Name
		for {
			name = model.ExportedLabelPrefix + name
			if lb.Get(name) == "" {
				lb.Set(name, c.Value)
				break
			}
		}
	}
	return lb.Labels()
}

// staleMarkers appends a stale marker for every series the last
// completed append stamped and this one did not, and forgets the series
// of the cache no recent append saw.
func (l *scrapeLoop) staleMarkers(app storage.AppenderV2, t int64) error {
	stale := math.Float64frombits(value.StaleNaN)
	for met, ce := range l.cache {
		if ce.staleIter == l.done && ce.staleIter != 0 {
			_, err := app.Append(ce.ref, ce.lset, 0, t, stale, nil, nil, storage.AOptions{RejectOutOfOrder: true})
			if err != nil && !errors.Is(err, storage.ErrOutOfOrderSample) && !errors.Is(err, storage.ErrDuplicateSampleForTimestamp) {
				return err
			}
		}
		if ce.lastIter+1 < l.iter {
			delete(l.cache, met)
		}
	}
	l.done = l.iter
	return nil
}

// appendReport appends the report series (up, scrape_*) at t.
func (l *scrapeLoop) appendReport(app storage.AppenderV2, t int64, vals [len(reportNames)]float64, rejectOOO bool) error {
	for i := range l.reports {
		r := &l.reports[i]
		ref, err := app.Append(r.ref, r.lset, 0, t, vals[i], nil, nil, storage.AOptions{RejectOutOfOrder: rejectOOO})
		switch {
		case err == nil:
			r.ref = ref
		case errors.Is(err, storage.ErrOutOfOrderSample), errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
			// A target that went away and came back with a new loop.
		default:
			return err
		}
	}
	return nil
}

// endOfRunStaleness marks the series of a target that went away stale,
// as Prometheus does: after the next two slots (a target that is back
// by then has a new loop whose samples win) and a tenth of an interval.
func (l *scrapeLoop) endOfRunStaleness(last time.Time, ticker *time.Ticker, interval time.Duration) {
	if last.IsZero() {
		return // never scraped: nothing to mark
	}
	var staleTime time.Time
	for i := range 2 {
		select {
		case <-l.s.ctx.Done():
			return
		case now := <-ticker.C:
			if i == 0 {
				staleTime = now
			}
		}
	}
	select {
	case <-l.s.ctx.Done():
		return
	case <-time.After(interval / 10):
	}
	app := l.s.app.AppenderV2(context.Background())
	t := timestamp.FromTime(staleTime)
	stale := math.Float64frombits(value.StaleNaN)
	if _, _, _, err := l.append(app, nil, "", staleTime); err != nil {
		_ = app.Rollback()
		return
	}
	if err := l.appendReport(app, t, [...]float64{stale, stale, stale, stale, stale}, true); err != nil {
		_ = app.Rollback()
		return
	}
	if err := app.Commit(); err != nil {
		l.s.log.Warn("stale markers of a removed target", "target", l.target.url, "err", err)
	}
}

// setMeta updates the metadata of family name with set (which says
// whether it changed anything), creating the entry if needed; it takes
// the target's lock only to change something.
func (l *scrapeLoop) setMeta(name []byte, set func(*metaEntry) bool) bool {
	t := l.target
	e, ok := t.meta[string(name)]
	if ok {
		probe := *e
		if !set(&probe) {
			e.lastIter = l.iter
			return false
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !ok {
		e = &metaEntry{typ: model.MetricTypeUnknown}
		t.meta[string(name)] = e
	}
	set(e)
	e.lastIter = l.iter
	return true
}

// pruneMeta forgets families not seen for metaKeepIters appends.
func (l *scrapeLoop) pruneMeta() {
	t := l.target
	var gone []string
	for name, e := range t.meta {
		if l.iter-e.lastIter > metaKeepIters {
			gone = append(gone, name)
		}
	}
	if len(gone) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, name := range gone {
		delete(t.meta, name)
	}
}
