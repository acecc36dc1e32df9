package runners

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// The queue's records in the state store. Jobs waiting or running and the
// delivery ids seen are objects (a finished job's object is deleted); a
// finished job is an event of kindHistory, the log `suggest` learns from.
const (
	kindJob       = "runners.job"
	kindDelivery  = "runners.delivery"
	kindHistory   = "runners.history"
	kindQueueMeta = "runners.queue"
	keyHistoryAt  = "history-start" // {seq}: the first history event still read at start
)

// Queue is the queue signal: the GitHub workflow_job jobs the control
// plane has heard of (webhooks, or the REST reconciliation), by job id,
// and the history of finished ones that `pave runners suggest` learns
// from. Every change is written to the state store before it is
// acknowledged, so a restarted control plane has the same queue, history
// and seen delivery ids.
type Queue struct {
	store state.Store

	mu        sync.Mutex
	jobs      map[int64]*trackedJob
	done      map[int64]bool // finished job ids: a late "queued" must not revive one
	doneOrder []int64
	seen      map[string]bool // delivery ids
	seenOrder []string
	history   []LabeledJob
	github    GitHubStatus

	badSig     atomic.Int64
	duplicates atomic.Int64
}

// LabeledJob is a finished job of the history, with the labels it asked for.
type LabeledJob struct {
	Job
	Labels []string `json:"labels"`
}

// trackedJob is a job waiting or running, as stored.
type trackedJob struct {
	Labels  []string  `json:"labels"`
	Repo    string    `json:"repo,omitempty"` // owner/name, for the REST reconciliation
	Queued  time.Time `json:"queued"`
	Started time.Time `json:"started,omitzero"`
}

// finishedJob is one history event. Started is zero for a job cancelled
// before it ran: it is kept only so a late "queued" cannot revive it.
type finishedJob struct {
	ID        int64     `json:"id"`
	Labels    []string  `json:"labels"`
	Queued    time.Time `json:"queued"`
	Started   time.Time `json:"started,omitzero"`
	Completed time.Time `json:"completed"`
}

const (
	maxDeliveries = 50000                   // remembered delivery ids, oldest forgotten first
	maxHistory    = 200000                  // finished jobs kept for suggest
	historyKept   = 12 * 7 * 24 * time.Hour // suggest reads at most 12 weeks
)

// OpenQueue loads the queue kept in store: jobs waiting and running, the
// delivery ids seen and the history of the last 12 weeks.
func OpenQueue(ctx context.Context, store state.Store) (*Queue, error) {
	q := &Queue{store: store, jobs: map[int64]*trackedJob{}, done: map[int64]bool{}, seen: map[string]bool{}}
	objs, err := store.List(ctx, kindJob)
	if err != nil {
		return nil, fmt.Errorf("runner queue: %w", err)
	}
	for _, o := range objs {
		id, err := strconv.ParseInt(o.Key, 10, 64)
		var j trackedJob
		if err == nil {
			err = json.Unmarshal(o.Data, &j)
		}
		if err != nil {
			return nil, fmt.Errorf("runner queue: job %q: %w", o.Key, err)
		}
		q.jobs[id] = &j
	}
	objs, err = store.List(ctx, kindDelivery)
	if err != nil {
		return nil, fmt.Errorf("runner queue: %w", err)
	}
	slices.SortStableFunc(objs, func(a, b state.Object) int { return a.Updated.Compare(b.Updated) })
	for _, o := range objs {
		q.seen[o.Key] = true
		q.seenOrder = append(q.seenOrder, o.Key)
	}
	if err := q.loadHistory(ctx); err != nil {
		return nil, fmt.Errorf("runner queue: %w", err)
	}
	// A crash between a completion's history event and the deletion of
	// its job leaves both: the event wins.
	for id := range q.jobs {
		if q.done[id] {
			if err := store.Delete(ctx, kindJob, jobKey(id), state.Any); err != nil && !errors.Is(err, state.ErrNotFound) {
				return nil, fmt.Errorf("runner queue: %w", err)
			}
			delete(q.jobs, id)
		}
	}
	return q, nil
}

