package server

import (
	"errors"
	"net/http"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/state"
)

type tokenAPI struct{ tokens auth.Tokens }

func (a tokenAPI) Register(s *Server) {
	s.HandleFunc("POST /api/v1/tokens", a.create, Require(auth.RoleAdmin))
	s.HandleFunc("GET /api/v1/tokens", a.list, Require(auth.RoleAdmin))
	s.HandleFunc("DELETE /api/v1/tokens/{id}", a.revoke, Require(auth.RoleAdmin))
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// TokenResponse carries a new token; Secret is shown this once only.
type TokenResponse struct {
	auth.Token
	Secret string `json:"secret"`
}

func (a tokenAPI) create(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := ReadJSON(r, &req); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "role", Err: err})
		return
	}
	tok, secret, err := a.tokens.Create(r.Context(), req.Name, role)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	WriteJSON(w, http.StatusCreated, TokenResponse{Token: tok, Secret: secret})
}

func (a tokenAPI) list(w http.ResponseWriter, r *http.Request) {
	toks, err := a.tokens.List(r.Context())
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	if toks == nil {
		toks = []auth.Token{}
	}
	WriteJSON(w, http.StatusOK, toks)
}

func (a tokenAPI) revoke(w http.ResponseWriter, r *http.Request) {
	err := a.tokens.Revoke(r.Context(), r.PathValue("id"))
	if errors.Is(err, state.ErrNotFound) {
		WriteError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
