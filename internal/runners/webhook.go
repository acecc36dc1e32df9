package runners

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Queue is the queue signal: the GitHub workflow_job jobs the control
// plane has heard of, by job id, and the history of finished ones that
// `pave runners suggest` learns from.
type Queue struct {
	mu         sync.Mutex
	jobs       map[int64]*trackedJob
	seen       map[string]bool // delivery ids
	seenOrder  []string
	history    []LabeledJob
	badSig     atomic.Int64
	duplicates atomic.Int64
}

// LabeledJob is a finished job of the history, with the labels it asked for.
type LabeledJob struct {
	Job
	Labels []string `json:"labels"`
}

type trackedJob struct {
	labels  []string
	queued  time.Time
	started time.Time
}

const (
	maxDeliveries = 50000  // remembered delivery ids, oldest forgotten first
	maxHistory    = 200000 // finished jobs kept for suggest
)

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{jobs: map[int64]*trackedJob{}, seen: map[string]bool{}}
}

// QueueStats is what the queue has counted.
type QueueStats struct {
	BadSignatures int64 `json:"badSignatures"`
	Duplicates    int64 `json:"duplicates"`
	Tracked       int   `json:"tracked"`
	History       int   `json:"history"`
}

// Stats returns the counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QueueStats{BadSignatures: q.badSig.Load(), Duplicates: q.duplicates.Load(), Tracked: len(q.jobs), History: len(q.history)}
}

// Counts is the pool's queue: jobs waiting and running whose labels the
// pool's labels cover, and when the oldest waiting one was queued.
func (q *Queue) Counts(labels []string) (queued, busy int, oldest time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, j := range q.jobs {
		if !covers(labels, j.labels) {
			continue
		}
		if j.started.IsZero() {
			queued++
			if oldest.IsZero() || j.queued.Before(oldest) {
				oldest = j.queued
			}
		} else {
			busy++
		}
	}
	return queued, busy, oldest
}

// GitHub fails a job queued for 24 h and a self-hosted job running for
// 5 days; a job older than that whose completed event was missed would
// hold runners forever, so Prune forgets it.
const (
	maxQueued  = 24 * time.Hour
	maxRunning = 5 * 24 * time.Hour
)

// Prune forgets jobs past GitHub's own limits (missed events) and
// returns how many.
func (q *Queue) Prune(now time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for id, j := range q.jobs {
		if (j.started.IsZero() && now.Sub(j.queued) > maxQueued) || (!j.started.IsZero() && now.Sub(j.started) > maxRunning) {
			delete(q.jobs, id)
			n++
		}
	}
	return n
}

// History returns the finished jobs the pool's labels cover, oldest first.
func (q *Queue) History(labels []string, since time.Time) []Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Job
	for _, j := range q.history {
		if covers(labels, j.Labels) && !j.Queued.Before(since) {
			out = append(out, j.Job)
		}
	}
	slices.SortStableFunc(out, func(a, b Job) int { return a.Queued.Compare(b.Queued) })
	return out
}

// covers: a job is the pool's when every label it asks for is the pool's
// (GitHub's runs-on matching, case-insensitive).
func covers(pool, job []string) bool {
	for _, l := range job {
		if !slices.ContainsFunc(pool, func(p string) bool { return strings.EqualFold(p, l) }) {
			return false
		}
	}
	return true
}

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
}

// apply records one event; it is idempotent per (job, action), so a
// redelivery with a new delivery id changes nothing either.
func (q *Queue) apply(ev workflowJobEvent, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	wj := ev.WorkflowJob
	j := q.jobs[wj.ID]
	queuedAt := wj.CreatedAt
	if queuedAt.IsZero() {
		queuedAt = now
	}
	switch ev.Action {
	case "queued":
		if j == nil {
			q.jobs[wj.ID] = &trackedJob{labels: wj.Labels, queued: queuedAt}
		}
	case "in_progress":
		if j == nil {
			j = &trackedJob{labels: wj.Labels, queued: queuedAt}
			q.jobs[wj.ID] = j
		}
		if j.started.IsZero() {
			j.started = orNow(wj.StartedAt, now)
		}
	case "completed":
		if j == nil {
			return // never seen queued: nothing to release, no history to trust
		}
		delete(q.jobs, wj.ID)
		if !j.started.IsZero() {
			if len(q.history) >= maxHistory {
				q.history = slices.Delete(q.history, 0, len(q.history)/10)
			}
			q.history = append(q.history, LabeledJob{Job: Job{Queued: j.queued, Duration: orNow(wj.CompletedAt, now).Sub(j.started)}, Labels: j.labels})
		}
	}
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// remember records a delivery id; false when it was already seen.
func (q *Queue) remember(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen[id] {
		return false
	}
	q.seen[id] = true
	q.seenOrder = append(q.seenOrder, id)
	if len(q.seenOrder) > maxDeliveries {
		delete(q.seen, q.seenOrder[0])
		q.seenOrder = q.seenOrder[1:]
	}
	return true
}

// WebhookHandler serves GitHub's webhooks (POST /hooks/github). GitHub
// cannot hold a Pave credential, so a delivery authenticates by its
// X-Hub-Signature-256 (HMAC-SHA256 of the body with the shared secret);
// a bad or missing signature is refused with 401 and counted, and
// changes nothing. A delivery id seen before changes nothing either.
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
		if !q.remember(delivery) {
			q.duplicates.Add(1)
			writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate", "delivery": delivery})
			return
		}
		q.apply(ev, now())
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
