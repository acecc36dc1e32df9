package release

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	amlabels "github.com/prometheus/alertmanager/pkg/labels"
)

// Deploy awareness (issue 16): while a release runs, the alerts of its
// service may end it. spec.analysis.abortOnAlerts lists which: each entry
// is a set of label matchers in Alertmanager's syntax (`severity=page`,
// `alertname=~"Orders.*",severity=page`, `{slo="availability"}`) or a bare
// alert name (`OrdersCheckoutBroken`, short for alertname=...). An alert
// aborts the release when
//
//   - its `service` label is the release's service,
//   - it fires (pending alerts wait for their `for`; silenced ones do not
//     abort: a person said they know),
//   - it became active after the canary got its first traffic (an alert
//     already active then is not the canary's doing: a fix released during
//     an incident is not rolled back by the incident it fixes),
//   - and it matches every matcher of at least one entry.
//
// The release is then rolled back like any failed analysis, with the alert
// named in its message.

// FiringAlert is an alert that fires, as the alert seam reports it.
type FiringAlert struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// ActiveAt is when its condition began to hold; FiredAt when its
	// `for` passed.
	ActiveAt time.Time `json:"activeAt"`
	FiredAt  time.Time `json:"firedAt,omitzero"`
	// Silenced alerts are reported (for the view) but never abort.
	Silenced bool   `json:"silenced,omitempty"`
	Summary  string `json:"summary,omitempty"`
}

// Alerts tells which alerts of a service fire: the alert engine of
// `pave up`. An engine without it (nil) never aborts on alerts.
type Alerts interface {
	Firing(ctx context.Context, service string) ([]FiringAlert, error)
}

// WithAlerts gives the engine the alert seam that spec.analysis.abortOnAlerts
// reads.
func WithAlerts(a Alerts) Option { return func(e *Engine) { e.alerts = a } }

// AlertMatcher is one parsed entry of spec.analysis.abortOnAlerts.
type AlertMatcher []*amlabels.Matcher

// ParseAlertMatcher parses one entry: matchers in Alertmanager's syntax or
// a bare alert name.
func ParseAlertMatcher(s string) (AlertMatcher, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty entry; want an alert name (OrdersErrorBudgetBurn) or matchers (severity=page)")
	}
	if !strings.ContainsAny(s, "=!~{}\",") {
		if !validAlertName(s) {
			return nil, fmt.Errorf("%q is not an alert name (letters, digits, _ and :, not starting with a digit) nor matchers such as severity=page", s)
		}
		s = "alertname=" + s
	}
	ms, err := amlabels.ParseMatchers(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w; want an alert name (OrdersErrorBudgetBurn) or matchers (severity=page, 'alertname=~\"Orders.*\",severity=page')", s, err)
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("%q: no matcher found; want e.g. severity=page", s)
	}
	for _, m := range ms {
		if !m.Matches("") {
			return AlertMatcher(ms), nil
		}
	}
	return nil, fmt.Errorf("%q matches every alert (each matcher matches an empty label); name a label value, e.g. severity=page", s)
}

func validAlertName(s string) bool {
	for i, c := range s {
		letter := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// Matches reports whether every matcher matches the alert's labels (its
// name is the label alertname).
func (m AlertMatcher) Matches(a FiringAlert) bool {
	for _, x := range m {
		v, ok := a.Labels[x.Name]
		if !ok && x.Name == "alertname" {
			v = a.Name
		}
		if !x.Matches(v) {
			return false
		}
	}
	return true
}

// validateAbortOnAlerts checks spec.analysis.abortOnAlerts, naming the entry
// at fault.
func validateAbortOnAlerts(entries []string) error {
	for i, s := range entries {
		if _, err := ParseAlertMatcher(s); err != nil {
			return invalid(fmt.Sprintf("spec.analysis.abortOnAlerts[%d]", i), "%v", err)
		}
	}
	return nil
}

// abortingAlert returns the reason to roll the release back when an alert
// of abortOnAlerts fires for its service, or "" when none does. A seam
// that fails is logged and does not stop the release: alerting's trouble
// is not the canary's.
func (e *Engine) abortingAlert(ctx context.Context, r *Release) string {
	entries := r.Spec.Analysis.AbortOnAlerts
	if e.alerts == nil || len(entries) == 0 || r.Status.Started.IsZero() {
		return ""
	}
	firing, err := e.alerts.Firing(ctx, r.Spec.Service)
	if err != nil {
		e.log.Warn("release: reading the service's alerts for abortOnAlerts", "release", r.Metadata.Name, "err", err)
		return ""
	}
	sort.Slice(firing, func(i, j int) bool { return firing[i].ActiveAt.Before(firing[j].ActiveAt) })
	for _, a := range firing {
		if a.Silenced || a.Labels["service"] != r.Spec.Service || a.ActiveAt.Before(r.Status.Started) {
			continue
		}
		for _, s := range entries {
			m, err := ParseAlertMatcher(s)
			if err != nil || !m.Matches(a) {
				continue
			}
			why := fmt.Sprintf("aborted: alert %s firing for %s (%s) since %s, matching spec.analysis.abortOnAlerts %q",
				a.Name, r.Spec.Service, alertLabels(a.Labels), firedAt(a).UTC().Format(time.RFC3339), s)
			if a.Summary != "" {
				why += ": " + a.Summary
			}
			return why
		}
	}
	return ""
}

func firedAt(a FiringAlert) time.Time {
	if !a.FiredAt.IsZero() {
		return a.FiredAt
	}
	return a.ActiveAt
}

func alertLabels(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		if k != "alertname" && k != "service" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + ls[k]
	}
	return strings.Join(parts, ",")
}
