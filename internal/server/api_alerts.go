package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pave-platform/pave/internal/alert"
)

// Alerting is the alert engine as the API needs it (internal/alert).
type Alerting interface {
	// API serves Prometheus' GET /api/v1/rules and /api/v1/alerts.
	API() http.Handler
	Alerts(ctx context.Context) []alert.Alert
	RuleFileErrors() []alert.RuleFileError
	ExternalAlertmanagers() []string
	Silences(ctx context.Context) ([]alert.Silence, error)
	AddSilence(ctx context.Context, s alert.NewSilence) (alert.Silence, error)
	ExpireSilence(ctx context.Context, id string) error
	Deliveries() []alert.Delivery
}

// AlertsAPI mounts the alerting routes: Prometheus' rules and alerts
// (reads, for Grafana and promtool-style clients) and Pave's own view
// of alerts with their silences and inhibitions, silences and
// deliveries. Creating or expiring a silence needs a deployer token.
type AlertsAPI struct{ Engine Alerting }

// Register adds the routes.
func (a AlertsAPI) Register(s *Server) {
	s.Handle("GET /api/v1/rules", a.Engine.API())
	s.Handle("GET /api/v1/alerts", a.Engine.API())
	s.HandleFunc("GET /api/v1/alerting/alerts", a.alerts)
	s.HandleFunc("GET /api/v1/alerting/silences", a.silences)
	s.HandleFunc("POST /api/v1/alerting/silences", a.addSilence)
	s.HandleFunc("DELETE /api/v1/alerting/silences/{id}", a.expire)
	s.HandleFunc("GET /api/v1/alerting/deliveries", a.deliveries)
}

// AlertsView is the answer of GET /api/v1/alerting/alerts.
type AlertsView struct {
	Alerts         []alert.Alert         `json:"alerts"`
	RuleFileErrors []alert.RuleFileError `json:"ruleFileErrors"`
	Alertmanagers  []string              `json:"alertmanagers"`
	// FailingDeliveries are notifications not delivered yet after at
	// least one attempt, or refused for good.
	FailingDeliveries []alert.Delivery `json:"failingDeliveries"`
}

func (a AlertsAPI) alerts(w http.ResponseWriter, r *http.Request) {
	v := AlertsView{Alerts: a.Engine.Alerts(r.Context()), RuleFileErrors: a.Engine.RuleFileErrors(),
		Alertmanagers: a.Engine.ExternalAlertmanagers(), FailingDeliveries: []alert.Delivery{}}
	for _, d := range a.Engine.Deliveries() {
		if d.State == "failed" || d.State == "expired" || (d.State == "pending" && d.Attempts > 0) {
			v.FailingDeliveries = append(v.FailingDeliveries, d)
		}
	}
	if v.Alerts == nil {
		v.Alerts = []alert.Alert{}
	}
	if v.RuleFileErrors == nil {
		v.RuleFileErrors = []alert.RuleFileError{}
	}
	if v.Alertmanagers == nil {
		v.Alertmanagers = []string{}
	}
	WriteJSON(w, http.StatusOK, v)
}

func (a AlertsAPI) silences(w http.ResponseWriter, r *http.Request) {
	sils, err := a.Engine.Silences(r.Context())
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	WriteJSON(w, http.StatusOK, sils)
}

// SilenceRequest creates a silence: matchers as amtool takes them, and
// either a duration from now (e.g. "2h") or an end time.
type SilenceRequest struct {
	Matchers string    `json:"matchers"`
	Duration string    `json:"duration,omitempty"`
	EndsAt   time.Time `json:"endsAt,omitzero"`
	Comment  string    `json:"comment"`
}

func (a AlertsAPI) addSilence(w http.ResponseWriter, r *http.Request) {
	var req SilenceRequest
	if err := ReadJSON(r, &req); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	ns := alert.NewSilence{Matchers: req.Matchers, EndsAt: req.EndsAt, Comment: req.Comment}
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			WriteError(w, http.StatusBadRequest, &FieldError{Field: "duration", Err: fmt.Errorf("%q is not a positive duration, e.g. 2h or 30m", req.Duration)})
			return
		}
		ns.EndsAt = time.Now().Add(d)
	}
	// The author is who the credential says, not what the body claims.
	p := PrincipalFrom(r.Context())
	ns.CreatedBy = p.Name
	if ns.CreatedBy == "" {
		ns.CreatedBy = "token " + p.TokenID
	}
	sil, err := a.Engine.AddSilence(r.Context(), ns)
	if err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	WriteJSON(w, http.StatusCreated, sil)
}

func (a AlertsAPI) expire(w http.ResponseWriter, r *http.Request) {
	err := a.Engine.ExpireSilence(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, alert.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	case err != nil:
		WriteError(w, http.StatusBadRequest, err)
	default:
		WriteJSON(w, http.StatusOK, map[string]string{"expired": r.PathValue("id")})
	}
}

func (a AlertsAPI) deliveries(w http.ResponseWriter, _ *http.Request) {
	ds := a.Engine.Deliveries()
	if ds == nil {
		ds = []alert.Delivery{}
	}
	WriteJSON(w, http.StatusOK, ds)
}
