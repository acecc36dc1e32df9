package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pave-platform/pave/internal/runtime"
)

// RuntimeAPI serves /api/v1/runtime: which versions of which services run,
// with how many ready instances, and running or stopping a version.
type RuntimeAPI struct {
	Target runtime.Target
}

// Register adds the runtime routes to s.
func (a RuntimeAPI) Register(s *Server) {
	s.HandleFunc("GET /api/v1/runtime", a.list)
	s.HandleFunc("GET /api/v1/runtime/{service}", a.listService)
	s.HandleFunc("DELETE /api/v1/runtime/{service}", a.removeService)
	s.HandleFunc("GET /api/v1/runtime/{service}/{version}", a.status)
	s.HandleFunc("PUT /api/v1/runtime/{service}/{version}", a.deploy)
	s.HandleFunc("DELETE /api/v1/runtime/{service}/{version}", a.remove)
}

// RuntimeDeployRequest is the body of PUT /api/v1/runtime/{service}/{version}:
// exactly one of source, binary and image, as absolute paths on the
// control plane's machine.
type RuntimeDeployRequest struct {
	Source        string            `json:"source,omitempty"`
	Binary        string            `json:"binary,omitempty"`
	Image         string            `json:"image,omitempty"`
	Replicas      *int              `json:"replicas,omitempty"` // default 1
	Env           map[string]string `json:"env,omitempty"`
	ReadinessPath string            `json:"readiness_path,omitempty"`
}

// RuntimeList is the answer of the list routes.
type RuntimeList struct {
	Deployments []runtime.Status `json:"deployments"`
}

func (a RuntimeAPI) list(w http.ResponseWriter, r *http.Request) {
	all, err := a.Target.List(r.Context())
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, RuntimeList{Deployments: all})
}

// service lists one service's versions; 404 when it has none.
func (a RuntimeAPI) service(r *http.Request) ([]runtime.Status, error) {
	service := r.PathValue("service")
	if err := runtime.ValidName("service", service); err != nil {
		return nil, err
	}
	all, err := a.Target.List(r.Context())
	if err != nil {
		return nil, err
	}
	out := []runtime.Status{}
	for _, st := range all {
		if st.Service == service {
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		return nil, &FieldError{Field: "service", Err: fmt.Errorf("service %s has no version running (see `pave ps`): %w", service, runtime.ErrNotFound)}
	}
	return out, nil
}

func (a RuntimeAPI) listService(w http.ResponseWriter, r *http.Request) {
	out, err := a.service(r)
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, RuntimeList{Deployments: out})
}

func (a RuntimeAPI) removeService(w http.ResponseWriter, r *http.Request) {
	versions, err := a.service(r)
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	for _, st := range versions {
		if err := a.Target.Remove(r.Context(), st.Service, st.Version); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			writeRuntimeError(w, err)
			return
		}
	}
	WriteJSON(w, http.StatusAccepted, RuntimeList{Deployments: versions})
}

func (a RuntimeAPI) status(w http.ResponseWriter, r *http.Request) {
	st, err := a.Target.Status(r.Context(), r.PathValue("service"), r.PathValue("version"))
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, st)
}

func (a RuntimeAPI) deploy(w http.ResponseWriter, r *http.Request) {
	var req RuntimeDeployRequest
	if err := ReadJSON(r, &req); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if err := checkRunPaths(r.Context(), "", req.Source, req.Binary); err != nil {
		WriteError(w, runPathStatus(err), err)
		return
	}
	d := runtime.Deployment{
		Service: r.PathValue("service"), Version: r.PathValue("version"),
		Source: req.Source, Binary: req.Binary, Image: req.Image, Replicas: 1,
		Env: req.Env, ReadinessPath: req.ReadinessPath,
	}
	if req.Replicas != nil {
		d.Replicas = *req.Replicas
	}
	if err := a.Target.Deploy(r.Context(), d); err != nil {
		writeRuntimeError(w, err)
		return
	}
	st, err := a.Target.Status(r.Context(), d.Service, d.Version)
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, st)
}

func (a RuntimeAPI) remove(w http.ResponseWriter, r *http.Request) {
	service, version := r.PathValue("service"), r.PathValue("version")
	st, err := a.Target.Status(r.Context(), service, version)
	if err != nil {
		writeRuntimeError(w, err)
		return
	}
	// A version removed already but still stopping is no error.
	if err := a.Target.Remove(r.Context(), service, version); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		writeRuntimeError(w, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, st)
}

func writeRuntimeError(w http.ResponseWriter, err error) {
	var rfe *runtime.FieldError
	if errors.As(err, &rfe) {
		err = &FieldError{Field: rfe.Field, Err: rfe.Err}
	}
	switch {
	case errors.Is(err, runtime.ErrInvalid):
		WriteError(w, http.StatusBadRequest, err)
	case errors.Is(err, runtime.ErrBuild):
		WriteError(w, http.StatusUnprocessableEntity, err)
	case errors.Is(err, runtime.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	default:
		WriteError(w, http.StatusInternalServerError, err)
	}
}
