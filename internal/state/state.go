// Package state is the control plane's durable memory: releases, instances,
// routes, tokens and the audit trail. Everything that drives a reconcile
// loop is read from here, never from process memory, so a restarted control
// plane resumes where it stopped.
//
// The model is the one Kubernetes keeps in etcd: typed objects addressed by
// (kind, key), each carrying a version for optimistic concurrency, plus an
// append-only event log. Providers: sqlite (embedded default); postgres can
// follow behind the same interface.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound reports that no object exists under (kind, key).
	ErrNotFound = errors.New("not found")
	// ErrConflict reports that an object changed since it was read.
	ErrConflict = errors.New("conflict: object was changed concurrently")
)

// Any, passed as ifVersion, writes whatever version is stored.
const Any int64 = -1

// Object is one stored record.
type Object struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Version int64           `json:"version"`
	Data    json.RawMessage `json:"data"`
	Updated time.Time       `json:"updated"`
}

// Event is one entry of the append-only log (audit, release timeline).
type Event struct {
	Seq  int64           `json:"seq"`
	Time time.Time       `json:"time"`
	Kind string          `json:"kind"`
	Key  string          `json:"key"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Store is the state-store seam. Writes are durable when they return.
type Store interface {
	Get(ctx context.Context, kind, key string) (Object, error)
	List(ctx context.Context, kind string) ([]Object, error)
	// Put stores data. ifVersion is Any, 0 (must not exist yet) or the
	// version last read (ErrConflict otherwise).
	Put(ctx context.Context, kind, key string, data []byte, ifVersion int64) (Object, error)
	Delete(ctx context.Context, kind, key string, ifVersion int64) error
	Append(ctx context.Context, e Event) (int64, error)
	// Events lists events of (kind, key) after seq, oldest first; an empty
	// key lists the kind's events.
	Events(ctx context.Context, kind, key string, afterSeq int64, limit int) ([]Event, error)
	Close() error
}

// PutAppender is implemented by stores that store an object and append an
// event in one transaction (both backends), so a decision and its entry
// in the timeline are never separated by a crash.
type PutAppender interface {
	PutAppend(ctx context.Context, kind, key string, data []byte, ifVersion int64, e Event) (Object, int64, error)
}

// KeyVersion is one object's key and version, without its data.
type KeyVersion struct {
	Key     string `json:"key"`
	Version int64  `json:"version"`
}

// Versioner is implemented by stores that list a kind's keys and versions
// without their data (both backends): a controller's periodic resync then
// reads and decodes only the objects that changed since it last looked,
// as an informer's cache does.
type Versioner interface {
	Versions(ctx context.Context, kind string) ([]KeyVersion, error)
	// Version is one object's version (ErrNotFound if none): whether a
	// copy decoded earlier is still the stored object.
	Version(ctx context.Context, kind, key string) (int64, error)
}

// WriteCounter is implemented by stores that commit concurrent writes
// together (group commit, both backends): how many writes their commits
// carried, which is what the writes_per_commit metric shows.
type WriteCounter interface {
	WriteStats() WriteStats
}

// WriteStats counts writes and the transactions that committed them.
type WriteStats struct {
	// Writes is the writes that committed transactions carried, including
	// those that changed nothing (a version conflict, a stale fence).
	Writes int64 `json:"writes"`
	// Commits is the transactions committed.
	Commits int64 `json:"commits"`
}

// GetJSON reads and decodes one object, returning its version.
func GetJSON(ctx context.Context, s Store, kind, key string, v any) (int64, error) {
	o, err := s.Get(ctx, kind, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(o.Data, v); err != nil {
		return 0, fmt.Errorf("decode %s/%s: %w", kind, key, err)
	}
	return o.Version, nil
}

// PutJSON encodes and stores one object.
func PutJSON(ctx context.Context, s Store, kind, key string, v any, ifVersion int64) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s/%s: %w", kind, key, err)
	}
	o, err := s.Put(ctx, kind, key, b, ifVersion)
	return o.Version, err
}

// ListJSON decodes every object of a kind, in key order.
func ListJSON[T any](ctx context.Context, s Store, kind string) ([]T, error) {
	objs, err := s.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		var v T
		if err := json.Unmarshal(o.Data, &v); err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", kind, o.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}
