package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Group commit. SQLite has one writer, and each commit waits for its
// fsync (synchronous=FULL): committed one by one, concurrent writers
// (the release engine's workers) queue behind each other's fsyncs and the
// disk bounds the writes a second. Instead, one goroutine takes every
// write waiting and commits them in one transaction, with one fsync:
//
//   - each write runs in its own savepoint, so one that fails (a version
//     conflict, a fence no longer held, a bad statement) is undone alone
//     and only its caller hears of it;
//   - a caller is answered only after the transaction that carries its
//     write has committed (is on disk), or has failed: no write is ever
//     acknowledged before it is durable;
//   - the writes of one batch apply in the order they were taken, each
//     seeing the ones before it, as if committed one after another.
//
// PostgreSQL needs none of this: its server shares one WAL flush between
// the transactions committing together.

// maxBatch bounds one transaction's writes, so a caller never waits
// behind an unbounded batch.
const maxBatch = 256

// errClosed answers a write made after Close.
var errClosed = errors.New("state store closed")

// writeOp is one write waiting for the writer.
type writeOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// write runs fn in the next group commit and returns when that is
// durable. fn may run with others in one transaction: it must not commit.
func (s *SQLite) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- op:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Taken: wait for the outcome even if ctx ends now, since the write
	// may be on disk already and the answer must say so.
	return <-op.done
}

// writer takes the writes waiting and commits them together, until Close.
func (s *SQLite) writer() {
	defer close(s.stopped)
	for {
		var first *writeOp
		select {
		case first = <-s.writes:
		case <-s.quit:
			return
		}
		batch := []*writeOp{first}
	more:
		for len(batch) < maxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break more
			}
		}
		errs := s.commitBatch(batch)
		for i, op := range batch {
			op.done <- errs[i]
		}
	}
}

// commitBatch runs the batch's writes in one transaction, each in its
// own savepoint, and returns each write's outcome.
func (s *SQLite) commitBatch(batch []*writeOp) []error {
	errs := make([]error, len(batch))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	// The transaction is the batch's, not one caller's: a caller's ctx
	// ending cancels nothing of the others' writes.
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fail(fmt.Errorf("state store: begin: %w", err))
	}
	defer tx.Rollback()
	applied, ran := 0, 0
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			errs[i] = err // given up before its turn: not written
			continue
		}
		ran++
		if _, err := tx.Exec(`SAVEPOINT w`); err != nil {
			return fail(fmt.Errorf("state store: savepoint: %w", err))
		}
		if errs[i] = op.fn(context.WithoutCancel(op.ctx), tx); errs[i] != nil {
			if _, err := tx.Exec(`ROLLBACK TO w`); err != nil {
				return fail(fmt.Errorf("state store: undo a failed write: %w", err))
			}
		} else {
			applied++
		}
		if _, err := tx.Exec(`RELEASE w`); err != nil {
			return fail(fmt.Errorf("state store: savepoint: %w", err))
		}
	}
	if applied == 0 {
		return errs
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("state store: commit: %w", err))
	}
	s.commitCount.Add(1)
	s.writeCount.Add(int64(ran))
	return errs
}

// WriteStats counts the writes committed and the transactions that
// carried them (pave_state_writes_per_commit on /pave/metrics).
func (s *SQLite) WriteStats() WriteStats {
	return WriteStats{Writes: s.writeCount.Load(), Commits: s.commitCount.Load()}
}
