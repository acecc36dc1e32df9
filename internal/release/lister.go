package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

// lister answers the reconcile loop's question each second — which
// releases may still change? — without reading every release. It keeps,
// per release, the little it needs (creation time, whether work remains)
// with the version it was read at, as an informer's cache does:
//
//   - a resync lists only keys and versions (state.Versioner, both
//     backends) and reads and decodes only the releases whose version
//     changed: those another replica's API wrote (a person's action, a
//     new release), or that the cache has not seen;
//   - the engine's own commits update the cache as they succeed (note),
//     so its own writes are not read back;
//   - the full list of keys is read at every resync, so a release
//     deleted or written behind the cache's back is never missed for
//     longer than one interval.
//
// A store without a key index is listed and decoded in full each time.
// The cache holds nothing a reconcile decides from: every reconcile
// still reads its release from the store.
type lister struct {
	store state.Store

	mu   sync.Mutex
	seen map[string]listed
	// inProgress is how many releases the last listing found pending.
	inProgress atomic.Int64
}

// listed is what the lister knows of one release.
type listed struct {
	version int64
	created time.Time
	pending bool
	// service and ended let Create find a service's running release
	// and the names taken without reading every release (byService).
	service string
	ended   bool
}

// briefRelease is the part of a stored release the lister decodes.
type briefRelease struct {
	Metadata struct {
		Name              string    `json:"name"`
		CreationTimestamp time.Time `json:"creationTimestamp"`
	} `json:"metadata"`
	Spec struct {
		Service string `json:"service"`
	} `json:"spec"`
	Status struct {
		Phase          Phase           `json:"phase"`
		ScaledDown     bool            `json:"scaledDown"`
		WeightsApplied bool            `json:"weightsApplied"`
		Weights        traffic.Weights `json:"weights"`
	} `json:"status"`
}

// pendingOf says whether a reconcile may still change a release: every
// release but an ended one that is scaled down with its final weights
// applied.
func pendingOf(p Phase, scaledDown, weightsApplied bool, weights int) bool {
	return !(p.Terminal() && scaledDown && (weightsApplied || weights == 0))
}

func decodeListed(key string, version int64, data []byte) (listed, error) {
	var b briefRelease
	if err := json.Unmarshal(data, &b); err != nil {
		return listed{}, fmt.Errorf("decode release %s: %w", key, err)
	}
	return listed{version: version, created: b.Metadata.CreationTimestamp,
		pending: pendingOf(b.Status.Phase, b.Status.ScaledDown, b.Status.WeightsApplied, len(b.Status.Weights)),
		service: b.Spec.Service, ended: b.Status.Phase.Terminal()}, nil
}

// note records a release the engine has just stored at version.
func (l *lister) note(r *Release, version int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]listed{}
	}
	if cur, ok := l.seen[r.Metadata.Name]; ok && cur.version > version {
		return // a newer write was noted already
	}
	s := r.Status
	l.seen[r.Metadata.Name] = listed{version: version, created: r.Metadata.CreationTimestamp,
		pending: pendingOf(s.Phase, s.ScaledDown, s.WeightsApplied, len(s.Weights)),
		service: r.Spec.Service, ended: s.Phase.Terminal()}
}

// pending lists the names of the releases a reconcile may still change,
// oldest first.
func (l *lister) pending(ctx context.Context) ([]string, error) {
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	type item struct {
		name    string
		created time.Time
	}
	var out []item
	l.mu.Lock()
	for name, s := range l.seen {
		if s.pending {
			out = append(out, item{name, s.created})
		}
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b item) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		if a.name < b.name {
			return -1
		}
		return 1
	})
	l.inProgress.Store(int64(len(out)))
	names := make([]string, len(out))
	for i, it := range out {
		names[i] = it.name
	}
	return names, nil
}

// releaseIndex is what Create needs to know of the stored releases: the
// names taken, the services that have releases, and each service's
// running release (the newest, if several).
type releaseIndex struct {
	taken    map[string]bool
	services map[string]bool
	running  map[string]string // service → name
}

// index brings the cache up to date with the store and returns its
// index: a key listing and the releases that changed, not a read of
// every release.
func (l *lister) index(ctx context.Context) (releaseIndex, error) {
	if err := l.refresh(ctx); err != nil {
		return releaseIndex{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ix := releaseIndex{taken: make(map[string]bool, len(l.seen)), services: map[string]bool{}, running: map[string]string{}}
	newest := map[string]listed{}
	for name, s := range l.seen {
		ix.taken[name] = true
		ix.services[s.service] = true
		if s.ended {
			continue
		}
		// The newest running release, as a list sorted by creation
		// (then name) and read to its end finds it.
		if cur, ok := newest[s.service]; !ok || s.created.After(cur.created) ||
			(s.created.Equal(cur.created) && name > ix.running[s.service]) {
			newest[s.service], ix.running[s.service] = s, name
		}
	}
	return ix, nil
}

// refresh brings the cache up to date with the store.
func (l *lister) refresh(ctx context.Context) error {
	v, ok := l.store.(state.Versioner)
	if !ok {
		objs, err := l.store.List(ctx, StateKind)
		if err != nil {
			return err
		}
		all := make(map[string]listed, len(objs))
		for _, o := range objs {
			if all[o.Key], err = decodeListed(o.Key, o.Version, o.Data); err != nil {
				return err
			}
		}
		l.mu.Lock()
		l.seen = all
		l.mu.Unlock()
		return nil
	}
	kvs, err := v.Versions(ctx, StateKind)
	if err != nil {
		return err
	}
	l.mu.Lock()
	var stale []state.KeyVersion
	for _, kv := range kvs {
		if s, ok := l.seen[kv.Key]; !ok || s.version < kv.Version {
			stale = append(stale, kv)
		}
	}
	l.mu.Unlock()
	read := make(map[string]listed, len(stale))
	for _, kv := range stale {
		o, err := l.store.Get(ctx, StateKind, kv.Key)
		if errors.Is(err, state.ErrNotFound) {
			continue // deleted since: the next resync drops it
		}
		if err != nil {
			return err
		}
		if read[kv.Key], err = decodeListed(kv.Key, o.Version, o.Data); err != nil {
			return err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	all := make(map[string]listed, len(kvs))
	for _, kv := range kvs {
		s, ok := l.seen[kv.Key]
		if r, fresh := read[kv.Key]; fresh && (!ok || r.version > s.version) {
			s, ok = r, true
		}
		if ok {
			all[kv.Key] = s
		}
	}
	l.seen = all
	return nil
}
