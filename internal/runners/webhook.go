package runners

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// workflowJobEvent is the part of GitHub's workflow_job payload we read.
type workflowJobEvent struct {
	Action      string `json:"action"`
	WorkflowJob struct {
		ID          int64     `json:"id"`
		Labels      []string  `json:"labels"`
		CreatedAt   time.Time `json:"created_at"`
		StartedAt   time.Time `json:"started_at"`
		CompletedAt time.Time `json:"completed_at"`
	} `json:"workflow_job"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
}

// WebhookHandler serves GitHub's webhooks (POST /hooks/github). GitHub
// cannot hold a Pave credential, so a delivery authenticates by its
// X-Hub-Signature-256 (HMAC-SHA256 of the body with the shared secret);
// a bad or missing signature is refused with 401 and counted, and
// changes nothing. A delivery id seen before changes nothing either, also
// after a restart: the ids are kept in the state store.
// secret returns the current github-webhook-secret ("" refuses all).
func (q *Queue) WebhookHandler(secret func() string, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeErr(w, http.StatusRequestEntityTooLarge, "reading the body: "+err.Error())
			return
		}
		key := secret()
		if key == "" {
			q.badSig.Add(1)
			writeErr(w, http.StatusUnauthorized, "no github-webhook-secret is set on this control plane: set it (pave up --github-webhook-secret or PAVE_GITHUB_WEBHOOK_SECRET) and the same secret on the GitHub webhook")
			return
		}
		if !validSignature(key, body, r.Header.Get("X-Hub-Signature-256")) {
			q.badSig.Add(1)
			writeErr(w, http.StatusUnauthorized, "bad or missing X-Hub-Signature-256: the webhook's secret must equal the github-webhook-secret setting")
			return
		}
		event, delivery := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
		if delivery == "" {
			writeErr(w, http.StatusBadRequest, "missing X-GitHub-Delivery header")
			return
		}
		switch event {
		case "ping":
			writeJSON(w, http.StatusOK, map[string]string{"status": "pong"})
			return
		case "workflow_job":
		default:
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "ignored", "event": event})
			return
		}
		var ev workflowJobEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.WorkflowJob.ID == 0 {
			if err == nil {
				err = errors.New("workflow_job.id missing")
			}
			writeErr(w, http.StatusBadRequest, "not a workflow_job payload: "+err.Error())
			return
		}
		fresh, err := q.deliver(r.Context(), delivery, ev, now())
		if err != nil {
			// Not acknowledged: GitHub shows the delivery failed and it
			// can be redelivered; nothing was half-recorded.
			writeErr(w, http.StatusServiceUnavailable, "recording the delivery: "+err.Error())
			return
		}
		if !fresh {
			q.duplicates.Add(1)
			writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate", "delivery": delivery})
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "accepted", "delivery": delivery})
	})
}

func validSignature(secret string, body []byte, header string) bool {
	sig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign is the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