// loadHistory reads the history events from the recorded start, keeps
// the 12 weeks before the newest and moves the start past what it
// dropped, so a start reads weeks of events, not the control plane's
// whole life. (Weeks before the newest, not before now: a control plane
// that was off for a month still has the weeks it saw to learn from.)
func (q *Queue) loadHistory(ctx context.Context) error {
	var at struct {
		Seq int64 `json:"seq"`
	}
	if _, err := state.GetJSON(ctx, q.store, kindQueueMeta, keyHistoryAt, &at); err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	type seqJob struct {
		seq int64
		job finishedJob
	}
	var all []seqJob
	var newest time.Time
	for after := at.Seq; ; {
		evs, err := q.store.Events(ctx, kindHistory, "", after, 1000)
		if err != nil {
			return err
		}
		for _, e := range evs {
			after = e.Seq
			var f finishedJob
			if err := json.Unmarshal(e.Data, &f); err != nil {
				return fmt.Errorf("history event %d: %w", e.Seq, err)
			}
			all = append(all, seqJob{e.Seq, f})
			if f.Completed.After(newest) {
				newest = f.Completed
			}
		}
		if len(evs) < 1000 {
			break
		}
	}
	first := int64(0)
	for _, sj := range all {
		if sj.job.Completed.Before(newest.Add(-historyKept)) {
			continue
		}
		if first == 0 {
			first = sj.seq - 1
		}
		q.remembered(sj.job)
	}
	if first > at.Seq {
		at.Seq = first
		if _, err := state.PutJSON(ctx, q.store, kindQueueMeta, keyHistoryAt, at, state.Any); err != nil {
			return err
		}
	}
	return nil
}

// remembered adds a finished job to the in-memory history. Called with
// mu held (or before the queue is shared).
func (q *Queue) remembered(f finishedJob) {
	if !q.done[f.ID] {
		q.done[f.ID] = true
		q.doneOrder = append(q.doneOrder, f.ID)
		if len(q.doneOrder) > maxHistory {
			delete(q.done, q.doneOrder[0])
			q.doneOrder = q.doneOrder[1:]
		}
	}
	if f.Started.IsZero() {
		return
	}
	if len(q.history) >= maxHistory {
		q.history = slices.Delete(q.history, 0, len(q.history)/10)
	}
	q.history = append(q.history, LabeledJob{Job: Job{Queued: f.Queued, Duration: f.Completed.Sub(f.Started)}, Labels: f.Labels})
}

// QueueStats is what the queue has counted.
type QueueStats struct {
	BadSignatures int64        `json:"badSignatures"`
	Duplicates    int64        `json:"duplicates"`
	Tracked       int          `json:"tracked"`
	History       int          `json:"history"`
	GitHub        GitHubStatus `json:"github"`
}

// Stats returns the counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QueueStats{BadSignatures: q.badSig.Load(), Duplicates: q.duplicates.Load(), Tracked: len(q.jobs), History: len(q.history), GitHub: q.github}
}

// QueuedJob is a job waiting or running, as the status shows it.
type QueuedJob struct {
	ID      int64     `json:"id"`
	Labels  []string  `json:"labels"`
	Repo    string    `json:"repo,omitempty"`
	Queued  time.Time `json:"queued"`
	Started time.Time `json:"started,omitzero"`
}

