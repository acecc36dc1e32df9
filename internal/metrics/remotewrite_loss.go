package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// LostSamplesMetric counts the samples a remote-write receiver will never
// get, by receiver URL and reason:
//
//   - "refused": the receiver answered with an error that is not retried
//     (4xx): Prometheus' prometheus_remote_storage_samples_failed_total;
//   - "dropped": dropped after being read from the WAL (too old, unknown
//     series): prometheus_remote_storage_samples_dropped_total;
//   - "wal_truncated": the receiver was down (or slow) for longer than the
//     WAL keeps samples. Head compaction deleted the WAL segment the queue
//     was about to read; Prometheus' WAL reader then starts over at the
//     WAL's end, and every sample between the last one it had queued and
//     that moment is skipped. Pave counts those samples in the store.
const LostSamplesMetric = "pave_metrics_remote_write_samples_lost_total"

// watcherRestartDelay is how long Prometheus' WAL watcher waits after an
// error before it starts reading again from the WAL's end
// (tsdb/wlog.Watcher.loop): samples up to then are skipped.
const watcherRestartDelay = 5 * time.Second

// watcherErrorMessage is what the WAL watcher logs when it stops reading.
const watcherErrorMessage = "error tailing WAL"

// lossCounter exports the three reasons under one name: it follows
// Prometheus' refused and dropped counters and counts the truncation
// losses itself.
type lossCounter struct {
	store  *Store
	vec    *prometheus.CounterVec
	events chan watcherError
	seen   map[[3]string]float64 // Prometheus' counters at the last poll
}

type watcherError struct {
	remoteName, url string
	at              time.Time
}

func newLossCounter(s *Store) *lossCounter {
	return &lossCounter{
		store: s,
		vec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: LostSamplesMetric,
			Help: "Samples a remote-write receiver will never get, by reason: refused (non-retried error), dropped (read from the WAL but not sendable), wal_truncated (the receiver fell further behind than the WAL keeps)."},
			[]string{"remote_name", "url", "reason"}),
		events: make(chan watcherError, 16),
		seen:   map[[3]string]float64{},
	}
}

// lossPoll is how often the refused and dropped counts are followed.
const lossPoll = 2 * time.Second

// run follows Prometheus' counters and counts the samples skipped after
// each WAL watcher error, once the watcher has restarted and the samples
// up to its restart are stored.
func (l *lossCounter) run(ctx context.Context) {
	tick := time.NewTicker(lossPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			l.follow()
		case ev := <-l.events:
			// The queue's highest enqueued timestamp cannot move while its
			// watcher is stopped: read it now.
			queued := l.queuedUpTo(ev.remoteName, ev.url)
			restart := ev.at.Add(watcherRestartDelay)
			go l.countSkipped(ctx, ev, queued, restart)
		}
	}
}

func (l *lossCounter) countSkipped(ctx context.Context, ev watcherError, queued int64, restart time.Time) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Until(restart) + time.Second):
	}
	n, err := l.store.countSamples(ctx, queued+1, restart.UnixMilli())
	if err != nil {
		l.store.log.Warn("remote write: counting the samples skipped after a WAL reader restart", "url", ev.url, "err", err)
		return
	}
	if n > 0 {
		l.store.log.Error("remote write: samples lost, the receiver fell behind the WAL", "url", ev.url, "samples", n,
			"from", time.UnixMilli(queued+1).UTC(), "to", restart.UTC())
	}
	l.vec.WithLabelValues(ev.remoteName, ev.url, "wal_truncated").Add(float64(n))
}

// follow adds what Prometheus' refused and dropped counters grew by.
func (l *lossCounter) follow() {
	mfs, err := l.store.Registry.Gather()
	if err != nil {
		return
	}
	for _, mf := range mfs {
		reason := map[string]string{
			"prometheus_remote_storage_samples_failed_total":  "refused",
			"prometheus_remote_storage_samples_dropped_total": "dropped",
		}[mf.GetName()]
		if reason == "" {
			continue
		}
		for _, m := range mf.GetMetric() {
			name, u := queueLabels(m.GetLabel())
			k := [3]string{name, u, reason}
			v := m.GetCounter().GetValue()
			if d := v - l.seen[k]; d > 0 {
				l.vec.WithLabelValues(name, u, reason).Add(d)
			}
			l.vec.WithLabelValues(name, u, "wal_truncated")
			l.seen[k] = v
		}
	}
}

func queueLabels(ls []*dto.LabelPair) (remoteName, url string) {
	for _, lp := range ls {
		switch lp.GetName() {
		case "remote_name":
			remoteName = lp.GetValue()
		case "url":
			url = lp.GetValue()
		}
	}
	return remoteName, url
}

// queuedUpTo is the last millisecond the queue had enqueued (the gauge
// has a resolution of seconds: every sample of that second counts as
// queued).
func (l *lossCounter) queuedUpTo(remoteName, url string) int64 {
	mfs, _ := l.store.Registry.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_remote_storage_queue_highest_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if name, u := queueLabels(m.GetLabel()); name == remoteName && u == url {
				return int64(m.GetGauge().GetValue())*1000 + 999
			}
		}
	}
	return 0
}

// countSamples counts the stored samples with timestamps in [mint, maxt]
// of every series.
func (s *Store) countSamples(ctx context.Context, mint, maxt int64) (int, error) {
	if maxt < mint {
		return 0, nil
	}
	q, err := s.db.Querier(mint, maxt)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	n := 0
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if t := it.AtT(); t >= mint && t <= maxt {
				n++
			}
		}
		if err := it.Err(); err != nil {
			return n, err
		}
	}
	return n, set.Err()
}

// watcherErrors is the remote-write logger's handler: it passes every
// record on and tells the loss counter when a queue's WAL watcher
// stopped reading (the queue's remote_name and url are attributes the
// queue manager adds to its logger).
type watcherErrors struct {
	next   slog.Handler
	events chan<- watcherError
	attrs  map[string]string
}

func (h *watcherErrors) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelError || h.next.Enabled(ctx, level)
}

func (h *watcherErrors) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == watcherErrorMessage && h.attrs["url"] != "" {
		select {
		case h.events <- watcherError{remoteName: h.attrs["remote_name"], url: h.attrs["url"], at: r.Time}:
		default: // the counter is behind by 16 restarts: it logs, not blocks
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *watcherErrors) WithAttrs(as []slog.Attr) slog.Handler {
	m := make(map[string]string, len(h.attrs)+len(as))
	for k, v := range h.attrs {
		m[k] = v
	}
	for _, a := range as {
		m[a.Key] = a.Value.String()
	}
	return &watcherErrors{next: h.next.WithAttrs(as), events: h.events, attrs: m}
}

func (h *watcherErrors) WithGroup(name string) slog.Handler {
	return &watcherErrors{next: h.next.WithGroup(name), events: h.events, attrs: h.attrs}
}
