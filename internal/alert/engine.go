// Package alert evaluates alerting and recording rules over Pave's
// embedded metrics store and notifies with Alertmanager's semantics.
//
// Nothing here re-implements Prometheus or Alertmanager: rules run on
// Prometheus' rules manager (prometheus/rules) over the store's TSDB and
// PromQL engine; what fires goes to Alertmanager's own library packages
// (routing tree, aggregation groups, notification log, silences,
// inhibition, receivers) embedded in the process, and to external
// Alertmanagers over API v2 with Prometheus' notifier. What Pave adds is
// where rule files come from (globs and in-memory sources, reloaded on
// change, a bad file refused while its last good version keeps running),
// a persisted outbox in front of every receiver so no notification is lost
// across a restart, and the HTTP API in Prometheus' JSON shape.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Options configure an Engine. Zero values take the defaults below.
type Options struct {
	// Dir holds the silences, the notification log and the outbox
	// (DATA_DIR/alerting).
	Dir string
	// Queryable and Appendable are the store the rules read and the
	// recording rules (and ALERTS series) write to; QueryEngine runs
	// the expressions.
	Queryable   storage.Queryable
	Appendable  storage.AppendableV2
	QueryEngine promql.QueryEngine
	// RuleFiles are globs of Prometheus rule files, re-read every
	// ReloadInterval.
	RuleFiles []string
	// EvalInterval is the default evaluation interval of a rule group
	// that sets none (default 15s, the scrape interval).
	EvalInterval time.Duration
	// ReloadInterval is how often RuleFiles are checked for changes
	// (default 5s).
	ReloadInterval time.Duration
	// ConfigFile is an Alertmanager configuration file (route,
	// receivers, inhibit_rules, templates); empty: DefaultConfig.
	ConfigFile string
	// Alertmanagers are external Alertmanagers (base URLs) every alert
	// is also sent to over API v2, as Prometheus sends.
	Alertmanagers []string
	// ExternalURL is Pave's URL, for links in alerts.
	ExternalURL string
	// OutboxRetention is how long the outbox retries a notification
	// before it gives up (expired), and keeps a refused one (default
	// DefaultOutboxRetention).
	OutboxRetention time.Duration
	Registerer      prometheus.Registerer
	Log             *slog.Logger
}

// Defaults.
const (
	DefaultEvalInterval   = 15 * time.Second
	DefaultReloadInterval = 5 * time.Second
	// DefaultOutboxRetention is Alertmanager's retention of its
	// notification log and silences: a receiver down for five days has
	// lost what it was sent.
	DefaultOutboxRetention = 120 * time.Hour
	// resendDelay is how often a firing alert is sent again, as
	// Prometheus' default: the embedded Alertmanager and external ones
	// keep it alive with these resends.
	resendDelay = time.Minute
	// outageTolerance lets `for` state survive a restart of pave up
	// (restored from the ALERTS_FOR_STATE series), Prometheus' default.
	outageTolerance = time.Hour
)

