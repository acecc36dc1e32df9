package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/state"
)

// RegisterRunners serves runner pools (issue 19):
//
//	POST /hooks/github                       GitHub workflow_job webhooks
//	POST /api/v1/runnerpools                 apply a RunnerPool (admin)
//	GET  /api/v1/runnerpools                 status of every pool
//	GET  /api/v1/runnerpools/{name}          one pool: spec, queue, decisions, the day's samples
//	DELETE /api/v1/runnerpools/{name}        delete a pool (admin)
//	GET  /api/v1/runnerpools/{name}/suggest  learned schedule (?timeZone=&weeks=)
//
// /hooks/github is Public on purpose: GitHub cannot hold a Pave
// credential, so each delivery authenticates by its HMAC signature over
// the body (runners.Queue.WebhookHandler), which a bearer token would
// not add to. The front door still applies to it: Host must be allowed,
// and the webhook must be configured with content type application/json.
// Applying a pool needs admin: a local pool's command runs on this machine.
func (s *Server) RegisterRunners(c *runners.Controller, secret func() string) {
	s.Handle("POST /hooks/github", c.Queue.WebhookHandler(secret, c.Now), Public())
	s.HandleFunc("POST /api/v1/runnerpools", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			WriteError(w, http.StatusBadRequest, err)
			return
		}
		p, err := runners.Parse(body)
		if err == nil {
			err = c.Apply(r.Context(), p)
		}
		if err != nil {
			var fe *runners.FieldError
			if errors.As(err, &fe) {
				WriteError(w, http.StatusUnprocessableEntity, &FieldError{Field: fe.Path, Err: fe.Err})
				return
			}
			WriteError(w, http.StatusUnprocessableEntity, err)
			return
		}
		WriteJSON(w, http.StatusOK, p)
	}, Require(auth.RoleAdmin))
	s.HandleFunc("GET /api/v1/runnerpools", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]any{"pools": c.Status(), "webhook": c.Queue.Stats()})
	})
	s.HandleFunc("GET /api/v1/runnerpools/{name}", func(w http.ResponseWriter, r *http.Request) {
		d, err := c.Detail(r.PathValue("name"))
		if err != nil {
			WriteError(w, http.StatusNotFound, err)
			return
		}
		WriteJSON(w, http.StatusOK, d)
	})
	s.HandleFunc("DELETE /api/v1/runnerpools/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := c.Delete(r.Context(), r.PathValue("name")); err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, state.ErrNotFound) {
				status = http.StatusNotFound
			}
			WriteError(w, status, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}, Require(auth.RoleAdmin))
	s.HandleFunc("GET /api/v1/runnerpools/{name}/suggest", func(w http.ResponseWriter, r *http.Request) {
		zone := r.URL.Query().Get("timeZone")
		if zone == "" {
			zone = "UTC"
		}
		if _, err := time.LoadLocation(zone); err != nil || zone == "Local" {
			WriteError(w, http.StatusBadRequest, fmt.Errorf("timeZone: want an IANA time zone such as Asia/Seoul, got %q", zone))
			return
		}
		weeks := 2
		if v := r.URL.Query().Get("weeks"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 12 {
				WriteError(w, http.StatusBadRequest, errors.New("weeks: want 1 to 12"))
				return
			}
			weeks = n
		}
		sug, p, err := c.Suggest(r.PathValue("name"), zone, weeks)
		if err != nil {
			WriteError(w, http.StatusNotFound, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"pool": p.Metadata.Name, "current": p.Spec.Schedules, "suggestion": sug})
	})
}
