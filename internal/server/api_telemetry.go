package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/httpapi"
)

// TelemetryAPI serves log search and trace lookup from the telemetry store
// (the routes are httpapi's, which pave-telemetry serves on its own):
//
//	GET /api/v1/logs?service=&since=&from=&to=&level=&trace_id=&where=k=v&contains=&regex=&limit=&cursor=
//	GET /api/v1/logs/count?by=FIELD&<the filters above>
//	GET /api/v1/traces/{trace_id}
//	GET /api/v1/telemetry/stats
//	GET /api/traces/{trace_id}
type TelemetryAPI struct {
	Store telemetry.Store
	// Stats reports bytes per tier; nil when the backend has no such report.
	Stats func() telemetry.Stats
	Now   func() time.Time
}

// Register adds the telemetry routes to s.
func (a TelemetryAPI) Register(s *Server) {
	for _, r := range (httpapi.API{Store: a.Store, Stats: a.Stats, Now: a.Now}).Routes() {
		s.HandleFunc(r.Pattern, r.Handler)
	}
}

// queryFail answers a telemetry query's error: 400 naming the parameter
// for a bad query, else 500.
func queryFail(w http.ResponseWriter, err error) {
	var qe *telemetry.QueryError
	if errors.As(err, &qe) {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: qe.Param, Err: qe.Err})
		return
	}
	WriteError(w, http.StatusInternalServerError, err)
}
