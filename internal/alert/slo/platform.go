package slo

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
)

// platformRunbook is the runbook section of a platform alert in
// docs/alerting-slo.md (GitHub anchors: the heading in lower case).
func platformRunbook(alert string) string {
	return "https://github.com/pave-platform/pave/blob/main/docs/alerting-slo.md#" + strings.ToLower(alert)
}

type platformAlert struct {
	name, expr, severity, summary, description string
	forDur, keep                               time.Duration
	labels                                     map[string]string
}

// The jobs are internal/metrics' scrape pools: "gateway" (each cluster's
// embedded gateway, labelled cluster), "services" (every instance, labelled
// service, version, cluster, instance) and "pave" (the control plane, whose
// registry holds the metrics store's tsdb, scrape and remote-write metrics
// and the telemetry spool's).
var platformGroups = []struct {
	name   string
	alerts []platformAlert
}{
	{"pave-watchdog", []platformAlert{{
		name: "Watchdog", expr: "vector(1)", severity: "none",
		summary:     "Alerting works: this alert always fires",
		description: "Route it to a dead man's switch: when it stops arriving, rule evaluation or notification is dead and no other alert could reach anyone.",
	}}},
	{"pave-self", []platformAlert{
		{name: "PaveSelfScrapeFailing", expr: `up{job="pave"} == 0`, forDur: 5 * time.Minute, severity: "ticket",
			summary:     "Pave cannot scrape its own metrics",
			description: "The metrics store fails to read Pave's /pave/metrics: the store, gateway and telemetry alerts below are blind."},
		{name: "PaveSelfScrapeAbsent", expr: `absent(up{job="pave"})`, forDur: 10 * time.Minute, severity: "ticket", labels: map[string]string{"job": "pave"},
			summary:     "Pave's own scrape target is missing",
			description: "No up{job=\"pave\"} series: the metrics store runs without its self-target, so the platform alerts cannot fire."},
	}},
	{"pave-gateway", []platformAlert{
		{name: "GatewayScrapeFailing", expr: `up{job="gateway"} == 0`, forDur: 2 * time.Minute, keep: 5 * time.Minute, severity: "page",
			summary:     "The gateway of cluster {{ $labels.cluster }} does not answer its metrics scrape",
			description: "Without the gateway's counters every gateway-sourced SLO of {{ $labels.cluster }} is blind."},
		{name: "GatewayAbsent", expr: `absent(up{job="gateway"})`, forDur: 10 * time.Minute, severity: "ticket", labels: map[string]string{"job": "gateway"},
			summary:     "No gateway is scraped",
			description: "The metrics store has no gateway target at all: gateway-sourced SLOs and the cluster alerts cannot fire."},
		{name: "GatewayAccessLogDropping", expr: `increase(pave_gateway_access_log_dropped_total[15m]) > 0`, severity: "ticket",
			summary:     "The gateway drops access records in {{ $labels.cluster }}",
			description: "The access logger fell behind and dropped {{ $value }} records in 15m: the request viewer misses requests."},
	}},
	{"pave-clusters", []platformAlert{
		{name: "ClusterErrorRatioHigh", severity: "page", forDur: 5 * time.Minute, keep: 10 * time.Minute,
			// At least 100 requests in 5m, so a quiet cluster's single
			// failure does not page.
			expr: `sum by (cluster) (rate(pave_gateway_requests_total{version!~"cluster:.*",class=~"5xx|failed|ejected"}[5m]))
/
sum by (cluster) (rate(pave_gateway_requests_total{version!~"cluster:.*"}[5m])) > 0.05
and
sum by (cluster) (increase(pave_gateway_requests_total{version!~"cluster:.*"}[5m])) >= 100`,
			summary:     "More than 5% of the requests of cluster {{ $labels.cluster }} fail",
			description: "{{ $value | humanizePercentage }} of all services' requests in {{ $labels.cluster }} failed over 5m: a cluster-wide fault (network, nodes, a shared dependency) rather than one service."},
		{name: "ClusterUnreachable", severity: "page", forDur: 2 * time.Minute, keep: 5 * time.Minute,
			expr: `label_replace(
  sum by (version) (rate(pave_gateway_requests_total{version=~"cluster:.*",class=~"failed|ejected"}[5m]))
  /
  sum by (version) (rate(pave_gateway_requests_total{version=~"cluster:.*"}[5m])) > 0.5
  and
  sum by (version) (increase(pave_gateway_requests_total{version=~"cluster:.*"}[5m])) >= 20,
  "target_cluster", "$1", "version", "cluster:(.*)")`,
			summary:     "The edge cannot reach cluster {{ $labels.target_cluster }}",
			description: "{{ $value | humanizePercentage }} of the requests the edge sent to {{ $labels.target_cluster }} failed or were ejected over 5m."},
		{name: "ServiceScrapeFailing",
			// Only services that served /metrics in the last day: a service
			// without kit has no /metrics, and that is not a fault.
			expr: `up{job="services"} == 0 and on (service) max by (service) (max_over_time(up{job="services"}[1d])) == 1`, forDur: 10 * time.Minute, severity: "ticket",
			summary:     "Instance {{ $labels.instance }} of {{ $labels.service }} does not answer its metrics scrape",
			description: "The instance in {{ $labels.cluster }} is ready but /metrics fails: its kit-sourced SLOs undercount."},
	}},
	{"pave-telemetry", []platformAlert{
		{name: "TelemetryRecordsLost", expr: `increase(pave_access_spool_lost_records_total[15m]) > 0`, severity: "ticket",
			summary:     "Access records were lost",
			description: "The telemetry spool lost {{ $value }} records in 15m (disk full or corrupt spool)."},
		{name: "TelemetryBacklogStuck", expr: `min_over_time(pave_access_spool_pending_records[30m]) > 0`, severity: "ticket",
			summary:     "The telemetry spool has not drained for 30m",
			description: "Records wait on disk for the telemetry store: it is down or refusing writes."},
	}},
	{"pave-metrics-store", []platformAlert{
		{name: "MetricsStoreCompactionsFailing", expr: `increase(prometheus_tsdb_compactions_failed_total{job="pave"}[1h]) > 0`, severity: "ticket",
			summary:     "The metrics store fails to compact",
			description: "Compactions failed in the last hour: the head grows and disk use with it."},
		{name: "MetricsStoreWALCorrupt", expr: `increase(prometheus_tsdb_wal_corruptions_total{job="pave"}[1h]) > 0`, severity: "ticket",
			summary:     "The metrics store's WAL is corrupt",
			description: "The tsdb repaired a corrupt write-ahead log: some samples are lost."},
		{name: "MetricsStoreSampleLimit", expr: `increase(prometheus_target_scrapes_exceeded_sample_limit_total{job="pave"}[15m]) > 0`, severity: "ticket",
			summary:     "Scrapes exceed the metrics sample limit",
			description: "Targets export more series than metrics-sample-limit: their scrapes are dropped whole, so their SLOs go blind."},
		{name: "MetricsRemoteWriteFailing", expr: `rate(prometheus_remote_storage_samples_failed_total{job="pave"}[10m]) > 0`, forDur: 15 * time.Minute, severity: "ticket",
			summary:     "Remote write to {{ $labels.url }} fails",
			description: "Samples fail to reach the remote store for 15m; the local store still has them."},
	}},
}

// PlatformRules returns the rule file of Pave's own alerts: the Watchdog,
// Pave's self-scrape, the gateways, the clusters, the telemetry spool and
// the metrics store.
func PlatformRules() []byte { return platformRules() }

var platformRules = sync.OnceValue(func() []byte {
	var groups rulefmt.RuleGroups
	for _, g := range platformGroups {
		rg := rulefmt.RuleGroup{Name: g.name}
		for _, a := range g.alerts {
			labels := map[string]string{"severity": a.severity, "component": "pave"}
			for k, v := range a.labels {
				labels[k] = v
			}
			rg.Rules = append(rg.Rules, rulefmt.Rule{
				Alert: a.name, Expr: a.expr, For: model.Duration(a.forDur), KeepFiringFor: model.Duration(a.keep),
				Labels: labels,
				Annotations: map[string]string{"summary": a.summary, "description": a.description,
					"runbook_url": platformRunbook(a.name)},
			})
		}
		groups.Groups = append(groups.Groups, rg)
	}
	b, err := marshal(groups)
	if err != nil {
		panic(err) // static content; TestPlatformRulesPassPromtoolCheck keeps it valid
	}
	return b
})
