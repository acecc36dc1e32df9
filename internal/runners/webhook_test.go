package runners

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const secret = "s3cret"

func delivery(t *testing.T, h http.Handler, id, action string, job int64, sig string) *httptest.ResponseRecorder {
	t.Helper()
	body := fmt.Appendf(nil, `{"action":%q,"workflow_job":{"id":%d,"labels":["self-hosted","linux"],"created_at":"2026-03-02T01:00:00Z","started_at":"2026-03-02T01:00:30Z","completed_at":"2026-03-02T01:05:30Z"}}`, action, job)
	return post(t, h, id, body, sig)
}

// deliveryIn is a delivery with the repository and no times (the
// receiver's clock counts).
func deliveryIn(t *testing.T, h http.Handler, id, action string, job int64, repo string) *httptest.ResponseRecorder {
	t.Helper()
	body := fmt.Appendf(nil, `{"action":%q,"workflow_job":{"id":%d,"labels":["self-hosted","linux"]},"repository":{"full_name":%q}}`, action, job, repo)
	return post(t, h, id, body, "")
}

func post(t testing.TB, h http.Handler, id string, body []byte, sig string) *httptest.ResponseRecorder {
	t.Helper()
	if sig == "" {
		sig = Sign(secret, body)
	}
	r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", "workflow_job")
	r.Header.Set("X-GitHub-Delivery", id)
	r.Header.Set("X-Hub-Signature-256", sig)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestWebhookTracksTheQueue(t *testing.T) {
	q := newQueue(t)
	h := q.WebhookHandler(func() string { return secret }, time.Now)
	labels := []string{"self-hosted", "linux", "x64"}
	if w := delivery(t, h, "d1", "queued", 7, ""); w.Code != http.StatusAccepted {
		t.Fatalf("queued: %d %s", w.Code, w.Body)
	}
	if queued, busy, _ := q.Counts(labels); queued != 1 || busy != 0 {
		t.Fatalf("after queued: %d queued %d busy", queued, busy)
	}
	if queued, _, _ := q.Counts([]string{"self-hosted", "windows"}); queued != 0 {
		t.Fatal("a pool without the linux label must not see the job")
	}
	delivery(t, h, "d2", "in_progress", 7, "")
	if queued, busy, _ := q.Counts(labels); queued != 0 || busy != 1 {
		t.Fatalf("after in_progress: %d queued %d busy", queued, busy)
	}
	delivery(t, h, "d3", "completed", 7, "")
	hist := q.History(labels, time.Time{})
	if len(hist) != 1 || hist[0].Duration != 5*time.Minute {
		t.Fatalf("history: %+v", hist)
	}
}

func TestWebhookBadSignatureChangesNothing(t *testing.T) {
	q := newQueue(t)
	h := q.WebhookHandler(func() string { return secret }, time.Now)
	for _, sig := range []string{"sha256=00", "sha1=abc", "sha256=" + fmt.Sprintf("%064x", 1), "garbage", Sign("other secret", []byte("{}"))} {
		if w := delivery(t, h, "d-"+sig, "queued", 1, sig); w.Code != http.StatusUnauthorized {
			t.Fatalf("signature %q: want 401, got %d", sig, w.Code)
		}
	}
	if s := q.Stats(); s.BadSignatures != 5 || s.Tracked != 0 {
		t.Fatalf("want 5 counted and nothing tracked: %+v", s)
	}
	// A refused delivery id is not remembered: the genuine one still counts.
	if w := delivery(t, h, "d-garbage", "queued", 1, ""); w.Code != http.StatusAccepted {
		t.Fatalf("genuine delivery after a forged one with its id: %d", w.Code)
	}
	noSecret := newQueue(t).WebhookHandler(func() string { return "" }, time.Now)
	if w := delivery(t, noSecret, "x", "queued", 1, ""); w.Code != http.StatusUnauthorized || !bytes.Contains(w.Body.Bytes(), []byte("github-webhook-secret")) {
		t.Fatalf("no secret set: want 401 naming the setting, got %d %s", w.Code, w.Body)
	}
}

func TestWebhookReplayChangesNothing(t *testing.T) {
	q := newQueue(t)
	h := q.WebhookHandler(func() string { return secret }, time.Now)
	delivery(t, h, "d1", "queued", 1, "")
	delivery(t, h, "d2", "in_progress", 1, "")
	delivery(t, h, "d3", "completed", 1, "")
	// Replaying the queued delivery would resurrect the job if it counted.
	if w := delivery(t, h, "d1", "queued", 1, ""); w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte("duplicate")) {
		t.Fatalf("replay: want 200 duplicate, got %d %s", w.Code, w.Body)
	}
	if queued, busy, _ := q.Counts([]string{"self-hosted", "linux"}); queued != 0 || busy != 0 {
		t.Fatalf("replay changed the queue: %d queued %d busy", queued, busy)
	}
	// GitHub's manual redelivery has a new id; the same transition twice still changes nothing.
	delivery(t, h, "d4", "completed", 1, "")
	if s := q.Stats(); s.Duplicates != 1 || s.History != 1 || s.Tracked != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestQueuePrunesJobsPastGitHubLimits(t *testing.T) {
	q := newQueue(t)
	h := q.WebhookHandler(func() string { return secret }, time.Now)
	delivery(t, h, "p1", "queued", 1, "")      // queued 2026-03-02T01:00Z
	delivery(t, h, "p2", "queued", 2, "")      // the same, then started 01:00:30Z
	delivery(t, h, "p3", "in_progress", 2, "") //
	at := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	if n := q.Prune(context.Background(), at.Add(23*time.Hour)); n != 0 {
		t.Fatalf("pruned %d jobs within the limits", n)
	}
	if n := q.Prune(context.Background(), at.Add(25*time.Hour)); n != 1 {
		t.Fatalf("want the job queued for 25 h forgotten, pruned %d", n)
	}
	if queued, busy, _ := q.Counts([]string{"self-hosted", "linux"}); queued != 0 || busy != 1 {
		t.Fatalf("after 25 h: %d queued %d busy", queued, busy)
	}
	if n := q.Prune(context.Background(), at.Add(6*24*time.Hour)); n != 1 {
		t.Fatalf("want the job running for 6 days forgotten, pruned %d", n)
	}
}
