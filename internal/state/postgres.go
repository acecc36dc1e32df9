package state

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pave-platform/pave/internal/buildinfo"
)

// Postgres is the state store on PostgreSQL, for several control-plane
// replicas sharing one state. Connections are pooled (pool_max_conns and
// the other pgxpool parameters in the URL); TLS is configured by the URL's
// sslmode, sslrootcert, sslcert and sslkey parameters, as libpq does.
type Postgres struct {
	pool     *pgxpool.Pool
	where    string // the URL without its password, for errors
	versions versionBatch
	group    pgGroup // the puts' group commit
}

var (
	_ Store     = (*Postgres)(nil)
	_ Leases    = (*Postgres)(nil)
	_ Versioner = (*Postgres)(nil)
)

// postgresMigrations[i] brings the schema from version i to i+1.
var postgresMigrations = []string{
	`CREATE TABLE IF NOT EXISTS objects (
	   kind TEXT NOT NULL, key TEXT NOT NULL, version BIGINT NOT NULL,
	   data BYTEA NOT NULL, updated BIGINT NOT NULL, PRIMARY KEY (kind, key));
	 CREATE TABLE IF NOT EXISTS events (
	   seq BIGSERIAL PRIMARY KEY, time BIGINT NOT NULL,
	   kind TEXT NOT NULL, key TEXT NOT NULL, type TEXT NOT NULL, data BYTEA);
	 CREATE INDEX IF NOT EXISTS events_by_key ON events (kind, key, seq);`,
	`CREATE TABLE IF NOT EXISTS leases (
	   name TEXT PRIMARY KEY, holder TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
	   token BIGINT NOT NULL, acquired TIMESTAMPTZ NOT NULL,
	   renewed TIMESTAMPTZ NOT NULL, expires TIMESTAMPTZ NOT NULL);`,
}

// DefaultPoolMaxConns is the connection pool's size when the URL sets no
// pool_max_conns: the release engine's default workers and a few for the
// API, the lease and the other loops.
const DefaultPoolMaxConns = 24

// migrationLock serialises the migrations of replicas starting together.
const migrationLock = 0x7061766573746174 // "pavestat"

