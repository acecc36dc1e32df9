package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// APIError is the body of every error answer: what was wrong, and where.
type APIError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// FieldError is an error about one input field; the API reports the field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers with an APIError.
func WriteError(w http.ResponseWriter, status int, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		status = http.StatusRequestEntityTooLarge
	}
	body := APIError{Error: err.Error()}
	var fe *FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	WriteJSON(w, status, body)
}

// maxBody bounds request bodies of the JSON API.
const maxBody = 4 << 20

// ReadJSON decodes a request body strictly: unknown fields are errors.
func ReadJSON(r *http.Request, v any) error {
	// The front door bounds the body (http.MaxBytesReader) and a longer
	// one fails with *http.MaxBytesError, which WriteError answers 413;
	// this limit only guards handlers served without it.
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}
