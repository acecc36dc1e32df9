package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/traffic"
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
	s.HandleFunc("POST /api/v1/services/{name}/undo", a.undo)
}

// undo goes back to the service's previous version: an unfinished release
// is aborted (200), otherwise a release of the previously promoted
// version starts with that release's spec (201).
func (a ReleaseAPI) undo(w http.ResponseWriter, r *http.Request) {
	service := r.PathValue("name")
	if err := traffic.ValidName("service", service); err != nil {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "service", Err: err})
		return
	}
	p := PrincipalFrom(r.Context())
	actor := p.Name
	if actor == "" {
		actor = p.TokenID
	}
	x, created, err := a.Engine.Undo(r.Context(), service, actor)
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	if !created {
		WriteJSON(w, http.StatusOK, ReleaseAnswer{Release: x, Message: fmt.Sprintf("release %s aborted: traffic back on %s", x.Metadata.Name, orNone(x.Status.Stable))})
		return
	}
	WriteJSON(w, http.StatusCreated, ReleaseAnswer{Release: x, Message: fmt.Sprintf("release %s created: %s goes back from %s to %s", x.Metadata.Name, service, orNone(x.Status.Stable), x.Spec.Version)})
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
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
		WriteError(w, runPathStatus(err), err)
		return
	}
	// A service Pave does not know is created only on purpose
	// (?create=true, pave release --create): a typo must not start one.
	out, err := a.Engine.CreateWith(r.Context(), spec, release.CreateOptions{NewService: r.URL.Query().Get("create") == "true"})
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
	var same *release.UnchangedError
	if errors.As(err, &same) {
		// Pausing a paused release is what the caller wanted: 200.
		WriteJSON(w, http.StatusOK, ReleaseAnswer{Release: x, Message: same.Message, Unchanged: true})
		return
	}
	if err != nil {
		writeReleaseError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, ReleaseAnswer{Release: x, Message: x.Status.Message})
}

// ReleaseAnswer is a release with a message on what the request did; it
// decodes as a release.Release too.
type ReleaseAnswer struct {
	release.Release
	Message string `json:"message,omitempty"`
	// Unchanged says the action was a no-op (pausing a paused release).
	Unchanged bool `json:"unchanged,omitempty"`
}

func writeReleaseError(w http.ResponseWriter, err error) {
	var fe *release.FieldError
	switch {
	case errors.As(err, &fe) && errors.Is(err, release.ErrUnknownService):
		WriteError(w, http.StatusNotFound, &FieldError{Field: fe.Path, Err: fe.Err})
	case errors.As(err, &fe) && errors.Is(err, release.ErrUnusable):
		WriteError(w, http.StatusUnprocessableEntity, &FieldError{Field: fe.Path, Err: fe.Err})
	case errors.As(err, &fe):
		WriteError(w, http.StatusBadRequest, &FieldError{Field: fe.Path, Err: fe.Err})
	case errors.Is(err, release.ErrInvalid):
		WriteError(w, http.StatusBadRequest, err)
	case errors.Is(err, release.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, release.ErrState), errors.Is(err, release.ErrBusy):
		WriteError(w, http.StatusConflict, err)
	default:
		WriteError(w, http.StatusInternalServerError, err)
	}
}
