package alert

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/marker"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"
)

// DefaultConfig is the Alertmanager configuration without an `alerting`
// file: one route to a receiver with no integrations, so alerts are
// grouped, silenced and inhibited and shown by the API, the CLI and the
// UI, and nothing is sent anywhere.
//
// Its inhibit rules are Pave's defaults: a page silences the ticket of
// the same service and SLO, and a cluster that is down or draining
// silences the alerts of the services in that cluster.
const DefaultConfig = `route:
  receiver: pave
  group_by: [alertname, service, cluster]
receivers:
- name: pave
inhibit_rules:
- source_matchers: [severity="page"]
  target_matchers: [severity="ticket"]
  equal: [service, slo]
- source_matchers: ['alertname=~"ClusterDown|ClusterDraining"']
  target_matchers: ['service=~".+"']
  equal: [cluster]
`

// retention is how long the notification log and expired silences are
// kept, Alertmanager's default.
const retention = 120 * time.Hour

// notifier is an Alertmanager embedded in the process, composed of its
// own packages the way cmd/alertmanager composes them (app/reloader.go):
// an alert provider, silences, the notification log, an inhibitor, the
// routing tree and the dispatcher with its notification pipeline. It has
// no cluster peer and no API of its own: Pave's API reads it.
type notifier struct {
	log      *slog.Logger
	dir      string
	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	outbox   *outbox
	stopc    chan struct{}
	wg       sync.WaitGroup

	conf       *amconfig.Config
	inhibitor  *inhibit.Inhibitor
	dispatcher *dispatch.Dispatcher
	routes     *dispatch.Route
}

func newNotifier(dir, configFile string, outboxRetention time.Duration, externalURL *url.URL, reg prometheus.Registerer, log *slog.Logger) (*notifier, error) {
	conf, err := loadConfig(configFile)
	if err != nil {
		return nil, err
	}
	rec := eventrecorder.NopRecorder()
	n := &notifier{log: log, dir: dir, conf: conf, stopc: make(chan struct{})}
	if n.nflog, err = nflog.New(nflog.Options{SnapshotFile: filepath.Join(dir, "nflog"), Retention: retention, Logger: log, Metrics: reg}); err != nil {
		return nil, fmt.Errorf("alert: notification log in %s: %w", dir, err)
	}
	if n.silences, err = silence.New(silence.Options{SnapshotFile: filepath.Join(dir, "silences"), Retention: retention,
		Logger: log, Metrics: reg, EventRecorder: rec}); err != nil {
		return nil, fmt.Errorf("alert: silences in %s: %w", dir, err)
	}
	n.silencer = silence.NewSilencer(n.silences, log, rec)
	if n.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, nil, log, rec, reg, featurecontrol.NoopFlags{}); err != nil {
		return nil, fmt.Errorf("alert: alert provider: %w", err)
	}
	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return nil, fmt.Errorf("alert: templates of %s: %w", configFile, err)
	}
	if externalURL != nil {
		tmpl.ExternalURL = externalURL
	} else {
		tmpl.ExternalURL, _ = url.Parse("http://127.0.0.1:7070/ui/alerts.html")
	}
	n.routes = dispatch.NewRoute(conf.Route, nil)
	used := map[string]bool{}
	n.routes.Walk(func(r *dispatch.Route) { used[r.RouteOpts.Receiver] = true })

	// Every integration is fronted by the outbox: the pipeline's send is
	// a write to disk; the outbox delivers, retrying with backoff, and
	// keeps what it has not delivered across restarts.
	real := map[string]notify.Integration{}
	receivers := map[string][]notify.Integration{}
	for _, rcv := range conf.Receivers {
		if !used[rcv.Name] {
			continue
		}
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, log)
		if err != nil {
			return nil, fmt.Errorf("alert: receiver %s in %s: %w", rcv.Name, configFile, err)
		}
		var fronted []notify.Integration
		for _, in := range ints {
			key := integrationKey(rcv.Name, in.Name(), in.Index())
			real[key] = in
			fronted = append(fronted, notify.NewIntegration(&outboxNotifier{key: key, receiver: rcv.Name, integration: in.Name(), n: n},
				resolvedSender(in.SendResolved()), in.Name(), in.Index(), rcv.Name))
		}
		receivers[rcv.Name] = fronted
	}
	if n.outbox, err = openOutbox(filepath.Join(dir, "outbox"), real, outboxRetention, log); err != nil {
		return nil, err
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)
	n.inhibitor = inhibit.NewInhibitor(n.alerts, conf.InhibitRules, log, rec)
	wait := func() time.Duration { return 0 }
	pipeline := notify.NewPipelineBuilder(reg, featurecontrol.NoopFlags{}, rec).New(receivers, wait, n.inhibitor, n.silencer, intervener, n.nflog, nil)
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	n.dispatcher = dispatch.NewDispatcher(n.alerts, n.routes, pipeline, intervener, timeout, 30*time.Second, nil, log, rec,
		dispatch.NewDispatcherMetrics(false, reg, featurecontrol.NoopFlags{}), tmpl)
	return n, nil
}

