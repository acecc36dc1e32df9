package vlstore_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/vlstore"
)

// VictoriaLogs drops a line over 2 MB with only a warning in its own log;
// the append must not be acknowledged, and says what was found.
func TestARecordVictoriaLogsDropsFailsItsAppend(t *testing.T) {
	c, _ := openCluster(t)
	o, err := vlstore.ParseURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	// The store fails a batch still incomplete after half its
	// acknowledgement timeout, counted from when the committer picks the
	// batch up, while the append's own deadline started before the 3 MB
	// insert. With 6s, a loaded machine spent the append's whole budget on
	// the insert and the first counts, and the append failed on its own
	// deadline instead of naming the dropped record. The default (30s)
	// leaves the 15s of the decision a wide margin; the test takes ~16s.
	o.AckTimeout = 30 * time.Second
	s, err := vlstore.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	err = s.AppendLogs(context.Background(), []telemetry.Log{
		{Time: now, Service: "orders", Message: "fits"},
		{Time: now, Service: "orders", Message: strings.Repeat("x", 3<<20)},
	})
	if !errors.Is(err, telemetry.ErrUnavailable) || !strings.Contains(err.Error(), "1 of 2 records found") {
		t.Fatalf("append with a dropped record: %v; want ErrUnavailable naming 1 of 2 records", err)
	}
	// The store goes on: the next append is acknowledged.
	if err := s.AppendLogs(context.Background(), []telemetry.Log{{Time: now, Service: "orders", Message: "next"}}); err != nil {
		t.Fatal(err)
	}
}

// VictoriaLogs unreachable: the intake answers a retriable 503, and the
// store is open again once VictoriaLogs is back.
func TestIntakeAnswers503WhileVictoriaLogsIsDown(t *testing.T) {
	c, s := openCluster(t)
	in := telemetry.NewIntake(s, telemetry.Limits{}, slog.New(slog.DiscardHandler))
	post := func() *httptest.ResponseRecorder {
		body := `{"service":"orders","level":"WARN","msg":"psp slow","_time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}` + "\n"
		w := httptest.NewRecorder()
		in.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/jsonlines", strings.NewReader(body)))
		return w
	}
	if w := post(); w.Code != http.StatusOK {
		t.Fatalf("with VictoriaLogs up: %d %s", w.Code, w.Body)
	}
	c.Front.Kill()
	w := post()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "VictoriaLogs") {
		t.Fatalf("with VictoriaLogs down: %d %q %s; want 503 with Retry-After, naming VictoriaLogs", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	c.Front.Start(t)
	if w := post(); w.Code != http.StatusOK {
		t.Fatalf("with VictoriaLogs back: %d %s", w.Code, w.Body)
	}
}
