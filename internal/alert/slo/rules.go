package slo

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/stats"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Burn is one multiwindow burn-rate alert of the SRE Workbook's table for
// a 30-day SLO: it fires when both windows burn the budget Factor times
// faster than allowed.
type Burn struct {
	Severity    string
	Factor      float64
	Long, Short string // windows, e.g. "1h", "5m"
	// KeepFiringFor holds the alert through a short dip under the threshold
	// so a burn that wobbles pages once.
	KeepFiringFor time.Duration
	// MinHistory: the tier judges its long window only once the
	// service's series are this old (see coverage); 0 for no such guard.
	MinHistory time.Duration
}

// Burns: page on 14.4x over 1h and 5m (2% of the budget in an hour) and 6x
// over 6h and 30m (5% in six hours); ticket on 1x over 3d and 6h (10% in
// three days).
var Burns = []Burn{
	{Severity: "page", Factor: 14.4, Long: "1h", Short: "5m", KeepFiringFor: 5 * time.Minute},
	{Severity: "page", Factor: 6, Long: "6h", Short: "30m", KeepFiringFor: 10 * time.Minute},
	{Severity: "ticket", Factor: 1, Long: "3d", Short: "6h", KeepFiringFor: 30 * time.Minute, MinHistory: 24 * time.Hour},
}

// windows are the ranges the recording rules keep, shortest first.
var windows = []string{"5m", "30m", "1h", "6h", "3d"}

// Traffic-stopped alert: zero requests in trafficQuiet after at least
// trafficBusy requests in the hour before. Under Poisson arrivals at the
// slowest rate that arms the alert (2 a minute) the chance of a natural
// 10-minute silence is e^-20, so a quiet service never trips it.
const (
	trafficQuiet = "10m"
	trafficBusy  = 120
)

// Recorded series names.
const (
	ratioRecord    = "pave_slo:sli_error:ratio_rate"
	requestsRecord = "pave_slo:requests:rate"
)

// minRequests is the minimum-traffic guard of a burn-rate alert: the long
// window must hold at least this many requests. With N requests and a
// threshold ratio of factor×budget, an alert then needs more than
// minFailures failed requests: ceil(minFailures / (factor × budget)). For
// 99.9% and the 1h page that is 209 requests an hour, so one failed
// request of 3 at night never pages, while a busy service pages on the
// ratio alone. Services too quiet for the guard are covered by probes.
func minRequests(minFailures int, factor, budget float64) float64 {
	return math.Ceil(float64(minFailures) / (factor * budget))
}

// averageWindow is the window whose request rate stands for the service's
// usual traffic in the significant-burn guard.
const averageWindow = "3d"

// significantShare is the significant-burn guard: each window of a tier
// must hold at least this share of the failed requests the tier stands for
// at the service's usual traffic, i.e.
//
//	failed requests/s over W >= significantShare × factor × budget × requests/s over 3d
//
// The Workbook's tiers mean a share of the 30-day budget (14.4x over 1h is
// 2% of it) only when traffic is steady; a quiet night with one request a
// minute crosses 6x over 6h with three failed requests, 0.2% of a month's
// budget. Counting failures against the usual traffic keeps that silent,
// while a busy hour, at or above the 3-day average, passes the guard as
// soon as it passes the ratio (the half leaves room for a burn in a
// slower-than-average hour). Applied to the short window too, it keeps a
// ticket whose 3d window still holds an old burn from re-opening on each
// quiet night's few failures.
const significantShare = 0.5

// sli names the series an objective is computed from.
type sli struct {
	kind   string // availability or latency
	total  string // a counter selector of every request
	bad    string // PromQL of the bad requests' rate over [W] (W is replaced)
	budget float64
}