// Jobs returns the jobs waiting and running whose labels the pool's
// labels cover, oldest first.
func (q *Queue) Jobs(labels []string) []QueuedJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []QueuedJob
	for id, j := range q.jobs {
		if covers(labels, j.Labels) {
			out = append(out, QueuedJob{ID: id, Labels: j.Labels, Repo: j.Repo, Queued: j.Queued, Started: j.Started})
		}
	}
	slices.SortFunc(out, func(a, b QueuedJob) int {
		if c := a.Queued.Compare(b.Queued); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	return out
}

// Counts is the pool's queue: jobs waiting and running whose labels the
// pool's labels cover, and when the oldest waiting one was queued.
func (q *Queue) Counts(labels []string) (queued, busy int, oldest time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, j := range q.jobs {
		if !covers(labels, j.Labels) {
			continue
		}
		if j.Started.IsZero() {
			queued++
			if oldest.IsZero() || j.Queued.Before(oldest) {
				oldest = j.Queued
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
func (q *Queue) Prune(ctx context.Context, now time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for id, j := range q.jobs {
		if (j.Started.IsZero() && now.Sub(j.Queued) > maxQueued) || (!j.Started.IsZero() && now.Sub(j.Started) > maxRunning) {
			if err := q.store.Delete(ctx, kindJob, jobKey(id), state.Any); err != nil && !errors.Is(err, state.ErrNotFound) {
				continue // kept; tried again next pass
			}
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

func jobKey(id int64) string { return strconv.FormatInt(id, 10) }

// jobChange is one observed transition of a job, from a webhook or from
// the REST API.
type jobChange struct {
	ID        int64
	Action    string // queued, in_progress, completed
	Labels    []string
	Repo      string
	Created   time.Time
	Started   time.Time
	Completed time.Time
}

// deliver records a webhook delivery: the job's change, then the
// delivery id. false: the id was seen before and nothing changed. The
// change goes first so a crash between the two leaves the delivery
// unrecorded and a redelivery re-applies it, which is idempotent.
func (q *Queue) deliver(ctx context.Context, delivery string, ev workflowJobEvent, now time.Time) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen[delivery] {
		return false, nil
	}
	wj := ev.WorkflowJob
	if _, err := q.applyLocked(ctx, jobChange{ID: wj.ID, Action: ev.Action, Labels: wj.Labels, Repo: ev.Repository.FullName,
		Created: wj.CreatedAt, Started: wj.StartedAt, Completed: wj.CompletedAt}, now); err != nil {
		return false, err
	}
	b, _ := json.Marshal(map[string]any{"job": wj.ID, "action": ev.Action})
	if _, err := q.store.Put(ctx, kindDelivery, delivery, b, 0); err != nil {
		if errors.Is(err, state.ErrConflict) { // another control plane on this store took it
			return false, nil
		}
		return false, fmt.Errorf("delivery %s: %w", delivery, err)
	}
	q.seen[delivery] = true
	q.seenOrder = append(q.seenOrder, delivery)
	for len(q.seenOrder) > maxDeliveries {
		if err := q.store.Delete(ctx, kindDelivery, q.seenOrder[0], state.Any); err != nil && !errors.Is(err, state.ErrNotFound) {
			break // kept; trimmed with the next delivery
		}
		delete(q.seen, q.seenOrder[0])
		q.seenOrder = q.seenOrder[1:]
	}
	return true, nil
}

// apply records one observed change (see applyLocked).
func (q *Queue) apply(ctx context.Context, c jobChange, now time.Time) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.applyLocked(ctx, c, now)
}

// applyLocked records one change in the store, then in memory; it is
// idempotent per (job, action), and a finished job stays finished, so a
// redelivery under a new delivery id, or the REST API telling what a
// webhook already did, changes nothing. It reports whether it changed
// anything.
func (q *Queue) applyLocked(ctx context.Context, c jobChange, now time.Time) (bool, error) {
	if q.done[c.ID] {
		return false, nil
	}
	j := q.jobs[c.ID]
	queuedAt := orNow(c.Created, now)
	switch c.Action {
	case "queued", "in_progress":
		next := trackedJob{Labels: c.Labels, Repo: c.Repo, Queued: queuedAt}
		if j != nil {
			next = *j
		}
		if c.Action == "in_progress" && next.Started.IsZero() {
			next.Started = orNow(c.Started, now)
		}
		if j != nil && next.Started.Equal(j.Started) {
			return false, nil
		}
		if _, err := state.PutJSON(ctx, q.store, kindJob, jobKey(c.ID), next, state.Any); err != nil {
			return false, fmt.Errorf("job %d: %w", c.ID, err)
		}
		q.jobs[c.ID] = &next
		return true, nil
	case "completed":
		if j == nil {
			return false, nil // never seen: nothing to release, no history to trust
		}
		f := finishedJob{ID: c.ID, Labels: j.Labels, Queued: j.Queued, Started: j.Started, Completed: orNow(c.Completed, now)}
		if f.Started.IsZero() { // its in_progress was missed too
			f.Started = c.Started
		}
		if !f.Started.IsZero() && f.Completed.Before(f.Started) {
			f.Completed = f.Started
		}
		b, _ := json.Marshal(f)
		// The event first: a crash before the delete leaves the job
		// tracked, and the redelivered completion finds it done.
		if _, err := q.store.Append(ctx, state.Event{Kind: kindHistory, Key: jobKey(c.ID), Type: "completed", Data: b}); err != nil {
			return false, fmt.Errorf("job %d: %w", c.ID, err)
		}
		if err := q.store.Delete(ctx, kindJob, jobKey(c.ID), state.Any); err != nil && !errors.Is(err, state.ErrNotFound) {
			return false, fmt.Errorf("job %d: %w", c.ID, err)
		}
		delete(q.jobs, c.ID)
		q.remembered(f)
		return true, nil
	}
	return false, nil
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}
