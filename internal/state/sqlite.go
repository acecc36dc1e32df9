package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

// SQLite is the embedded state store: one file, WAL journal, fsync on commit.
type SQLite struct {
	db *sql.DB
}

var _ Store = (*SQLite)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
  data BLOB NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, time INTEGER NOT NULL,
  kind TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, data BLOB);
CREATE INDEX IF NOT EXISTS events_by_key ON events (kind, key, seq);
`

// OpenSQLite opens (creating if needed) the store at path.
func OpenSQLite(path string) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state store: %w", err)
	}
	// synchronous=FULL: a commit is on disk when it returns, which is what
	// "record the intent before applying it" needs across kill -9.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	// One writer connection: SQLite serialises writers anyway, and a single
	// connection keeps transactions free of SQLITE_BUSY within the process.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("state store %s: %w", path, err)
	}
	return &SQLite{db: db}, nil
}

func (s *SQLite) Close() error { return s.db.Close() }

func (s *SQLite) Get(ctx context.Context, kind, key string) (Object, error) {
	o := Object{Kind: kind, Key: key}
	var updated int64
	err := s.db.QueryRowContext(ctx, `SELECT version, data, updated FROM objects WHERE kind=? AND key=?`, kind, key).
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
	rows, err := s.db.QueryContext(ctx, `SELECT key, version, data, updated FROM objects WHERE kind=? ORDER BY key`, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	defer rows.Close()
	var out []Object
	for rows.Next() {
		o := Object{Kind: kind}
		var updated int64
		if err := rows.Scan(&o.Key, &o.Version, (*[]byte)(&o.Data), &updated); err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		o.Updated = time.Unix(0, updated).UTC()
		out = append(out, o)
	}
	return out, rows.Err()
}

func (s *SQLite) Put(ctx context.Context, kind, key string, data []byte, ifVersion int64) (Object, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Object{}, fmt.Errorf("put %s/%s: %w", kind, key, err)
	}
	defer tx.Rollback()
	var cur int64
	err = tx.QueryRowContext(ctx, `SELECT version FROM objects WHERE kind=? AND key=?`, kind, key).Scan(&cur)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Object{}, fmt.Errorf("put %s/%s: %w", kind, key, err)
	}
	if ifVersion != Any && ifVersion != cur {
		return Object{}, fmt.Errorf("%s %q at version %d, expected %d: %w", kind, key, cur, ifVersion, ErrConflict)
	}
	now := time.Now().UTC()
	o := Object{Kind: kind, Key: key, Version: cur + 1, Data: append([]byte(nil), data...), Updated: now}
	if _, err := tx.ExecContext(ctx, `INSERT INTO objects (kind, key, version, data, updated) VALUES (?,?,?,?,?)
		ON CONFLICT (kind, key) DO UPDATE SET version=excluded.version, data=excluded.data, updated=excluded.updated`,
		kind, key, o.Version, data, now.UnixNano()); err != nil {
		return Object{}, fmt.Errorf("put %s/%s: %w", kind, key, err)
	}
	if err := tx.Commit(); err != nil {
		return Object{}, fmt.Errorf("put %s/%s: %w", kind, key, err)
	}
	return o, nil
}

func (s *SQLite) Delete(ctx context.Context, kind, key string, ifVersion int64) error {
	q, args := `DELETE FROM objects WHERE kind=? AND key=?`, []any{kind, key}
	if ifVersion != Any {
		q, args = q+` AND version=?`, append(args, ifVersion)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w", kind, key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Get(ctx, kind, key); err != nil {
			return err
		}
		return fmt.Errorf("delete %s %q: %w", kind, key, ErrConflict)
	}
	return nil
}

func (s *SQLite) Append(ctx context.Context, e Event) (int64, error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO events (time, kind, key, type, data) VALUES (?,?,?,?,?)`,
		e.Time.UnixNano(), e.Kind, e.Key, e.Type, []byte(e.Data))
	if err != nil {
		return 0, fmt.Errorf("append event %s/%s: %w", e.Kind, e.Key, err)
	}
	return res.LastInsertId()
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
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("events %s/%s: %w", kind, key, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var t int64
		var data []byte
		if err := rows.Scan(&e.Seq, &t, &e.Kind, &e.Key, &e.Type, &data); err != nil {
			return nil, err
		}
		e.Time = time.Unix(0, t).UTC()
		if len(data) > 0 {
			e.Data = data
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