func (s *SLOs) slis(service string) []sli {
	q := strconv.Quote(service)
	var out []sli
	switch s.Source {
	case SourceGateway:
		sel := `service=` + q + `,version!~"cluster:.*"` // edge rows count the same requests again
		if s.Availability > 0 {
			out = append(out, sli{kind: "availability", budget: 1 - s.Availability,
				total: `pave_gateway_requests_total{` + sel + `}`,
				bad:   `sum(rate(pave_gateway_requests_total{` + sel + `,class=~"5xx|failed|ejected"}[W]))`})
		}
		if s.Latency > 0 {
			count := `pave_gateway_request_duration_seconds_count{` + sel + `}`
			out = append(out, sli{kind: "latency", budget: 1 - s.Latency, total: count,
				bad: `(sum(rate(` + count + `[W])) - sum(rate(pave_gateway_request_duration_seconds_bucket{` + sel + `,le="` + s.LatencyBucket + `"}[W])))`})
		}
	default:
		sel := `service=` + q
		if s.Availability > 0 {
			out = append(out, sli{kind: "availability", budget: 1 - s.Availability,
				total: `http_server_requests_total{` + sel + `}`,
				bad:   `sum(rate(http_server_requests_total{` + sel + `,status_class="5xx"}[W]))`})
		}
		if s.Latency > 0 {
			count := `http_server_request_duration_seconds_count{` + sel + `}`
			out = append(out, sli{kind: "latency", budget: 1 - s.Latency, total: count,
				bad: `(sum(rate(` + count + `[W])) - sum(rate(http_server_request_duration_seconds_bucket{` + sel + `,le="` + s.LatencyBucket + `"}[W])))`})
		}
	}
	return out
}

// RuleFile returns the Prometheus rule file (rulefmt YAML) for the service
// whose .pave.yaml is in dir: its SLO burn-rate alerts and probe alerts.
// It returns nil, nil when the service declares neither SLOs nor probes.
func RuleFile(service, dir string) ([]byte, error) {
	svc, err := Read(service, dir)
	if err != nil {
		return nil, err
	}
	return Rules(svc)
}

// Rules renders svc's rule file; nil when it declares nothing to alert on.
func Rules(svc Service) ([]byte, error) {
	var rules []rulefmt.Rule
	if svc.SLOs != nil {
		rules = append(rules, sloRules(svc)...)
	}
	rules = append(rules, probeRules(svc)...)
	if len(rules) == 0 {
		return nil, nil
	}
	// One group, so each evaluation's alerts read the ratios recorded in
	// the same evaluation (rules of a group run in order).
	return marshal(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{{Name: "pave-slo-" + svc.Name, Rules: rules}}})
}

