package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
)

// The outbox sits between Alertmanager's notification pipeline and the
// receivers. The pipeline's "send" writes the notification to a file
// (fsynced, renamed into place) and counts as sent for the notification
// log; the outbox then delivers it, retrying with exponential backoff,
// and deletes the file only once the receiver accepted it. A receiver
// that is down therefore loses nothing across a restart of `pave up`,
// and what failed is visible (Deliveries) with the attempts and the last
// error.

// Backoff of the outbox: the first retry after minBackoff, doubling to
// maxBackoff, like Prometheus' remote write.
var (
	minBackoff = time.Second
	maxBackoff = 2 * time.Minute
	// attemptTimeout bounds one delivery attempt.
	attemptTimeout = 30 * time.Second
)

// Delivery is one notification to one receiver integration.
type Delivery struct {
	ID             string         `json:"id"`
	Receiver       string         `json:"receiver"`
	Integration    string         `json:"integration"`
	Key            string         `json:"key"`
	GroupKey       string         `json:"groupKey"`
	GroupLabels    model.LabelSet `json:"groupLabels"`
	RepeatInterval time.Duration  `json:"repeatInterval"`
	Alerts         []model.Alert  `json:"alerts"`
	Created        time.Time      `json:"created"`
	// State is "pending" (not delivered yet), "delivered", "failed"
	// (the receiver refused it for good, e.g. a 4xx: not retried) or
	// "expired" (not delivered within the outbox retention: dropped).
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	LastAttempt time.Time `json:"lastAttempt,omitzero"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	Delivered   time.Time `json:"delivered,omitzero"`
}

type outbox struct {
	dir string
	log *slog.Logger
	// retention bounds how long a notification is retried (then it
	// expires) and how long a refused one is kept on disk.
	retention time.Duration
	real      map[string]notify.Integration
	kick      chan struct{}

	mu      sync.Mutex
	pending map[string]*Delivery
	recent  []*Delivery // delivered or failed, newest last, bounded
}

const recentDeliveries = 200

func openOutbox(dir string, real map[string]notify.Integration, retention time.Duration, log *slog.Logger) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("alert: outbox: %w", err)
	}
	o := &outbox{dir: dir, log: log, retention: retention, real: real, kick: make(chan struct{}, 1), pending: map[string]*Delivery{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("alert: outbox: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("alert: outbox: %w", err)
		}
		var d Delivery
		if err := json.Unmarshal(b, &d); err != nil {
			log.Error("outbox: unreadable notification kept aside", "file", e.Name(), "err", err)
			os.Rename(filepath.Join(dir, e.Name()), filepath.Join(dir, e.Name()+".bad"))
			continue
		}
		if d.State == "failed" {
			o.recent = append(o.recent, &d)
			continue
		}
		d.NextAttempt = time.Time{} // try at once after a restart
		o.pending[d.ID] = &d
	}
	sort.Slice(o.recent, func(i, j int) bool { return o.recent[i].ID < o.recent[j].ID })
	if len(o.recent) > recentDeliveries {
		o.recent = o.recent[len(o.recent)-recentDeliveries:]
	}
	o.expire(time.Now())
	if len(o.pending) > 0 {
		log.Info("outbox: notifications not yet delivered before the restart", "count", len(o.pending))
	}
	return o, nil
}

// outboxNotifier is the notify.Notifier the pipeline sees for one
// receiver integration: it persists the notification in the outbox.
type outboxNotifier struct {
	key, receiver, integration string
	n                          *notifier
}

func (on *outboxNotifier) Notify(ctx context.Context, alerts ...*amalert.Alert) notify.NotifyVerdict {
	d := &Delivery{ID: newID(), Receiver: on.receiver, Integration: on.integration, Key: on.key, Created: time.Now(), State: "pending"}
	d.GroupKey, _ = notify.GroupKey(ctx)
	d.GroupLabels, _ = notify.GroupLabels(ctx)
	d.RepeatInterval, _ = notify.RepeatInterval(ctx)
	for _, a := range alerts {
		d.Alerts = append(d.Alerts, a.Alert)
	}
	if err := on.n.outbox.add(d); err != nil {
		return notify.Retry(0, fmt.Errorf("persisting the notification in the outbox: %w", err), notify.DefaultReason)
	}
	return notify.Success()
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405.000000000") + "-" + hex.EncodeToString(b)
}

func (o *outbox) add(d *Delivery) error {
	if err := o.write(d); err != nil {
		return err
	}
	o.mu.Lock()
	o.pending[d.ID] = d
	o.mu.Unlock()
	select {
	case o.kick <- struct{}{}:
	default:
	}
	return nil
}

// write stores d durably: a temporary file, fsynced, renamed over the
// previous version.
func (o *outbox) write(d *Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	path := filepath.Join(o.dir, d.ID+".json")
	f, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

// run delivers what is due until stopc closes.
func (o *outbox) run(ctx context.Context, stopc <-chan struct{}) {
	t := time.NewTicker(minBackoff / 2)
	defer t.Stop()
	for {
		o.expire(time.Now())
		o.deliverDue(ctx)
		select {
		case <-stopc:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.kick:
		}
	}
}

func (o *outbox) deliverDue(ctx context.Context) {
	now := time.Now()
	o.mu.Lock()
	var due []*Delivery
	for _, d := range o.pending {
		if !d.NextAttempt.After(now) {
			due = append(due, d)
		}
	}
	o.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].ID < due[j].ID })
	for _, d := range due {
		if ctx.Err() != nil {
			return
		}
		o.attempt(ctx, d)
	}
}

func (o *outbox) attempt(ctx context.Context, d *Delivery) {
	in, ok := o.real[d.Key]
	var err error
	retry := true
	if !ok {
		err, retry = fmt.Errorf("receiver integration %s is no longer configured (setting alert-config)", d.Key), false
	} else {
		actx, cancel := context.WithTimeout(deliveryContext(ctx, d), attemptTimeout)
		alerts := make([]*amalert.Alert, len(d.Alerts))
		for i, a := range d.Alerts {
			alerts[i] = amalert.New(a, d.Created, false)
		}
		v := in.Notify(actx, alerts...)
		cancel()
		err, retry = v.Err(), v.ShouldRetry()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	d.Attempts++
	d.LastAttempt = time.Now()
	switch {
	case err == nil:
		d.State, d.Delivered, d.LastError = "delivered", d.LastAttempt, ""
		delete(o.pending, d.ID)
		o.remember(d)
		if rerr := os.Remove(filepath.Join(o.dir, d.ID+".json")); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			o.log.Error("outbox: removing a delivered notification", "id", d.ID, "err", rerr)
		}
		if d.Attempts > 1 {
			o.log.Info("notification delivered after retries", "receiver", d.Receiver, "integration", d.Integration, "attempts", d.Attempts)
		}
		return
	case !retry:
		d.State, d.LastError = "failed", err.Error()
		delete(o.pending, d.ID)
		o.remember(d)
		o.log.Error("notification refused by the receiver; not retried", "receiver", d.Receiver, "integration", d.Integration, "err", err)
	default:
		d.LastError = err.Error()
		d.NextAttempt = d.LastAttempt.Add(backoff(d.Attempts))
		o.log.Warn("notification not delivered; retrying", "receiver", d.Receiver, "integration", d.Integration,
			"attempts", d.Attempts, "next", d.NextAttempt, "err", err)
	}
	if werr := o.write(d); werr != nil {
		o.log.Error("outbox: recording a delivery attempt", "id", d.ID, "err", werr)
	}
}

// expire applies the retention: a notification not delivered within it is
// given up (state expired, logged, listed), a refused one older than it is
// removed from disk. Delivered notifications leave the disk at once; the
// last recentDeliveries of them stay listed in memory.
func (o *outbox) expire(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, d := range o.pending {
		if now.Sub(d.Created) <= o.retention {
			continue
		}
		delete(o.pending, id)
		d.State = "expired"
		d.LastError = fmt.Sprintf("not delivered within the outbox retention %s (setting alert-outbox-retention); last error: %s", o.retention, d.LastError)
		d.NextAttempt = time.Time{}
		o.remember(d)
		o.removeFile(d)
		o.log.Error("notification expired undelivered", "receiver", d.Receiver, "integration", d.Integration, "created", d.Created, "attempts", d.Attempts)
	}
	kept := o.recent[:0]
	for _, d := range o.recent {
		last := d.LastAttempt
		if last.IsZero() {
			last = d.Created
		}
		if d.State == "failed" && now.Sub(last) > o.retention {
			o.removeFile(d)
			continue
		}
		kept = append(kept, d)
	}
	clear(o.recent[len(kept):])
	o.recent = kept
}

func (o *outbox) removeFile(d *Delivery) {
	if err := os.Remove(filepath.Join(o.dir, d.ID+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		o.log.Error("outbox: removing a notification", "id", d.ID, "err", err)
	}
}

func backoff(attempts int) time.Duration {
	b := minBackoff
	for i := 1; i < attempts && b < maxBackoff; i++ {
		b *= 2
	}
	return min(b, maxBackoff)
}

func (o *outbox) remember(d *Delivery) {
	o.recent = append(o.recent, d)
	if len(o.recent) > recentDeliveries {
		// A refused notification pushed out of the list leaves the
		// disk with it, so neither grows without bound.
		for _, old := range o.recent[:len(o.recent)-recentDeliveries] {
			if old.State == "failed" {
				o.removeFile(old)
			}
		}
		o.recent = o.recent[len(o.recent)-recentDeliveries:]
	}
}

// deliveryContext carries what Alertmanager's integrations read from
// the pipeline's context (group key, receiver, group labels).
func deliveryContext(ctx context.Context, d *Delivery) context.Context {
	ctx = notify.WithGroupKey(ctx, d.GroupKey)
	ctx = notify.WithReceiverName(ctx, d.Receiver)
	ctx = notify.WithGroupLabels(ctx, d.GroupLabels)
	ctx = notify.WithRepeatInterval(ctx, d.RepeatInterval)
	return notify.WithNow(ctx, d.Created)
}

// Deliveries are the notifications not delivered yet and the last ones
// delivered or refused, oldest first.
func (o *outbox) deliveries() []Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]Delivery, 0, len(o.pending)+len(o.recent))
	for _, d := range o.recent {
		out = append(out, *d)
	}
	for _, d := range o.pending {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
