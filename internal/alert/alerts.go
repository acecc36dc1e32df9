package alert

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Alert is an active alert as `pave alerts` and the alerts page show it:
// the rule's state (pending or firing) and, for a firing one, whether the
// embedded Alertmanager notifies it or why not (silenced by which
// silences, inhibited by which alert).
type Alert struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// State is pending (the condition holds, `for` has not passed),
	// firing, silenced or inhibited.
	State       string    `json:"state"`
	ActiveAt    time.Time `json:"activeAt"`
	FiredAt     time.Time `json:"firedAt,omitzero"`
	Value       float64   `json:"value"`
	SilencedBy  []string  `json:"silencedBy,omitempty"`
	InhibitedBy []string  `json:"inhibitedBy,omitempty"`
	// Why says in words why the alert is in its state.
	Why string `json:"why"`
	// Release is the release of the alert's service that ran while the
	// alert was active, if any (deploy.go).
	Release *Release `json:"release,omitempty"`
}

// Alerts are the active alerts of every alerting rule, firing first.
func (e *Engine) Alerts(ctx context.Context) []Alert {
	var out []Alert
	for _, r := range e.manager.AlertingRules() {
		for _, a := range r.ActiveAlerts() {
			v := Alert{Name: r.Name(), Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), State: a.State.String(),
				ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, Value: a.Value}
			if rel, ok := e.releaseOf(ctx, a.Labels, a.ActiveAt); ok {
				v.Release = &rel
				v.Annotations = withRelease(v.Annotations, rel, e.releaseURL(rel.Name))
			}
			if v.State == "pending" {
				v.Why = fmt.Sprintf("condition true since %s; fires after `for` %s", a.ActiveAt.UTC().Format(time.RFC3339), r.HoldDuration()) + duringRelease(v.Release)
				out = append(out, v)
				continue
			}
			st := e.notifier.status(ctx, toModel(a.Labels))
			v.SilencedBy, v.InhibitedBy = st.SilencedBy, e.inhibitorNames(st.InhibitedBy)
			switch {
			case len(v.SilencedBy) > 0:
				v.State, v.Why = "silenced", e.silenceWhy(ctx, v.SilencedBy)
			case len(v.InhibitedBy) > 0:
				v.State, v.Why = "inhibited", "inhibited by the firing alert "+strings.Join(v.InhibitedBy, ", ")+" (inhibit_rules of the alerting configuration)"
			default:
				v.Why = "firing since " + a.FiredAt.UTC().Format(time.RFC3339) + "; notified to the receivers of its route"
			}
			v.Why += duringRelease(v.Release)
			out = append(out, v)
		}
	}
	rank := map[string]int{"firing": 0, "pending": 1, "inhibited": 2, "silenced": 3}
	sort.Slice(out, func(i, j int) bool {
		if rank[out[i].State] != rank[out[j].State] {
			return rank[out[i].State] < rank[out[j].State]
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return labels.FromMap(out[i].Labels).String() < labels.FromMap(out[j].Labels).String()
	})
	return out
}

func toModel(ls labels.Labels) model.LabelSet {
	m := model.LabelSet{}
	ls.Range(func(l labels.Label) { m[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return m
}

// inhibitorNames turns the fingerprints Alertmanager reports into the
// inhibiting alerts' names and labels.
func (e *Engine) inhibitorNames(fps []string) []string {
	var out []string
	for _, s := range fps {
		fp, err := model.ParseFingerprint(s)
		if err != nil {
			out = append(out, s)
			continue
		}
		a, err := e.notifier.alerts.Get(fp)
		if err != nil {
			out = append(out, s)
			continue
		}
		out = append(out, a.Labels.String())
	}
	return out
}

func (e *Engine) silenceWhy(ctx context.Context, ids []string) string {
	sils, err := e.Silences(ctx)
	if err != nil {
		return "silenced by " + strings.Join(ids, ", ")
	}
	var parts []string
	for _, s := range sils {
		for _, id := range ids {
			if s.ID == id {
				parts = append(parts, fmt.Sprintf("silence %s by %s until %s: %s", s.ID, s.CreatedBy, s.EndsAt.UTC().Format(time.RFC3339), s.Comment))
			}
		}
	}
	if len(parts) == 0 {
		return "silenced by " + strings.Join(ids, ", ")
	}
	return strings.Join(parts, "; ")
}

// Deliveries are the notifications the outbox holds (not delivered yet)
// and the last ones delivered or refused.
func (e *Engine) Deliveries() []Delivery { return e.notifier.outbox.deliveries() }

// ExternalAlertmanagers are the external Alertmanagers alerts go to.
func (e *Engine) ExternalAlertmanagers() []string {
	var out []string
	for _, u := range e.external.URLs() {
		out = append(out, u.String())
	}
	return out
}

func withRelease(ann map[string]string, rel Release, link string) map[string]string {
	if ann == nil {
		ann = map[string]string{}
	}
	ann["release"], ann["release_version"], ann["release_url"] = rel.Name, rel.Version, link
	return ann
}

func duringRelease(rel *Release) string {
	if rel == nil {
		return ""
	}
	return fmt.Sprintf("; during release %s of version %s (%s)", rel.Name, rel.Version, strings.ReplaceAll(rel.Phase, "_", " "))
}