func sloRules(svc Service) []rulefmt.Rule {
	s := svc.SLOs
	var rules []rulefmt.Rule
	for _, x := range s.slis(svc.Name) {
		labels := func(extra ...string) map[string]string {
			m := map[string]string{"service": svc.Name, "slo": x.kind}
			for i := 0; i+1 < len(extra); i += 2 {
				m[extra[i]] = extra[i+1]
			}
			if svc.Owner != "" && len(extra) > 0 {
				m["owner"] = svc.Owner
			}
			return m
		}
		for _, w := range windows {
			rules = append(rules,
				rulefmt.Rule{Record: requestsRecord + w, Expr: `sum(rate(` + x.total + `[` + w + `]))`, Labels: labels()},
				rulefmt.Rule{Record: ratioRecord + w, Labels: labels(),
					// No bad series yet (kit creates them on the first
					// 5xx) means a ratio of 0, not no ratio.
					Expr: `(` + strings.ReplaceAll(x.bad, "[W]", "["+w+"]") + ` or vector(0))` + "\n/\n" + `sum(rate(` + x.total + `[` + w + `]))`})
		}
		sel := `{service=` + strconv.Quote(svc.Name) + `,slo="` + x.kind + `"}`
		what := map[string]string{"availability": "failed requests", "latency": "requests slower than " + s.LatencyThreshold.String()}[x.kind]
		for _, b := range Burns {
			threshold := round(b.Factor * x.budget)
			n := minRequests(s.MinFailures, b.Factor, x.budget)
			longSecs := time.Duration(mustDuration(b.Long)).Seconds()
			rules = append(rules, rulefmt.Rule{
				Alert: "ErrorBudgetBurn",
				Expr: ratioRecord + b.Long + sel + " > " + num(threshold) + "\nand\n" +
					ratioRecord + b.Short + sel + " > " + num(threshold) + "\nand\n" +
					"# minimum traffic: " + num(n) + " requests in " + b.Long + "\n" +
					requestsRecord + b.Long + sel + " >= " + num(round(n/longSecs)) +
					significantBurn(sel, threshold, b.Long, b.Short) +
					coverage(b, x.total),
				KeepFiringFor: model.Duration(b.KeepFiringFor),
				Labels:        labels("severity", b.Severity, "window", b.Long),
				Annotations: links(svc, map[string]string{
					"summary": fmt.Sprintf("%s burns its %s error budget %gx too fast", svc.Name, x.kind, b.Factor),
					// No $value: the alert's value is the long window's
					// ratio already, and a static text can be tested exactly.
					"description": fmt.Sprintf("More than %s%% of requests were %s over %s and over %s, against an objective of %s%%: at %gx the 30-day budget lasts %s.",
						num(round(100*threshold)), what, b.Long, b.Short, num(round(100*(1-x.budget))), b.Factor, lasts(b.Factor)),
				}),
			})
		}
		rules = append(rules,
			rulefmt.Rule{
				Alert: "SLOTrafficStopped",
				Expr: `sum(increase(` + x.total + `[` + trafficQuiet + `])) == 0` + "\nand on()\n" +
					`sum(increase(` + x.total + `[1h] offset ` + trafficQuiet + `)) >= ` + strconv.Itoa(trafficBusy),
				KeepFiringFor: model.Duration(5 * time.Minute),
				Labels:        labels("severity", "page"),
				Annotations: links(svc, map[string]string{
					"summary":     svc.Name + " receives no requests",
					"description": fmt.Sprintf("No request reached %s in the last %s after %d or more in the hour before: a total outage in front of it (gateway, DNS, routing) burns no ratio, so this alert stands in for the burn-rate ones.", svc.Name, trafficQuiet, trafficBusy),
				}),
			},
			rulefmt.Rule{
				Alert: "SLOSeriesAbsent",
				// Only a series that existed in the last day: a service that
				// never served is not "stopped".
				Expr:          `absent(` + x.total + `)` + "\nand on()\n" + `count(last_over_time(` + x.total + `[1d])) > 0`,
				For:           model.Duration(10 * time.Minute),
				KeepFiringFor: model.Duration(10 * time.Minute),
				Labels:        labels("severity", "page"),
				Annotations: links(svc, map[string]string{
					"summary":     svc.Name + "'s SLO series stopped",
					"description": fmt.Sprintf("%s has had no samples for 10m although it had some in the last day: the %s SLO cannot be evaluated (instances down, scrape failing, or the metric renamed).", x.total, x.kind),
				}),
			})
	}
	return rules
}

// significantBurn renders the significant-burn guard (significantShare)
// for both windows of a tier; the long window of the ticket tier is the
// average window itself, where the guard is implied by the ratio.
func significantBurn(sel string, threshold float64, long, short string) string {
	out := "\nand\n# significant burn: failed requests reach half the tier's share of the budget at the " + averageWindow + " average traffic\n"
	for i, w := range []string{long, short} {
		if w == averageWindow {
			continue
		}
		if i > 0 && long != averageWindow {
			out += "\nand\n"
		}
		out += ratioRecord + w + sel + " * " + requestsRecord + w + sel +
			" >= " + num(round(significantShare*threshold)) + " * " + requestsRecord + averageWindow + sel
	}
	return out
}

// coverage renders the coverage guard of a tier with MinHistory: the
// service had samples in the short window that ends MinHistory ago, i.e.
// its series are at least MinHistory old.
//
// A window that its data does not cover yet says less than the tier
// claims. On a new service's first morning the 3d window holds one quiet
// night: three failures among its few thousand requests are over 1x
// (0.1%), though they are a few thousandths of the month's budget, and the
// 3-day average traffic of the significant-burn guard is diluted by the
// days that are not there. The ticket waits for a day of history, the
// shortest that holds a whole daily cycle (busy hours, not one night);
// meanwhile the two pages, whose windows fill within hours, watch the
// service, and every burn over 6x pages. Waiting for all three days would
// leave a new service without tickets that long and turn a burn of its
// first days into a ticket days late. Any series of the service counts,
// so instances that come and go with releases do not reset it.
func coverage(b Burn, total string) string {
	if b.MinHistory == 0 {
		return ""
	}
	return "\nand on()\n# coverage: the service's series are at least " + model.Duration(b.MinHistory).String() + " old\n" +
		"count(present_over_time(" + total + "[" + b.Short + "] offset " + model.Duration(b.MinHistory).String() + ")) > 0"
}