// OpenPostgres connects to the database at rawURL (postgres://…) and
// brings its schema to SchemaVersion. A schema from a newer Pave is
// refused with both versions named, before anything is written.
func OpenPostgres(ctx context.Context, rawURL string) (*Postgres, error) {
	where := redact(rawURL)
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", where, err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if !strings.Contains(rawURL, "pool_max_conns") {
		// pgxpool's default (4 on a small machine) would make the release
		// engine's workers (release-workers, 16 by default) queue for
		// connections rather than share PostgreSQL's commit fsyncs.
		cfg.MaxConns = max(cfg.MaxConns, DefaultPoolMaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", where, err)
	}
	s := &Postgres{pool: pool, where: where}
	s.versions.query = s.versionsOf
	s.group.db = pool
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, explainTLS(err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Postgres) migrate(ctx context.Context) error {
	if len(postgresMigrations) != SchemaVersion {
		panic("state: postgresMigrations out of step with SchemaVersion")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("state store %s: %w", s.where, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("state store %s: %w", s.where, err)
	}
	// Read before writing anything: a newer schema is refused untouched.
	cur, by := 0, ""
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('pave_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("state store %s: %w", s.where, err)
	}
	if exists {
		err := tx.QueryRow(ctx, `SELECT version, pave FROM pave_schema ORDER BY version DESC LIMIT 1`).Scan(&cur, &by)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("state store %s: read the schema version: %w", s.where, err)
		}
	}
	if cur > SchemaVersion {
		return newerSchema("state store "+s.where, cur, by)
	}
	if cur == SchemaVersion {
		return nil
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS pave_schema (
	    version INT PRIMARY KEY, pave TEXT NOT NULL, applied TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("state store %s: %w", s.where, err)
	}
	for v := cur; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, postgresMigrations[v]); err != nil {
			return fmt.Errorf("state store %s: migrate the schema to version %d: %w", s.where, v+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pave_schema (version, pave) VALUES ($1, $2)`, v+1, buildinfo.Read().Version); err != nil {
			return fmt.Errorf("state store %s: %w", s.where, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("state store %s: %w", s.where, err)
	}
	return nil
}

// redact drops the password from a URL shown in errors and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://…"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.Redacted()
}

func (s *Postgres) Close() error { s.pool.Close(); return nil }

// WriteStats counts the puts committed and the transactions that carried
// them (group commit: pave_state_writes_per_commit on /pave/metrics).
func (s *Postgres) WriteStats() WriteStats { return s.group.stats() }

// Ping checks that the database answers and accepts writes (a read-only
// server, such as a hot standby, does not).
func (s *Postgres) Ping(ctx context.Context) error {
	var ro string
	if err := s.pool.QueryRow(ctx, `SHOW transaction_read_only`).Scan(&ro); err != nil {
		return fmt.Errorf("state store %s: %w", s.where, err)
	}
	if ro == "on" {
		return fmt.Errorf("state store %s is read-only (a standby, or default_transaction_read_only): point the setting at the primary", s.where)
	}
	return nil
}

func (s *Postgres) Get(ctx context.Context, kind, key string) (Object, error) {
	o := Object{Kind: kind, Key: key}
	var updated int64
	err := s.pool.QueryRow(ctx, `SELECT version, data, updated FROM objects WHERE kind=$1 AND key=$2`, kind, key).
		Scan(&o.Version, (*[]byte)(&o.Data), &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return Object{}, fmt.Errorf("%s %q: %w", kind, key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("get %s/%s: %w", kind, key, err)
	}
	o.Updated = time.Unix(0, updated).UTC()
	return o, nil
}

func (s *Postgres) List(ctx context.Context, kind string) ([]Object, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, version, data, updated FROM objects WHERE kind=$1 ORDER BY key COLLATE "C"`, kind)
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
func (s *Postgres) Versions(ctx context.Context, kind string) ([]KeyVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, version FROM objects WHERE kind=$1 ORDER BY key COLLATE "C"`, kind)
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
func (s *Postgres) Version(ctx context.Context, kind, key string) (int64, error) {
	return s.versions.version(ctx, kind, key)
}

// versionsOf reads the versions of keys of one kind, for versionBatch.
func (s *Postgres) versionsOf(ctx context.Context, kind string, keys []string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, version FROM objects WHERE kind=$1 AND key = ANY($2)`, kind, keys)
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

// write runs fn in a transaction that first checks the fence ctx carries,
// holding the lease row shared so a takeover waits for this commit.
func (s *Postgres) write(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if f, ok := FenceFrom(ctx); ok {
		var held bool
		err := tx.QueryRow(ctx, `SELECT true FROM leases WHERE name=$1 AND holder=$2 AND token=$3 AND expires > now() FOR SHARE`,
			f.Lease, f.Holder, f.Token).Scan(&held)
		if errors.Is(err, pgx.ErrNoRows) {
			return fenced(f)
		}
		if err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func (s *Postgres) Put(ctx context.Context, kind, key string, data []byte, ifVersion int64) (Object, error) {
	o, _, err := s.put(ctx, kind, key, data, ifVersion, nil)
	return o, err
}

// PutAppend stores an object and appends an event in one transaction.
func (s *Postgres) PutAppend(ctx context.Context, kind, key string, data []byte, ifVersion int64, e Event) (Object, int64, error) {
	return s.put(ctx, kind, key, data, ifVersion, &e)
}

func (s *Postgres) put(ctx context.Context, kind, key string, data []byte, ifVersion int64, e *Event) (Object, int64, error) {
	now := time.Now().UTC()
	o := Object{Kind: kind, Key: key, Data: append([]byte(nil), data...), Updated: now}
	if e != nil && e.Time.IsZero() {
		e.Time = now
	}
	f, isFenced := FenceFrom(ctx)
	q, args := putStatement(kind, key, data, now.UnixNano(), ifVersion, e, f, isFenced)
	r, err := s.group.put(ctx, kind, key, q, args)
	if err != nil {
		return Object{}, 0, fmt.Errorf("put %s/%s: %w", kind, key, err)
	}
	held, ver, seq := r.held, r.ver, r.seq
	switch {
	case !held:
		return Object{}, 0, fmt.Errorf("put %s/%s: %w", kind, key, fenced(f))
	case ver == nil:
		// The rare path takes a second query, for the error to say
		// which version is stored (0: none).
		var cur int64
		_ = s.pool.QueryRow(ctx, `SELECT version FROM objects WHERE kind=$1 AND key=$2`, kind, key).Scan(&cur)
		return Object{}, 0, fmt.Errorf("put %s/%s: %s %q at version %d, expected %d: %w", kind, key, kind, key, cur, ifVersion, ErrConflict)
	}
	o.Version = *ver
	if seq != nil {
		return o, *seq, nil
	}
	return o, 0, nil
}

// putStatement is a put as one statement, so the puts of a group commit
// (pggroup.go) cost one round trip together: the fence check, the write of the
// object under its version check, and the event, which is inserted only if
// the object was written. It answers (held, version, seq): held is false
// when the fence no longer holds, and then nothing was written; version
// is NULL on a version conflict, and then nothing was written either.
//
// The fence's lease row is locked FOR SHARE before the object is written
// (the write's condition depends on it), and stays locked until the
// statement's transaction (its group's) commits: a takeover, which updates that row, waits for this
// write, and a write that waited for a takeover re-reads the row and
// finds another token (READ COMMITTED re-checks a locked row's newest
// version), as the five statements of an explicit transaction did.
func putStatement(kind, key string, data []byte, updated, ifVersion int64, e *Event, f Fence, isFenced bool) (string, []any) {
	v := putVariant{fenced: isFenced, event: e != nil}
	args := make([]any, 0, 13)
	args = append(args, kind, key, data, updated)
	if isFenced {
		args = append(args, f.Lease, f.Holder, f.Token)
	}
	switch ifVersion {
	case Any:
		v.mode = putAny
	case 0:
		v.mode = putNew
	default:
		v.mode = putIfVersion
		args = append(args, ifVersion)
	}
	if e != nil {
		args = append(args, e.Time.UnixNano(), e.Kind, e.Key, e.Type, []byte(e.Data))
	}
	return putSQL[v], args
}

// putVariant picks one of the put statements: how the version is checked,
// whether a fence is, whether an event is appended.
type putVariant struct {
	mode          int
	fenced, event bool
}

const (
	putAny = iota
	putNew
	putIfVersion
)

// putSQL holds every put statement, built once (the text is the key of
// pgx's statement cache, so it must not vary with the values).
var putSQL = func() map[putVariant]string {
	m := map[putVariant]string{}
	for _, mode := range []int{putAny, putNew, putIfVersion} {
		for _, fenced := range []bool{false, true} {
			for _, event := range []bool{false, true} {
				v := putVariant{mode, fenced, event}
				m[v] = buildPutSQL(v)
			}
		}
	}
	return m
}()

// buildPutSQL writes the statement of v. Its parameters, in order: kind,
// key, data, updated; the fence's lease, holder and token if fenced; the
// expected version if checked; the event's time, kind, key, type and data
// if one is appended.
func buildPutSQL(v putVariant) string {
	n := 4
	param := func() string { n++; return fmt.Sprintf("$%d", n) }
	var q strings.Builder
	q.WriteString("WITH ")
	guard, held := "", "true"
	if v.fenced {
		fmt.Fprintf(&q, "fence AS MATERIALIZED (SELECT 1 FROM leases WHERE name=%s AND holder=%s AND token=%s AND expires > now() FOR SHARE),\n",
			param(), param(), param())
		guard, held = " AND EXISTS (SELECT 1 FROM fence)", "EXISTS (SELECT 1 FROM fence)"
	}
	switch v.mode {
	case putAny:
		fmt.Fprintf(&q, `obj AS (INSERT INTO objects (kind, key, version, data, updated)
  SELECT $1::text, $2::text, 1, $3::bytea, $4::bigint WHERE true%s
  ON CONFLICT (kind, key) DO UPDATE SET version=objects.version+1, data=excluded.data, updated=excluded.updated
  RETURNING version)`, guard)
	case putNew:
		fmt.Fprintf(&q, `obj AS (INSERT INTO objects (kind, key, version, data, updated)
  SELECT $1::text, $2::text, 1, $3::bytea, $4::bigint WHERE true%s
  ON CONFLICT (kind, key) DO NOTHING RETURNING version)`, guard)
	default:
		fmt.Fprintf(&q, `obj AS (UPDATE objects SET version=version+1, data=$3::bytea, updated=$4::bigint
  WHERE kind=$1::text AND key=$2::text AND version=%s%s RETURNING version)`, param(), guard)
	}
	seq := "NULL::bigint"
	if v.event {
		fmt.Fprintf(&q, `,
ev AS (INSERT INTO events (time, kind, key, type, data)
  SELECT %s::bigint, %s::text, %s::text, %s::text, %s::bytea FROM obj RETURNING seq)`,
			param(), param(), param(), param(), param())
		seq = "(SELECT seq FROM ev)"
	}
	fmt.Fprintf(&q, "\nSELECT %s, (SELECT version FROM obj), %s", held, seq)
	return q.String()
}

func (s *Postgres) Delete(ctx context.Context, kind, key string, ifVersion int64) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		var cur int64
		err := tx.QueryRow(ctx, `SELECT version FROM objects WHERE kind=$1 AND key=$2 FOR UPDATE`, kind, key).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s %q: %w", kind, key, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if ifVersion != Any && ifVersion != cur {
			return fmt.Errorf("%s %q at version %d, expected %d: %w", kind, key, cur, ifVersion, ErrConflict)
		}
		_, err = tx.Exec(ctx, `DELETE FROM objects WHERE kind=$1 AND key=$2`, kind, key)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete %s/%s: %w", kind, key, err)
	}
	return err
}

func (s *Postgres) Append(ctx context.Context, e Event) (int64, error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	var seq int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO events (time, kind, key, type, data) VALUES ($1,$2,$3,$4,$5) RETURNING seq`,
			e.Time.UnixNano(), e.Kind, e.Key, e.Type, []byte(e.Data)).Scan(&seq)
	})
	if err != nil {
		return 0, fmt.Errorf("append event %s/%s: %w", e.Kind, e.Key, err)
	}
	return seq, nil
}

func (s *Postgres) Events(ctx context.Context, kind, key string, afterSeq int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	q := `SELECT seq, time, kind, key, type, data FROM events WHERE kind=$1 AND seq>$2`
	args := []any{kind, afterSeq}
	if key != "" {
		q += ` AND key=$4`
	}
	q += ` ORDER BY seq LIMIT $3`
	args = append(args, limit)
	if key != "" {
		args = append(args, key)
	}
	rows, err := s.pool.Query(ctx, q, args...)
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

// The leases use the database's clock only, so replicas whose clocks
// disagree still agree on who holds a lease.

func (s *Postgres) TryLease(ctx context.Context, name, holder, note string, ttl time.Duration) (Lease, error) {
	l, err := scanLease(s.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, note, token, acquired, renewed, expires)
		VALUES ($1, $2, $3, 1, now(), now(), now() + $4 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET
		  token = CASE WHEN l.holder = excluded.holder AND l.expires > now() THEN l.token ELSE l.token + 1 END,
		  acquired = CASE WHEN l.holder = excluded.holder AND l.expires > now() THEN l.acquired ELSE now() END,
		  holder = excluded.holder, note = excluded.note, renewed = now(), expires = excluded.expires
		WHERE l.holder = excluded.holder OR l.expires <= now()
		RETURNING name, holder, note, token, acquired, renewed, expires, now()`, name, holder, note, ttl.Microseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return s.GetLease(ctx, name)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	return l, nil
}

func (s *Postgres) ReleaseLease(ctx context.Context, name, holder string, token int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE leases SET expires = now() WHERE name=$1 AND holder=$2 AND token=$3 AND expires > now()`,
		name, holder, token); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

func (s *Postgres) GetLease(ctx context.Context, name string) (Lease, error) {
	l, err := scanLease(s.pool.QueryRow(ctx, `SELECT name, holder, note, token, acquired, renewed, expires, now() FROM leases WHERE name=$1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("lease %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", name, err)
	}
	return l, nil
}

func scanLease(row pgx.Row) (Lease, error) {
	var l Lease
	err := row.Scan(&l.Name, &l.Holder, &l.Note, &l.Token, &l.Acquired, &l.Renewed, &l.Expires, &l.Now)
	for _, t := range []*time.Time{&l.Acquired, &l.Renewed, &l.Expires, &l.Now} {
		*t = t.UTC()
	}
	return l, err
}
