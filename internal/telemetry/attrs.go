package telemetry

import (
	"encoding/json"
	"slices"
	"strings"
)

// Attr is one attribute of a log line or span.
type Attr struct{ Key, Value string }

// Attrs are a record's attributes in the order they came, each key once.
// A slice rather than a map: records carry a handful each, and a map per
// record cost the intake an allocation, hashing and a randomised walk for
// every line. In JSON they are an object, keys sorted.
type Attrs []Attr

// AttrsOf turns a map into Attrs, sorted by key.
func AttrsOf(m map[string]string) Attrs {
	if len(m) == 0 {
		return nil
	}
	a := make(Attrs, 0, len(m))
	for k, v := range m {
		a = append(a, Attr{k, v})
	}
	slices.SortFunc(a, func(x, y Attr) int { return strings.Compare(x.Key, y.Key) })
	return a
}

// Get returns key's value.
func (a Attrs) Get(key string) (string, bool) {
	for i := range a {
		if a[i].Key == key {
			return a[i].Value, true
		}
	}
	return "", false
}

// Set gives key the value, replacing an earlier one (the last of
// duplicate keys wins, as in a JSON object).
func (a *Attrs) Set(key, value string) {
	for i := range *a {
		if (*a)[i].Key == key {
			(*a)[i].Value = value
			return
		}
	}
	*a = append(*a, Attr{key, value})
}

// SetIfAbsent gives key the value unless it has one.
func (a *Attrs) SetIfAbsent(key, value string) {
	if _, ok := a.Get(key); !ok {
		*a = append(*a, Attr{key, value})
	}
}

// Sorted returns a copy sorted by key, for display.
func (a Attrs) Sorted() Attrs {
	s := slices.Clone(a)
	slices.SortFunc(s, func(x, y Attr) int { return strings.Compare(x.Key, y.Key) })
	return s
}

// Map returns the attributes as a map.
func (a Attrs) Map() map[string]string {
	m := make(map[string]string, len(a))
	for _, kv := range a {
		m[kv.Key] = kv.Value
	}
	return m
}

func (a Attrs) approxSize() int {
	n := 32 * cap(a)
	for _, kv := range a {
		n += len(kv.Key) + len(kv.Value)
	}
	return n
}

func (a Attrs) MarshalJSON() ([]byte, error) { return json.Marshal(a.Map()) }

func (a *Attrs) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*a = AttrsOf(m)
	return nil
}
