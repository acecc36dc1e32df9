package state

import "time"

// rows is what both backends' query results offer (database/sql's and
// pgx's), so the two read objects and events with one scan each.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanObjects reads rows of (key, version, data, updated) of one kind.
func scanObjects(kind string, r rows) ([]Object, error) {
	var out []Object
	for r.Next() {
		o := Object{Kind: kind}
		var updated int64
		if err := r.Scan(&o.Key, &o.Version, (*[]byte)(&o.Data), &updated); err != nil {
			return nil, err
		}
		o.Updated = time.Unix(0, updated).UTC()
		out = append(out, o)
	}
	return out, r.Err()
}

// scanEvents reads rows of (seq, time, kind, key, type, data).
func scanEvents(r rows) ([]Event, error) {
	var out []Event
	for r.Next() {
		var e Event
		var t int64
		var data []byte
		if err := r.Scan(&e.Seq, &t, &e.Kind, &e.Key, &e.Type, &data); err != nil {
			return nil, err
		}
		e.Time = time.Unix(0, t).UTC()
		if len(data) > 0 {
			e.Data = data
		}
		out = append(out, e)
	}
	return out, r.Err()
}

// scanVersions reads rows of (key, version).
func scanVersions(r rows) ([]KeyVersion, error) {
	var out []KeyVersion
	for r.Next() {
		var kv KeyVersion
		if err := r.Scan(&kv.Key, &kv.Version); err != nil {
			return nil, err
		}
		out = append(out, kv)
	}
	return out, r.Err()
}