func probeRules(svc Service) []rulefmt.Rule {
	var rules []rulefmt.Rule
	seen := map[string]bool{}
	for _, p := range svc.Probes {
		if seen[p.Route()] {
			continue
		}
		seen[p.Route()] = true
		sel := `pave_probe_success{service=` + strconv.Quote(svc.Name) + `,route=` + strconv.Quote(p.Route()) + `}`
		// Three failed checks in a row, and at least two minutes so a
		// single slow scrape cannot page.
		window := max(3*time.Duration(p.Interval), 2*time.Minute)
		lbl := func(sev string) map[string]string {
			m := map[string]string{"service": svc.Name, "route": p.Route(), "severity": sev}
			if svc.Owner != "" {
				m["owner"] = svc.Owner
			}
			return m
		}
		rules = append(rules,
			rulefmt.Rule{
				Alert:         "ProbeFailing",
				Expr:          `max_over_time(` + sel + `[` + model.Duration(window).String() + `]) == 0`,
				KeepFiringFor: model.Duration(5 * time.Minute),
				Labels:        lbl("page"),
				Annotations: links(svc, map[string]string{
					"summary":     fmt.Sprintf("%s: probe %s fails in cluster {{ $labels.cluster }}", svc.Name, p.Route()),
					"description": fmt.Sprintf("Every check of %s through the gateway of {{ $labels.cluster }} failed for %s (want status %d within %s).", p.Route(), model.Duration(window), p.ExpectStatus, time.Duration(p.Timeout)),
				}),
			},
			rulefmt.Rule{
				Alert:  "ProbeAbsent",
				Expr:   `absent(` + sel + `)`,
				For:    model.Duration(10 * time.Minute),
				Labels: lbl("ticket"),
				Annotations: links(svc, map[string]string{
					"summary":     fmt.Sprintf("%s: probe %s reports nothing", svc.Name, p.Route()),
					"description": "The probe's gauge has been missing for 10m: the prober is not running, so the service's availability without traffic is unwatched.",
				}),
			})
	}
	return rules
}

// links adds the runbook, dashboard and request viewer links.
func links(svc Service, ann map[string]string) map[string]string {
	base := strings.TrimRight(svc.PaveServer, "/")
	q := url.QueryEscape(svc.Name)
	runbook, dash, reqs := DefaultRunbook, base+"/ui/services.html?service="+q, base+"/ui/logs.html?service="+q+"&level=error&since=1h"
	if s := svc.SLOs; s != nil {
		runbook = s.Runbook
		if s.Dashboard != "" {
			dash = s.Dashboard
		}
		if s.Requests != "" {
			reqs = s.Requests
		}
	}
	ann["runbook_url"], ann["dashboard_url"], ann["requests_url"] = runbook, dash, reqs
	return ann
}

// lasts says how long a 30-day budget lasts at factor times the allowed rate.
func lasts(factor float64) string {
	h := 30 * 24 / factor
	if h >= 48 {
		return strconv.FormatFloat(math.Round(h/24*10)/10, 'f', -1, 64) + " days"
	}
	return strconv.FormatFloat(math.Round(h*10)/10, 'f', -1, 64) + " hours"
}

func round(f float64) float64 {
	if f == 0 {
		return 0
	}
	p := math.Pow(10, 6-math.Ceil(math.Log10(math.Abs(f))))
	return math.Round(f*p) / p
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func mustDuration(s string) model.Duration {
	d, err := model.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// gatewayBounds are the gateway's latency bucket bounds in seconds.
var gatewayBounds = sync.OnceValue(func() []float64 {
	b := make([]float64, len(stats.LatencyBounds))
	for i, ms := range stats.LatencyBounds {
		b[i] = ms / 1000
	}
	return b
})

// marshal renders groups as YAML and checks them with Prometheus' own
// parser, so a generated file is never one the engine refuses.
func marshal(groups rulefmt.RuleGroups) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# Generated by Pave (internal/alert/slo) from .pave.yaml; do not edit.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(groups); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if _, errs := rulefmt.Parse(buf.Bytes(), false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil); len(errs) > 0 {
		return nil, fmt.Errorf("generated rules do not parse (a bug in pave): %w", errs[0])
	}
	return buf.Bytes(), nil
}
