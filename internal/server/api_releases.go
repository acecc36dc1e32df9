package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pave-platform/pave/internal/release"
)

// ReleaseAPI serves the release engine: create (a Release spec in YAML or
// JSON), list, status, history, and the actions pause, resume, promote and
// abort.
type ReleaseAPI struct {
	Engine *release.Engine
}

// Register adds the release routes. Reads need viewer, the rest deployer.
func (a ReleaseAPI) Register(s *Server) {
	s.HandleFunc("POST /api/v1/releases", a.create)
	s.HandleFunc("GET /api/v1/releases", a.list)
	s.HandleFunc("GET /api/v1/releases/{name}", a.get)
	s.HandleFunc("GET /api/v1/releases/{name}/history", a.history)
	s.HandleFunc("POST /api/v1/releases/{name}/{action}", a.act)
}

func (a ReleaseAPI) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return
	}
	if len(body) > maxBody {
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body above %d bytes", maxBody))
		return
	}
	spec, err := release.Parse(body)
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	if err := checkRunPaths(r.Context(), "spec.", spec.Spec.Source, spec.Spec.Binary); err != nil {
		WriteError(w, http.StatusForbidden, err)
		return
	}
	out, err := a.Engine.Create(r.Context(), spec)
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	WriteJSON(w, http.StatusCreated, out)
}

func (a ReleaseAPI) list(w http.ResponseWriter, r *http.Request) {
	all, err := a.Engine.List(r.Context())
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	service := r.URL.Query().Get("service")
	out := []release.Release{}
	for _, x := range all {
		if service == "" || x.Spec.Service == service {
			out = append(out, x)
		}
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a ReleaseAPI) get(w http.ResponseWriter, r *http.Request) {
	x, err := a.Engine.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, x)
}

func (a ReleaseAPI) history(w http.ResponseWriter, r *http.Request) {
	evs, err := a.Engine.History(r.Context(), r.PathValue("name"))
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	if evs == nil {
		evs = []release.Event{}
	}
	WriteJSON(w, http.StatusOK, evs)
}

func (a ReleaseAPI) act(w http.ResponseWriter, r *http.Request) {
	action := release.Action(r.PathValue("action"))
	switch action {
	case release.Pause, release.Resume, release.Promote, release.Abort:
	default:
		WriteError(w, http.StatusNotFound, fmt.Errorf("unknown release action %q: use pause, resume, promote or abort", action))
		return
	}
	p := PrincipalFrom(r.Context())
	actor := p.Name
	if actor == "" {
		actor = p.TokenID
	}
	x, err := a.Engine.Act(r.Context(), r.PathValue("name"), action, actor)
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, x)
}

func writeReleaseError(w http.ResponseWriter, err error) {
	var fe *release.FieldError
	switch {
	case errors.As(err, &fe):
		WriteError(w, http.StatusBadRequest, &FieldError{Field: fe.Path, Err: fe.Err})
	case errors.Is(err, release.ErrInvalid):
		WriteError(w, http.StatusBadRequest, err)
	case errors.Is(err, release.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, release.ErrState):
		WriteError(w, http.StatusConflict, err)
	default:
		WriteError(w, http.StatusInternalServerError, err)
	}
}
