// Package metrics is Pave's embedded Prometheus-compatible metrics store:
// it scrapes every running instance, the gateways and Pave itself with
// Prometheus' own parsers, keeps the series in a Prometheus TSDB
// (WAL, head compaction, retention by time and size), forwards them to
// remote-write receivers with Prometheus' queue manager, and answers the
// Prometheus HTTP API with the real PromQL engine.
//
// The store is the composition of tsdb, textparse, storage/remote and
// promql, configured the way a prometheus.yml would configure them. What
// Pave adds is where the targets come from (the runtime), the JSON of the
// HTTP API, and the scrape loop (scrape.go): Prometheus' semantics
// without the tracing its scrape package wraps every scrape in.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
	"go.opentelemetry.io/otel"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Options configure a Store. Zero values take the defaults below.
type Options struct {
	// Dir holds the TSDB (blocks, WAL) and the active query log.
	Dir string
	// ScrapeInterval is how often every target is scraped (default 15s);
	// the scrape timeout is the interval, capped at 10s, as Prometheus'.
	ScrapeInterval time.Duration
	// Retention drops blocks older than this (default 15 days).
	Retention time.Duration
	// RetentionSize drops the oldest blocks while the blocks and WAL
	// together are larger than this many bytes (0: no size bound).
	RetentionSize int64
	// SampleLimit fails a scrape (target down, nothing of it kept) that
	// returns more samples than this (default 100000; 0 means default).
	SampleLimit int
	// RemoteWrite are remote-write receivers every sample is sent to.
	RemoteWrite []string
	// Query limits of the PromQL engine.
	QueryTimeout     time.Duration // default 2m
	QueryMaxSamples  int           // default 50 000 000, Prometheus' default
	QueryConcurrency int           // default 20
	Log              *slog.Logger

	// For tests of WAL truncation: the block range and WAL segment size.
	blockDuration  time.Duration
	walSegmentSize int
}

// Defaults, the same as Prometheus' own where it has one.
const (
	DefaultScrapeInterval   = 15 * time.Second
	DefaultRetention        = 15 * 24 * time.Hour
	DefaultSampleLimit      = 100_000
	DefaultQueryTimeout     = 2 * time.Minute
	DefaultQueryMaxSamples  = 50_000_000
	DefaultQueryConcurrency = 20
	// LookbackDelta is how far back an instant vector looks for a sample.
	LookbackDelta = 5 * time.Minute
)

