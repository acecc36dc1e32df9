package main

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

// The simulation gives the real engine in-memory seams: a store, a router,
// a target that is ready at once, and a clock the loop advances. Only the
// store differs from production in kind (memory instead of SQLite), to run
// hundreds of releases in seconds; the release package's own tests run the
// engine on SQLite.

type simClock struct{ now time.Time }

func (c *simClock) Now() time.Time { return c.now }

// simRouter is the data plane's router: the weights, and the mirror a
// shadow step asks for (traffic.Mirrorer), which the traffic simulator
// applies every second.
type simRouter struct {
	w      traffic.Weights
	mirror *traffic.Mirror
}

func (r *simRouter) SetMirror(_ context.Context, _ string, m *traffic.Mirror) error {
	if m != nil {
		if err := m.Settings.Validate(); err != nil {
			return err
		}
		cp := *m
		m = &cp
	}
	r.mirror = m
	return nil
}

func (r *simRouter) SetWeights(_ context.Context, _ string, w traffic.Weights) error {
	if err := w.Validate(); err != nil {
		return err
	}
	r.w = traffic.Weights{}
	for k, v := range w {
		r.w[k] = v
	}
	return nil
}

func (r *simRouter) Weights(context.Context, string) (traffic.Weights, error) {
	out := traffic.Weights{}
	for k, v := range r.w {
		out[k] = v
	}
	return out, nil
}

type simTarget struct{}

func (simTarget) Deploy(context.Context, release.Deployment) error { return nil }
func (simTarget) Remove(context.Context, string, string) error     { return nil }
func (simTarget) Status(context.Context, string, string) (bool, int, int, error) {
	return true, 1, 1, nil
}

// memStore is a state.Store in memory.
type memStore struct {
	mu     sync.Mutex
	objs   map[string]state.Object
	events []state.Event
}

func newMemStore() *memStore { return &memStore{objs: map[string]state.Object{}} }

func (m *memStore) Get(_ context.Context, kind, key string) (state.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[kind+"/"+key]
	if !ok {
		return state.Object{}, state.ErrNotFound
	}
	return o, nil
}

func (m *memStore) List(_ context.Context, kind string) ([]state.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []state.Object
	for k, o := range m.objs {
		if strings.HasPrefix(k, kind+"/") {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (m *memStore) Put(_ context.Context, kind, key string, data []byte, ifVersion int64) (state.Object, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[kind+"/"+key]
	switch {
	case ifVersion == 0 && ok, ifVersion > 0 && (!ok || o.Version != ifVersion):
		return state.Object{}, state.ErrConflict
	}
	o = state.Object{Kind: kind, Key: key, Version: o.Version + 1, Data: append([]byte(nil), data...)}
	m.objs[kind+"/"+key] = o
	return o, nil
}

func (m *memStore) Delete(_ context.Context, kind, key string, _ int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, kind+"/"+key)
	return nil
}

func (m *memStore) Append(_ context.Context, e state.Event) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Seq = int64(len(m.events) + 1)
	m.events = append(m.events, e)
	return e.Seq, nil
}

func (m *memStore) Events(_ context.Context, kind, key string, after int64, limit int) ([]state.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []state.Event
	for _, e := range m.events {
		if e.Seq > after && e.Kind == kind && (key == "" || e.Key == key) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memStore) Close() error { return nil }
