package alert

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// The rules and alerts routes of Prometheus' HTTP API
// (https://prometheus.io/docs/prometheus/latest/querying/api/#rules),
// field for field, so Grafana, promtool-style clients and client_golang's
// v1 API read them.

// APIPaths are the Prometheus-compatible routes API serves (GET).
var APIPaths = []string{"/api/v1/rules", "/api/v1/alerts"}

// API returns the handler of APIPaths.
func (e *Engine) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rules", e.rulesAPI)
	mux.HandleFunc("GET /api/v1/alerts", e.alertsAPI)
	return mux
}

type promAlert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

type ruleGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

type alertingRule struct {
	State          string        `json:"state"`
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Duration       float64       `json:"duration"`
	KeepFiringFor  float64       `json:"keepFiringFor"`
	Labels         labels.Labels `json:"labels"`
	Annotations    labels.Labels `json:"annotations"`
	Alerts         []promAlert   `json:"alerts"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

type recordingRule struct {
	Name           string        `json:"name"`
	Query          string        `json:"query"`
	Labels         labels.Labels `json:"labels,omitempty"`
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	EvaluationTime float64       `json:"evaluationTime"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Type           string        `json:"type"`
}

func toPromAlerts(as []*rules.Alert) []promAlert {
	out := make([]promAlert, 0, len(as))
	for _, a := range as {
		pa := promAlert{Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(), ActiveAt: &a.ActiveAt,
			Value: strconv.FormatFloat(a.Value, 'e', -1, 64)}
		if !a.KeepFiringSince.IsZero() {
			pa.KeepFiringSince = &a.KeepFiringSince
		}
		out = append(out, pa)
	}
	return out
}

func (e *Engine) rulesAPI(w http.ResponseWriter, r *http.Request) {
	typ := r.URL.Query().Get("type")
	if typ != "" && typ != "alert" && typ != "record" {
		writeProm(w, http.StatusBadRequest, nil, "bad_data", `invalid query parameter type: "`+typ+`"; want alert or record`)
		return
	}
	names := map[string]bool{}
	for _, n := range r.URL.Query()["rule_name[]"] {
		names[n] = true
	}
	groups := []ruleGroup{}
	for _, g := range e.manager.RuleGroups() {
		rg := ruleGroup{Name: g.Name(), File: g.File(), Rules: []any{}, Interval: g.Interval().Seconds(), Limit: g.Limit(),
			EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation()}
		for _, rule := range g.Rules() {
			if len(names) > 0 && !names[rule.Name()] {
				continue
			}
			lastErr := ""
			if err := rule.LastError(); err != nil {
				lastErr = err.Error()
			}
			switch rule := rule.(type) {
			case *rules.AlertingRule:
				if typ == "record" {
					continue
				}
				rg.Rules = append(rg.Rules, alertingRule{State: rule.State().String(), Name: rule.Name(), Query: rule.Query().String(),
					Duration: rule.HoldDuration().Seconds(), KeepFiringFor: rule.KeepFiringFor().Seconds(), Labels: rule.Labels(),
					Annotations: rule.Annotations(), Alerts: toPromAlerts(rule.ActiveAlerts()), Health: string(rule.Health()),
					LastError: lastErr, EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(), Type: "alerting"})
			case *rules.RecordingRule:
				if typ == "alert" {
					continue
				}
				rg.Rules = append(rg.Rules, recordingRule{Name: rule.Name(), Query: rule.Query().String(), Labels: rule.Labels(),
					Health: string(rule.Health()), LastError: lastErr, EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(), Type: "recording"})
			}
		}
		if len(rg.Rules) > 0 || (typ == "" && len(names) == 0) {
			groups = append(groups, rg)
		}
	}
	writeProm(w, http.StatusOK, map[string]any{"groups": groups}, "", "")
}

func (e *Engine) alertsAPI(w http.ResponseWriter, _ *http.Request) {
	var all []*rules.Alert
	for _, r := range e.manager.AlertingRules() {
		all = append(all, r.ActiveAlerts()...)
	}
	sort.Slice(all, func(i, j int) bool { return labels.Compare(all[i].Labels, all[j].Labels) < 0 })
	writeProm(w, http.StatusOK, map[string]any{"alerts": toPromAlerts(all)}, "", "")
}

// writeProm writes Prometheus' API envelope.
func writeProm(w http.ResponseWriter, status int, data any, errType, errMsg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"status": "success", "data": data}
	if errType != "" {
		body = map[string]any{"status": "error", "errorType": errType, "error": errMsg}
	}
	_ = json.NewEncoder(w).Encode(body)
}
