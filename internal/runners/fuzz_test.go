package runners

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzWebhookPayload: any signed body is answered 202, 200 or 400,
// never panics, and tracks at most the one job it names.
func FuzzWebhookPayload(f *testing.F) {
	f.Add([]byte(`{"action":"queued","workflow_job":{"id":1,"labels":["self-hosted","linux"]}}`))
	f.Add([]byte(`{"action":"completed","workflow_job":{"id":1,"started_at":"2026-01-01T00:00:00Z","completed_at":"2025-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"action":"in_progress","workflow_job":{"id":-5,"labels":null},"repository":{"full_name":7}}`))
	f.Add([]byte(`[]`))
	q := newQueue(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := q.Stats().Tracked
		h := q.WebhookHandler(func() string { return secret }, time.Now)
		w := post(t, h, "fz-"+strings.Repeat("x", len(body)%7)+string(rune('a'+len(body)%26)), body, "")
		switch w.Code {
		case http.StatusAccepted, http.StatusOK, http.StatusBadRequest:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if after := q.Stats().Tracked; after > before+1 {
			t.Fatalf("one delivery tracked %d jobs", after-before)
		}
	})
}

// FuzzNextLink: the Link header parser returns "" or a URL taken from
// the header.
func FuzzNextLink(f *testing.F) {
	f.Add(`<https://api.github.com/repositories/1/actions/runs?page=2>; rel="next", <https://api.github.com/repositories/1/actions/runs?page=5>; rel="last"`)
	f.Add(`<>; rel="next"`)
	f.Fuzz(func(t *testing.T, link string) {
		if n := nextLink(link); n != "" && !strings.Contains(link, "<"+n+">") {
			t.Fatalf("%q from %q", n, link)
		}
	})
}
