package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver

	"github.com/pave-platform/pave/internal/buildinfo"
)

// SQLite is the embedded state store: one file, WAL journal, fsync on commit.
type SQLite struct {
	db *sql.DB // the one writer
	// rdb reads: WAL lets readers run while the writer waits for its
	// fsync, so concurrent reconciles do not queue behind each commit.
	rdb *sql.DB
	// writes go to the writer goroutine, which commits the writes
	// waiting together in one transaction (group commit, sqlitewriter.go).
	writes    chan *writeOp
	quit      chan struct{}
	closeOnce sync.Once
	stopped   chan struct{}
	versions  versionBatch
	// writeCount and commitCount count the group commits (WriteStats).
	writeCount, commitCount atomic.Int64
}

var (
	_ Store     = (*SQLite)(nil)
	_ Leases    = (*SQLite)(nil)
	_ Versioner = (*SQLite)(nil)
)

// sqliteMigrations[i] brings the schema from version i to i+1; the
// version is SQLite's user_version. Version 1 is the schema of the Paves
// that kept no version (their files read as version 0 and migrate in place).
var sqliteMigrations = []string{
	`CREATE TABLE IF NOT EXISTS objects (
	   kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
	   data BLOB NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (kind, key));
	 CREATE TABLE IF NOT EXISTS events (
	   seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
	   kind TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, data BLOB);
	 CREATE INDEX IF NOT EXISTS events_by_key ON events (kind, key, seq);`,
	`CREATE TABLE IF NOT EXISTS leases (
	   name TEXT PRIMARY KEY, holder TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
	   token INTEGER NOT NULL, acquired INTEGER NOT NULL,
	   renewed INTEGER NOT NULL, expires INTEGER NOT NULL);`,
}

// OpenSQLite opens (creating if needed) the store at path.
func OpenSQLite(path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	// synchronous=FULL: a commit is on disk when it returns, which is what
	// "record the intent before applying it" needs across kill -9.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	// _txlock=immediate: a write transaction takes the write lock when it
	// begins, waiting for it up to the busy timeout. Begun deferred, it
	// would read first, and when another process (`pave token create
	// --data-dir` beside `pave up`) committed meanwhile or holds the lock,
	// SQLite refuses the upgrade to a write with SQLITE_BUSY at once,
	// without waiting, since the read's snapshot is stale.
	db, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	// One writer connection: SQLite serialises writers anyway, and a single
	// connection keeps transactions free of SQLITE_BUSY within the process.
	db.SetMaxOpenConns(1)
	if err := migrateSQLite(db, path); err != nil {
		db.Close()
		return nil, err
	}
	rdb, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)
	s := &SQLite{db: db, rdb: rdb, writes: make(chan *writeOp), quit: make(chan struct{}), stopped: make(chan struct{})}
	s.versions.query = s.versionsOf
	go s.writer()
	return s, nil
}

