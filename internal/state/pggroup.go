package state

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Group commit for PostgreSQL. A put is one statement (putStatement), but
// each still costs a round trip to a server process and a commit of its
// own: with the release engine's 16 workers writing at once, each worker
// waits for its own round trip, and 16 server processes are woken for
// them. Instead, the puts waiting are sent together, in one pipeline
// ending in one Sync, so one round trip and one commit carry them all
// (bench/scale: 2–4 writes a commit, a quarter less of the server's CPU;
// docs/state.md, session 11):
//
//   - each put is its own conditional statement, which answers whether
//     its fence held and which version it wrote: a version conflict or a
//     stale fence writes nothing of that put and is reported to its
//     caller only, while the others are written;
//   - the statements before one Sync are one implicit transaction: a
//     caller is answered only after that transaction committed, or failed;
//   - if the server refuses the group (an error in one statement aborts
//     the whole transaction, so nothing of it is written), each put is
//     sent again alone, and only the one at fault fails;
//   - the puts of a group are concurrent (no caller has been answered),
//     so any order is a valid serial order: they are sent in (kind, key)
//     order, so groups in flight together, and those of other replicas,
//     lock rows in one order and cannot deadlock each other.

// groupsInFlight bounds the groups sent at once. One group in flight
// would make every put wait behind the round trip before it; a few let
// the next group leave while one waits for its commit, still with far
// fewer round trips than puts.
const groupsInFlight = 2

// pgPut is one put waiting for its group.
type pgPut struct {
	ctx       context.Context
	kind, key string
	sql       string
	args      []any
	res       putResult
	err       error
	done      chan struct{}
}

// putResult is what a put statement answers (see putStatement).
type putResult struct {
	held     bool
	ver, seq *int64
}

// pgGroup gathers concurrent puts into groups, one commit each.
type pgGroup struct {
	db querier

	mu       sync.Mutex
	waiting  []*pgPut
	inFlight int

	writes, commits atomic.Int64
}

// querier is the part of the pool a group uses.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

func (g *pgGroup) stats() WriteStats {
	return WriteStats{Writes: g.writes.Load(), Commits: g.commits.Load()}
}

// put runs one put statement in the next group and returns its answer
// once the group has committed.
func (g *pgGroup) put(ctx context.Context, kind, key, sql string, args []any) (putResult, error) {
	if err := ctx.Err(); err != nil {
		return putResult{}, err
	}
	op := &pgPut{ctx: ctx, kind: kind, key: key, sql: sql, args: args, done: make(chan struct{})}
	g.mu.Lock()
	g.waiting = append(g.waiting, op)
	if g.inFlight < groupsInFlight {
		g.inFlight++
		go g.run()
	}
	g.mu.Unlock()
	select {
	case <-op.done:
		return op.res, op.err
	case <-ctx.Done():
		// As with a statement of its own cancelled midway, the caller
		// cannot tell whether the write committed.
		return putResult{}, fmt.Errorf("%w (the write may have committed)", ctx.Err())
	}
}

// run sends groups until nothing waits.
func (g *pgGroup) run() {
	for {
		g.mu.Lock()
		n := min(len(g.waiting), maxBatch)
		if n == 0 {
			g.inFlight--
			g.mu.Unlock()
			return
		}
		group := slices.Clone(g.waiting[:n])
		g.waiting = slices.Delete(g.waiting, 0, n)
		g.mu.Unlock()
		g.commit(group)
	}
}

// commit writes a group in one transaction and answers each put.
func (g *pgGroup) commit(group []*pgPut) {
	live := group[:0]
	for _, op := range group {
		if err := op.ctx.Err(); err != nil {
			op.err = err // given up before it was sent: not written
			close(op.done)
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	slices.SortStableFunc(live, func(a, b *pgPut) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.key, b.key))
	})
	ctx, cancel := context.WithTimeout(context.Background(), batchQueryTimeout)
	defer cancel()
	if len(live) == 1 {
		g.alone(ctx, live[0])
		return
	}
	b := &pgx.Batch{}
	for _, op := range live {
		b.Queue(op.sql, op.args...)
	}
	br := g.db.SendBatch(ctx, b)
	var err error
	for _, op := range live {
		if err == nil {
			err = br.QueryRow().Scan(&op.res.held, &op.res.ver, &op.res.seq)
		}
	}
	// Close reads up to the Sync, so its error is the commit's.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		g.commits.Add(1)
		g.writes.Add(int64(len(live)))
		for _, op := range live {
			close(op.done)
		}
	case rolledBack(err):
		// Nothing of the group was written: each put alone, so only the
		// one at fault fails.
		for _, op := range live {
			op.res = putResult{}
			g.alone(ctx, op)
		}
	default:
		// The connection failed midway: the commit may or may not have
		// happened, as for a statement of its own.
		for _, op := range live {
			op.err = err
			close(op.done)
		}
	}
}

// alone sends one put as a statement of its own.
func (g *pgGroup) alone(ctx context.Context, op *pgPut) {
	op.err = g.db.QueryRow(ctx, op.sql, op.args...).Scan(&op.res.held, &op.res.ver, &op.res.seq)
	if op.err == nil {
		g.commits.Add(1)
		g.writes.Add(1)
	}
	close(op.done)
}

// rolledBack reports whether err says for certain that nothing of the
// transaction was written: the server reported an error (which aborts
// the transaction, and ERROR leaves the session usable), or nothing was
// sent at all.
func rolledBack(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return cmp.Or(pe.SeverityUnlocalized, pe.Severity) == "ERROR"
	}
	return pgconn.SafeToRetry(err)
}