func (o *Options) defaults() {
	if o.EvalInterval <= 0 {
		o.EvalInterval = DefaultEvalInterval
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = DefaultReloadInterval
	}
	if o.OutboxRetention <= 0 {
		o.OutboxRetention = DefaultOutboxRetention
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ExternalURL == "" {
		// Alertmanager's API v2 refuses an alert whose generatorURL is
		// not absolute.
		o.ExternalURL = "http://127.0.0.1:7070"
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
}

// Engine evaluates the rules and notifies what fires.
type Engine struct {
	opts     Options
	log      *slog.Logger
	manager  *rules.Manager
	sources  *ruleSources
	notifier *notifier
	external *externalAlertmanagers

	mu       sync.Mutex
	reloadCh chan struct{}
	// running is set once Run has started the rules manager: before that,
	// Update cannot replace groups (the old ones wait for Run to stop), so
	// SetRuleSource leaves the reload to Run.
	running atomic.Bool
	// releases, when set, names the release an alert fired during
	// (deploy.go).
	releases atomic.Pointer[Releases]
}

// New builds an engine: the rules manager over the store, the embedded
// Alertmanager (its silences and notification log read back from Dir)
// and the outbox. Nothing runs before Run.
func New(o Options) (*Engine, error) {
	o.defaults()
	if o.Dir == "" {
		return nil, errors.New("alert: no directory")
	}
	if o.Queryable == nil || o.Appendable == nil || o.QueryEngine == nil {
		return nil, errors.New("alert: no metrics store to evaluate over")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	var ext *url.URL
	if o.ExternalURL != "" {
		u, err := url.Parse(o.ExternalURL)
		if err != nil {
			return nil, fmt.Errorf("alert: external URL %q: %w", o.ExternalURL, err)
		}
		ext = u
	}
	e := &Engine{opts: o, log: o.Log, reloadCh: make(chan struct{}, 1)}
	var err error
	if e.notifier, err = newNotifier(o.Dir, o.ConfigFile, o.OutboxRetention, ext, o.Registerer, o.Log.With("component", "alertmanager")); err != nil {
		return nil, err
	}
	if e.external, err = newExternalAlertmanagers(o.Alertmanagers, o.Registerer, o.Log.With("component", "notifier")); err != nil {
		e.notifier.close()
		return nil, err
	}
	e.sources = newRuleSources(o.RuleFiles)
	e.manager = rules.NewManager(&rules.ManagerOptions{
		ExternalURL:     ext,
		QueryFunc:       rules.EngineQueryFunc(o.QueryEngine, o.Queryable),
		NotifyFunc:      e.send,
		Context:         context.Background(),
		AppendableV2:    o.Appendable,
		Queryable:       o.Queryable,
		Logger:          o.Log.With("component", "rules"),
		Registerer:      o.Registerer,
		OutageTolerance: outageTolerance,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     resendDelay,
		GroupLoader:     e.sources,
	})
	if err := e.sources.setSource(PlatformSource, watchdogRules); err != nil {
		return nil, err
	}
	if err := e.reload(false); err != nil {
		e.log.Warn("rule files", "err", err)
	}
	return e, nil
}

// Run evaluates rules, re-reads the rule files and notifies until ctx
// ends; then it stops the rules manager and the notifier.
func (e *Engine) Run(ctx context.Context) error {
	go e.manager.Run()
	go e.external.run()
	e.notifier.start(ctx)
	e.running.Store(true)
	if err := e.reload(true); err != nil { // what SetRuleSource set before Run
		e.log.Warn("rule files", "err", err)
	}
	tick := time.NewTicker(e.opts.ReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.manager.Stop()
			e.external.stop()
			e.notifier.close()
			return nil
		case <-tick.C:
		case <-e.reloadCh:
		}
		if err := e.reload(true); err != nil {
			e.log.Warn("rule files", "err", err)
		}
	}
}

// SetRuleSource sets an in-memory rule file named name (a service's
// generated SLO rules, the platform rules): content in Prometheus'
// rule-file format replaces the previous content of that name; empty
// content removes it. Content that does not parse is refused with the
// reason and the previous version keeps running.
func (e *Engine) SetRuleSource(name string, content []byte) error {
	if err := e.sources.setSource(name, content); err != nil {
		return err
	}
	if !e.running.Load() {
		return nil // Run loads it when it starts
	}
	return e.reload(true)
}

// reload re-reads the rule files and hands the manager every rule file
// whose last good version it has.
func (e *Engine) reload(settle bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed, refused := e.sources.refresh(settle)
	for _, r := range refused {
		e.log.Error("rule file refused; its previous version (if any) keeps running", "file", r.File, "err", r.Err)
	}
	if !changed {
		return nil
	}
	if err := e.manager.Update(e.opts.EvalInterval, e.sources.identifiers(), labels.EmptyLabels(), e.opts.ExternalURL, nil); err != nil {
		return fmt.Errorf("alert: updating rule groups: %w", err)
	}
	return nil
}

// Manager is the rules manager, for reads (the API, tests).
func (e *Engine) Manager() *rules.Manager { return e.manager }

// RuleFileErrors are the rule files refused at their last read.
func (e *Engine) RuleFileErrors() []RuleFileError { return e.sources.errors() }

// send is the rules manager's NotifyFunc: every alert it sends (firing,
// resent every minute, or resolved) goes to the embedded Alertmanager and
// to the external ones.
func (e *Engine) send(ctx context.Context, expr string, alerts ...*rules.Alert) {
	if len(alerts) == 0 {
		return
	}
	alerts = e.withReleases(ctx, alerts)
	e.notifier.put(ctx, e.opts.ExternalURL, expr, alerts)
	e.external.send(e.opts.ExternalURL, expr, alerts)
}