func migrateSQLite(db *sql.DB, path string) error {
	if len(sqliteMigrations) != SchemaVersion {
		panic("state: sqliteMigrations out of step with SchemaVersion")
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("state store %s: %w", path, err)
	}
	defer tx.Rollback()
	var cur int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&cur); err != nil {
		return fmt.Errorf("state store %s: %w", path, err)
	}
	if cur > SchemaVersion {
		by := "newer"
		_ = tx.QueryRow(`SELECT pave FROM pave_schema ORDER BY version DESC LIMIT 1`).Scan(&by)
		return newerSchema("state store "+path, cur, by)
	}
	if cur == SchemaVersion {
		return nil
	}
	if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS pave_schema (version INTEGER PRIMARY KEY, pave TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("state store %s: %w", path, err)
	}
	for v := cur; v < SchemaVersion; v++ {
		if _, err := tx.Exec(sqliteMigrations[v]); err != nil {
			return fmt.Errorf("state store %s: migrate the schema to version %d: %w", path, v+1, err)
		}
		if _, err := tx.Exec(`INSERT OR REPLACE INTO pave_schema (version, pave, applied) VALUES (?,?,?)`, v+1, buildinfo.Read().Version, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("state store %s: %w", path, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, SchemaVersion)); err != nil {
		return fmt.Errorf("state store %s: %w", path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state store %s: %w", path, err)
	}
	return nil
}

// checkFence fails a write made under a fence that no longer holds; it
// runs inside the write's transaction.
func checkFence(ctx context.Context, tx *sql.Tx) error {
	f, ok := FenceFrom(ctx)
	if !ok {
		return nil
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM leases WHERE name=? AND holder=? AND token=? AND expires > ?`,
		f.Lease, f.Holder, f.Token, time.Now().UnixNano()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fenced(f)
	}
	return err
}

// Close stops the writer after the writes it has taken, then closes the
// file; a write after Close fails.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.stopped
	return errors.Join(s.rdb.Close(), s.db.Close())
}

func (s *SQLite) Get(ctx context.Context, kind, key string) (Object, error) {
	o := Object{Kind: kind, Key: key}
	var updated int64
	err := s.rdb.QueryRowContext(ctx, `SELECT version, data, updated FROM objects WHERE kind=? AND key=?`, kind, key).
		Scan(&o.Version, (*[]byte)(&o.Data), &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, fmt.Errorf("%s %q: %w", kind, key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("get %s/%s: %w", kind, key, err)
	}
	o.Updated = time.Unix(0, updated).UTC()
	return o, nil
}

func (s *SQLite) List(ctx context.Context, kind string) ([]Object, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT key, version, data, updated FROM objects WHERE kind=? ORDER BY key`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	defer rows.Close()
	out, err := scanObjects(kind, rows)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return out, nil
}

// Versions lists the kind's keys and versions, in key order.
func (s *SQLite) Versions(ctx context.Context, kind string) ([]KeyVersion, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT key, version FROM objects WHERE kind=? ORDER BY key`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	defer rows.Close()
	out, err := scanVersions(rows)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return out, nil
}

// Version returns one object's version. The versions asked for at once
// are read with one query (versionBatch).
func (s *SQLite) Version(ctx context.Context, kind, key string) (int64, error) {
	return s.versions.version(ctx, kind, key)
}

// versionsOf reads the versions of keys of one kind, for versionBatch.
func (s *SQLite) versionsOf(ctx context.Context, kind string, keys []string) (map[string]int64, error) {
	list, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT key, version FROM objects WHERE kind=? AND key IN (SELECT value FROM json_each(?))`, kind, string(list))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	kvs, err := scanVersions(rows)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		out[kv.Key] = kv.Version
	}
	return out, nil
}

func (s *SQLite) Put(ctx context.Context, kind, key string, data []byte, ifVersion int64) (Object, error) {
	o, _, err := s.put(ctx, kind, key, data, ifVersion, nil)
	return o, err
}

// PutAppend stores an object and appends an event in one transaction.
func (s *SQLite) PutAppend(ctx context.Context, kind, key string, data []byte, ifVersion int64, e Event) (Object, int64, error) {
	return s.put(ctx, kind, key, data, ifVersion, &e)
}

func (s *SQLite) put(ctx context.Context, kind, key string, data []byte, ifVersion int64, e *Event) (Object, int64, error) {
	var o Object
	var seq int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := checkFence(ctx, tx); err != nil {
			return fmt.Errorf("put %s/%s: %w", kind, key, err)
		}
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT version FROM objects WHERE kind=? AND key=?`, kind, key).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("put %s/%s: %w", kind, key, err)
		}
		if ifVersion != Any && ifVersion != cur {
			return fmt.Errorf("%s %q at version %d, expected %d: %w", kind, key, cur, ifVersion, ErrConflict)
		}
		now := time.Now().UTC()
		o = Object{Kind: kind, Key: key, Version: cur + 1, Data: append([]byte(nil), data...), Updated: now}
		if _, err := tx.ExecContext(ctx, `INSERT INTO objects (kind, key, version, data, updated) VALUES (?,?,?,?,?)
			ON CONFLICT (kind, key) DO UPDATE SET version=excluded.version, data=excluded.data, updated=excluded.updated`,
			kind, key, o.Version, data, now.UnixNano()); err != nil {
			return fmt.Errorf("put %s/%s: %w", kind, key, err)
		}
		if e == nil {
			return nil
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO events (time, kind, key, type, data) VALUES (?,?,?,?,?)`,
			e.Time.UnixNano(), e.Kind, e.Key, e.Type, []byte(e.Data))
		if err == nil {
			seq, err = res.LastInsertId()
		}
		if err != nil {
			return fmt.Errorf("append event %s/%s: %w", e.Kind, e.Key, err)
		}
		return nil
	})
	if err != nil {
		return Object{}, 0, err
	}
	return o, seq, nil
}

