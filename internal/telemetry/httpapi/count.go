package httpapi

import (
	"errors"
	"net/http"

	"github.com/pave-platform/pave/internal/telemetry"
)

// logCount answers GET /api/v1/logs/count?by=FIELD&<the filters of
// /api/v1/logs>: {"by", "counts": [{"value", "count"}], "total",
// "warnings"}, the most frequent value first.
func (a API) logCount(w http.ResponseWriter, r *http.Request) {
	q, by, err := telemetry.ParseCountQuery(r.URL.Query(), a.now())
	if err != nil {
		queryFail(w, err)
		return
	}
	c, ok := a.Store.(telemetry.Counter)
	if !ok {
		writeError(w, http.StatusNotImplemented, "", errors.New("this telemetry backend cannot count; page through /api/v1/logs instead"))
		return
	}
	res, err := c.Count(r.Context(), q, by)
	if err != nil {
		queryFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
