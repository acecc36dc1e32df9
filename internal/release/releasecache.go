package release

import (
	"context"
	"sync"

	"github.com/pave-platform/pave/internal/state"
)

// releaseCache keeps the releases the engine decoded, each with the
// version it was read at, so a reconcile reads one version number from
// the store rather than the whole release when nothing changed it.
// Decoding a release is most of a reconcile's work at 1,000 releases.
//
// The engine's own commits put what they stored, with its new version
// (stored), so a release's next reconcile decodes nothing when nobody
// else wrote it in between: in a rollout most reconciles follow one of
// the engine's own commits.
//
// It never answers from memory alone: every read asks the store for the
// release's current version, and a release written since by anyone else
// (a person, or another replica) has another version and is read and
// decoded again. So a reconcile starts from the stored release, exactly
// as before, and a kill -9 loses nothing but the cache. (Releases are
// never deleted, so a version is never reused for a different release of
// the same name.)
type releaseCache struct {
	mu sync.Mutex
	m  map[string]cachedRelease
}

type cachedRelease struct {
	version int64
	r       *Release
}

// read reads release name into r with its version: from the cache when
// the store's version is the one cached, else from the store. r is the
// caller's to change.
func (c *releaseCache) read(ctx context.Context, st state.Store, name string, r *Release) (int64, error) {
	v, ok := st.(state.Versioner)
	if !ok {
		return state.GetJSON(ctx, st, StateKind, name, r)
	}
	c.mu.Lock()
	hit, cached := c.m[name]
	c.mu.Unlock()
	if cached {
		cur, err := v.Version(ctx, StateKind, name)
		if err != nil {
			return 0, err
		}
		if cur == hit.version {
			*r = *deepCopy(hit.r)
			return cur, nil
		}
	}
	ver, err := state.GetJSON(ctx, st, StateKind, name, r)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedRelease{}
	}
	c.m[name] = cachedRelease{version: ver, r: deepCopy(r)}
	c.mu.Unlock()
	return ver, nil
}

// drop forgets release name: it is being written.
func (c *releaseCache) drop(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// stored keeps r as release name's content at version ver, which the
// engine has just committed; r stays the caller's (the cache keeps a
// copy). A newer entry, put meanwhile by another commit, is kept.
func (c *releaseCache) stored(r *Release, ver int64) {
	cp := deepCopy(r) // outside the lock: the copy is most of the cost
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedRelease{}
	}
	if old, ok := c.m[r.Metadata.Name]; ok && old.version > ver {
		return
	}
	c.m[r.Metadata.Name] = cachedRelease{version: ver, r: cp}
}