func (o *Options) defaults() {
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = DefaultScrapeInterval
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.SampleLimit <= 0 {
		o.SampleLimit = DefaultSampleLimit
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.QueryMaxSamples <= 0 {
		o.QueryMaxSamples = DefaultQueryMaxSamples
	}
	if o.QueryConcurrency <= 0 {
		o.QueryConcurrency = DefaultQueryConcurrency
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Store is the embedded metrics store. Open it, feed it targets with
// SetTargets, Run it, and serve API().
type Store struct {
	opts    Options
	log     *slog.Logger
	db      *tsdb.DB
	engine  *promql.Engine
	tracker *promql.ActiveQueryTracker
	remote  *remote.Storage
	scrape  *scraper
	// Registry holds the store's own metrics (tsdb, scrape, remote write,
	// engine) and Pave's process metrics: the "pave" job scrapes it.
	Registry *prometheus.Registry
	lost     *lossCounter
}

// Open opens (or creates) the TSDB in o.Dir, replaying its WAL, and builds
// the engine, the scrape manager and the remote-write queues. The caller
// holds the data directory's lock: one process owns the TSDB.
func Open(o Options) (*Store, error) {
	o.defaults()
	if o.Dir == "" {
		return nil, errors.New("metrics: no directory")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	cfg, err := o.promConfig()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Store{opts: o, log: o.Log, Registry: reg}

	dbOpts := tsdb.DefaultOptions()
	dbOpts.RetentionDuration = o.Retention.Milliseconds()
	dbOpts.MaxBytes = o.RetentionSize
	// Prometheus' server compresses its WAL with snappy by default
	// (--storage.tsdb.wal-compression); the package's default does not.
	// bench/metrics found the WAL three times larger without it.
	dbOpts.WALCompression = compression.Snappy
	// Prometheus' own default: blocks grow up to a tenth of the retention
	// (at most 31 days); short retentions keep 2 h blocks.
	dbOpts.MaxBlockDuration = max(dbOpts.MinBlockDuration, min(o.Retention.Milliseconds()/10, (31*24*time.Hour).Milliseconds()))
	if o.blockDuration > 0 { // tests: compaction within seconds
		dbOpts.MinBlockDuration, dbOpts.MaxBlockDuration = o.blockDuration.Milliseconds(), o.blockDuration.Milliseconds()
	}
	if o.walSegmentSize > 0 { // tests: many small WAL segments
		dbOpts.WALSegmentSize = o.walSegmentSize
	}
	tsdbDir := filepath.Join(o.Dir, "tsdb")
	s.db, err = tsdb.Open(tsdbDir, o.Log.With("component", "tsdb"), reg, dbOpts, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: open TSDB in %s: %w", tsdbDir, err)
	}

	s.tracker, err = promql.NewActiveQueryTracker(o.Dir, o.QueryConcurrency, o.Log.With("component", "query-tracker"))
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("metrics: active query log in %s: %w", o.Dir, err)
	}
	s.engine = promql.NewEngine(promql.EngineOpts{
		Logger: o.Log.With("component", "promql"), Reg: reg,
		MaxSamples: o.QueryMaxSamples, Timeout: o.QueryTimeout,
		ActiveQueryTracker: s.tracker, LookbackDelta: LookbackDelta,
		EnableAtModifier: true, EnableNegativeOffset: true,
	})

	// Remote write reads the TSDB's WAL (a receiver that is down makes
	// the queues fall behind on disk, not in memory), as in Prometheus.
	// Its logger tells the loss counter when a queue's WAL reader stopped
	// (remotewrite_loss.go).
	s.lost = newLossCounter(s)
	reg.MustRegister(s.lost.vec)
	remoteLog := slog.New(&watcherErrors{next: o.Log.Handler(), events: s.lost.events}).With("component", "remote")
	s.remote = remote.NewStorage(remoteLog, reg, s.db.StartTime, tsdbDir, time.Minute, nil, false)
	if err := s.remote.ApplyConfig(cfg); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("metrics: remote write: %w", err)
	}
	s.db.SetWriteNotified(s.remote)

	quietTracing()
	s.scrape = newScraper(o, o.sink(s.db, s.remote), reg)
	return s, nil
}

// Run scrapes until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.scrape.run(ctx)
	}()
	// The loss counter follows the queues' counters with a Gather of the
	// whole registry every lossPoll; without queues there is nothing to
	// follow, and bench/metrics measured that Gather at about a tenth of
	// the store's CPU at a 15 s scrape interval.
	if len(s.opts.RemoteWrite) > 0 {
		lossCtx, stopLoss := context.WithCancel(ctx)
		defer stopLoss()
		go s.lost.run(lossCtx)
	}
	<-done
	return nil
}

// sink is where scrapes append: the TSDB, and the remote-write queues
// appender too when there are receivers (it tracks the highest timestamp
// the queues must reach, which the loss counter follows). Without
// receivers the fan-out would only cost a second appender call per
// sample. Scrapes use the V2 appender, as Prometheus' own server does
// (one call per sample carrying its metadata and exemplars).
func (o Options) sink(db *tsdb.DB, rw *remote.Storage) storage.AppendableV2 {
	if len(o.RemoteWrite) == 0 {
		return db
	}
	return storage.NewFanout(o.Log, db, rw)
}

// quietTracing installs OpenTelemetry's no-op tracer provider when no
// provider was installed (the control plane exports no traces of its
// own). Prometheus' remote-write client wraps every request in otelhttp;
// with nothing installed, the global stand-in still builds a span, a
// context and an httptrace hook set per request in case a provider comes
// later (bench/metrics found that a few percent of the store's CPU when
// Prometheus' scrape package did the same per scrape). A provider
// installed later still takes over for tracers created after it.
func quietTracing() {
	if fmt.Sprintf("%T", otel.GetTracerProvider()) == "*global.tracerProvider" {
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
	}
}

// DB is the TSDB, for queries of Pave's own (the UI's plots, tests).
func (s *Store) DB() *tsdb.DB { return s.db }

// Engine is the PromQL engine with the store's limits.
func (s *Store) Engine() *promql.Engine { return s.engine }

// Close flushes the remote-write queues (up to their flush deadline) and
// closes the TSDB. Stop Run first.
func (s *Store) Close() error { return s.closeAll() }

func (s *Store) closeAll() error {
	var errs []error
	if s.remote != nil {
		errs = append(errs, s.remote.Close())
	}
	if s.tracker != nil {
		errs = append(errs, s.tracker.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
	}
	return errors.Join(errs...)
}
