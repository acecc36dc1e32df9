package state

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// versionBatch answers Version: the one query a reconcile makes when its
// release has not changed, asked by every worker of the release engine at
// once, each second, for 1,000 releases. It sends the versions asked for
// while a query is running as one query when that one has answered, as
// group commit does for writes: one round trip, and one statement for
// the server to run, instead of one per release.
//
// Every answer comes from a query that started after it was asked, so it
// reflects every write committed before the question, as a query of its
// own would.
type versionBatch struct {
	// query reads the versions of keys of one kind; a key without an
	// object is left out.
	query func(ctx context.Context, kind string, keys []string) (map[string]int64, error)

	mu      sync.Mutex
	waiting []*versionAsk
	running bool
}

type versionAsk struct {
	kind, key string
	version   int64
	err       error
	done      chan struct{}
}

// batchQueryTimeout bounds one batched query: the runner serves every
// caller, so it does not stop for one caller's context, but it must not
// wait forever on a server that stopped answering.
const batchQueryTimeout = time.Minute

func (b *versionBatch) version(ctx context.Context, kind, key string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("get %s/%s: %w", kind, key, err)
	}
	a := &versionAsk{kind: kind, key: key, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, a)
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
		return 0, fmt.Errorf("get %s/%s: %w", kind, key, ctx.Err())
	}
	if a.err != nil {
		return 0, fmt.Errorf("get %s/%s: %w", kind, key, a.err)
	}
	if a.version == 0 {
		return 0, fmt.Errorf("%s %q: %w", kind, key, ErrNotFound)
	}
	return a.version, nil
}

// run answers everything waiting, a batch at a time, until nothing is.
func (b *versionBatch) run() {
	for {
		b.mu.Lock()
		asks := b.waiting
		b.waiting = nil
		if len(asks) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		byKind := map[string][]*versionAsk{}
		for _, a := range asks {
			byKind[a.kind] = append(byKind[a.kind], a)
		}
		for kind, asks := range byKind {
			seen := make(map[string]bool, len(asks))
			keys := make([]string, 0, len(asks))
			for _, a := range asks {
				if !seen[a.key] {
					seen[a.key] = true
					keys = append(keys, a.key)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), batchQueryTimeout)
			got, err := b.query(ctx, kind, keys)
			cancel()
			for _, a := range asks {
				a.version, a.err = got[a.key], err
				close(a.done)
			}
		}
	}
}