func loadConfig(file string) (*amconfig.Config, error) {
	if file == "" {
		return amconfig.Load(DefaultConfig)
	}
	c, err := amconfig.LoadFile(file)
	if err != nil {
		return nil, fmt.Errorf("setting alert-config: %s is not a valid Alertmanager configuration: %w (see https://prometheus.io/docs/alerting/latest/configuration/)", file, err)
	}
	return c, nil
}

type resolvedSender bool

func (r resolvedSender) SendResolved() bool { return bool(r) }

func integrationKey(rcv, name string, idx int) string { return fmt.Sprintf("%s/%s/%d", rcv, name, idx) }

// start runs the inhibitor, the dispatcher, the outbox and the snapshot
// maintenance until close.
func (n *notifier) start(ctx context.Context) {
	go n.inhibitor.Run()
	n.inhibitor.WaitForLoading()
	go n.dispatcher.Run(time.Now())
	n.wg.Go(func() { n.nflog.Maintenance(15*time.Minute, filepath.Join(n.dir, "nflog"), n.stopc, nil) })
	n.wg.Go(func() { n.silences.Maintenance(15*time.Minute, filepath.Join(n.dir, "silences"), n.stopc, nil) })
	n.wg.Go(func() { n.outbox.run(ctx, n.stopc) })
}

func (n *notifier) close() {
	if n.dispatcher != nil {
		n.dispatcher.Stop()
	}
	if n.inhibitor != nil {
		n.inhibitor.Stop()
	}
	select {
	case <-n.stopc:
	default:
		close(n.stopc)
	}
	n.wg.Wait()
	if n.alerts != nil {
		n.alerts.Close()
	}
}

// put hands alerts from the rules manager to the embedded Alertmanager,
// converted as Prometheus' notifier converts them for an Alertmanager.
func (n *notifier) put(ctx context.Context, externalURL, expr string, alerts []*rules.Alert) {
	now := time.Now()
	out := make([]*amalert.Alert, 0, len(alerts))
	for _, a := range alerts {
		m := model.Alert{Labels: model.LabelSet{}, Annotations: model.LabelSet{}, StartsAt: a.FiredAt,
			GeneratorURL: externalURL + strutil.TableLinkForExpression(expr)}
		a.Labels.Range(func(l labels.Label) { m.Labels[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		a.Annotations.Range(func(l labels.Label) { m.Annotations[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		if !a.ResolvedAt.IsZero() {
			m.EndsAt = a.ResolvedAt
		} else {
			m.EndsAt = a.ValidUntil
		}
		out = append(out, amalert.New(m, now, false))
	}
	if err := n.alerts.Put(ctx, out...); err != nil {
		n.log.Error("putting alerts into the embedded Alertmanager", "err", err)
	}
}

// status says whether an alert is silenced (by which silences) or
// inhibited (by which alert), as Alertmanager's API reports it.
func (n *notifier) status(ctx context.Context, lset model.LabelSet) amalert.AlertStatus {
	m := marker.NewAlertMarker()
	ctx = marker.WithContext(ctx, m)
	ls := labelset.FromModel(lset)
	n.inhibitor.Mutes(ctx, ls)
	n.silencer.Mutes(ctx, ls)
	return m.Status(ls.Fingerprint())
}