func (s *SQLite) Delete(ctx context.Context, kind, key string, ifVersion int64) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := checkFence(ctx, tx); err != nil {
			return fmt.Errorf("delete %s/%s: %w", kind, key, err)
		}
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT version FROM objects WHERE kind=? AND key=?`, kind, key).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s %q: %w", kind, key, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete %s/%s: %w", kind, key, err)
		}
		if ifVersion != Any && ifVersion != cur {
			return fmt.Errorf("delete %s %q at version %d, expected %d: %w", kind, key, cur, ifVersion, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM objects WHERE kind=? AND key=?`, kind, key); err != nil {
			return fmt.Errorf("delete %s/%s: %w", kind, key, err)
		}
		return nil
	})
}

func (s *SQLite) Append(ctx context.Context, e Event) (int64, error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	var seq int64
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := checkFence(ctx, tx); err != nil {
			return fmt.Errorf("append event %s/%s: %w", e.Kind, e.Key, err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO events (time, kind, key, type, data) VALUES (?,?,?,?,?)`,
			e.Time.UnixNano(), e.Kind, e.Key, e.Type, []byte(e.Data))
		if err == nil {
			seq, err = res.LastInsertId()
		}
		if err != nil {
			return fmt.Errorf("append event %s/%s: %w", e.Kind, e.Key, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

func (s *SQLite) Events(ctx context.Context, kind, key string, afterSeq int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT seq, time, kind, key, type, data FROM events WHERE kind=? AND seq>?`
	args := []any{kind, afterSeq}
	if key != "" {
		q += ` AND key=?`
		args = append(args, key)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events %s/%s: %w", kind, key, err)
	}
	defer rows.Close()
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events %s/%s: %w", kind, key, err)
	}
	return out, nil
}

// The leases of one file: one process opens it (the data directory's
// lock), so its own clock is the only one.

func (s *SQLite) TryLease(ctx context.Context, name, holder, note string, ttl time.Duration) (Lease, error) {
	now := time.Now().UTC()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	defer tx.Rollback()
	l, err := s.getLease(ctx, tx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Lease{}, err
	}
	l.Now = now
	if l.Holder != "" && l.Holder != holder && l.Live() {
		return l, nil
	}
	if l.Holder != holder || !l.Live() {
		l.Token++
		l.Acquired = now
	}
	l.Name, l.Holder, l.Note, l.Renewed, l.Expires = name, holder, note, now, now.Add(ttl)
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO leases (name, holder, note, token, acquired, renewed, expires) VALUES (?,?,?,?,?,?,?)`,
		name, holder, note, l.Token, l.Acquired.UnixNano(), now.UnixNano(), l.Expires.UnixNano()); err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	return l, nil
}

func (s *SQLite) ReleaseLease(ctx context.Context, name, holder string, token int64) error {
	now := time.Now().UnixNano()
	if _, err := s.db.ExecContext(ctx, `UPDATE leases SET expires=? WHERE name=? AND holder=? AND token=? AND expires > ?`,
		now, name, holder, token, now); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

func (s *SQLite) GetLease(ctx context.Context, name string) (Lease, error) {
	l, err := s.getLease(ctx, s.db, name)
	l.Now = time.Now().UTC()
	return l, err
}

func (s *SQLite) getLease(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (Lease, error) {
	l := Lease{Name: name}
	var acquired, renewed, expires int64
	err := q.QueryRowContext(ctx, `SELECT holder, note, token, acquired, renewed, expires FROM leases WHERE name=?`, name).
		Scan(&l.Holder, &l.Note, &l.Token, &acquired, &renewed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("lease %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	l.Acquired, l.Renewed, l.Expires = time.Unix(0, acquired).UTC(), time.Unix(0, renewed).UTC(), time.Unix(0, expires).UTC()
	return l, nil
}
