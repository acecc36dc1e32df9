package shadow

import (
	"sort"
	"strings"
	"sync"

	"github.com/pave-platform/pave/internal/stats"
)

// The comparison learns what is noise the way Twitter's Diffy does: every
// mirrored request goes to stable twice (primary and secondary) and to the
// canary once, at the same moment. A field in which the two stable
// answers differ is noise (a timestamp, an id, a random value); a field
// in which the canary differs from stable where the second stable answer
// does not is evidence of a regression.
//
// The judge counts, per route and field, the discordant exchanges only:
// "canary only" (stable ≠ canary, stable = stable) and "stable only"
// (stable = canary, stable ≠ stable). While the canary answers as stable
// does, the secondary and the canary are exchangeable, so a discordant
// exchange is "canary only" with probability 1/2 whatever the field's
// noise rate: a sign test that needs no estimate of the noise, which the
// analysis package runs sequentially (analysis.CompareLLR). A field that
// never differs between two stables makes every difference count; a
// field that differs between stables as often as against the canary
// never fails, however noisy.

// ExpectedChange accepts an intended difference: on Route (a route key
// such as "POST /v1/pay", or its path "/v1/pay"; empty: every route), the
// field Path ("$.fee", "$.items[*].price", "header:X-Api-Version").
type ExpectedChange struct {
	Route string `json:"route,omitempty"`
	Path  string `json:"path"`
}

// Example is one request whose canary answer differed: its trace id (the
// request viewer shows it: /request.html?trace=ID) and the two values.
type Example struct {
	TraceID string `json:"traceId,omitempty"`
	Stable  string `json:"stable"`
	Canary  string `json:"canary"`
}

// FieldCounts are the cumulative comparison counts of one field of one
// route.
type FieldCounts struct {
	Route string `json:"route"`
	Path  string `json:"path"`
	// CanaryOnly: the canary differed from stable, the second stable did
	// not. StableOnly: the two stables differed, the canary did not.
	// Both: all three differed (noise that tells nothing).
	CanaryOnly uint64 `json:"canaryOnly,omitempty"`
	StableOnly uint64 `json:"stableOnly,omitempty"`
	Both       uint64 `json:"both,omitempty"`
	// Expected counts canary differences an expectedChanges rule accepts;
	// they never count as evidence.
	Expected uint64 `json:"expected,omitempty"`
	// Example is the latest canary-only difference.
	Example *Example `json:"example,omitempty"`
}

// Key is the field's key in Snapshot.Fields.
func (f FieldCounts) Key() string { return f.Route + " " + f.Path }

// Snapshot is a service's cumulative mirror statistics: a window is the
// difference of two.
type Snapshot struct {
	// Canary and Stable are the canary's and the primary stable's answers
	// to the same mirrored requests, by route, as the judges read live
	// traffic.
	Canary stats.Version `json:"canary"`
	Stable stats.Version `json:"stable"`
	// Secondary is the second stable answers (the noise learning's):
	// the judges add them to Stable's, so a mirrored request brings two
	// stable samples for one canary sample.
	Secondary stats.Version `json:"secondary,omitzero"`
	// Exchanges counts requests answered by all three (compared).
	Exchanges uint64 `json:"exchanges"`
	// Fields by Key.
	Fields map[string]FieldCounts `json:"fields,omitempty"`
	// Mirrored counts requests queued for the mirror; Dropped those the
	// full queue refused; TooLarge those whose body was over the limit;
	// NotSafe those of a method that changes state on a route not marked
	// safe; FieldsOverflow differences not counted once the field table
	// was full.
	Mirrored       uint64 `json:"mirrored"`
	Dropped        uint64 `json:"dropped,omitempty"`
	TooLarge       uint64 `json:"tooLarge,omitempty"`
	NotSafe        uint64 `json:"notSafe,omitempty"`
	FieldsOverflow uint64 `json:"fieldsOverflow,omitempty"`
}

// Sub returns s minus an earlier snapshot (the window between them); the
// examples are the later ones.
func (s Snapshot) Sub(e Snapshot) Snapshot {
	out := Snapshot{
		Canary: s.Canary.Sub(e.Canary), Stable: s.Stable.Sub(e.Stable), Secondary: s.Secondary.Sub(e.Secondary),
		Exchanges: sub(s.Exchanges, e.Exchanges), Mirrored: sub(s.Mirrored, e.Mirrored), Dropped: sub(s.Dropped, e.Dropped),
		TooLarge: sub(s.TooLarge, e.TooLarge), NotSafe: sub(s.NotSafe, e.NotSafe), FieldsOverflow: sub(s.FieldsOverflow, e.FieldsOverflow),
	}
	for k, f := range s.Fields {
		b := e.Fields[k]
		f.CanaryOnly, f.StableOnly, f.Both, f.Expected = sub(f.CanaryOnly, b.CanaryOnly), sub(f.StableOnly, b.StableOnly), sub(f.Both, b.Both), sub(f.Expected, b.Expected)
		if f.CanaryOnly+f.StableOnly+f.Both+f.Expected == 0 {
			continue
		}
		if f.CanaryOnly == 0 {
			f.Example = nil
		}
		if out.Fields == nil {
			out.Fields = map[string]FieldCounts{}
		}
		out.Fields[k] = f
	}
	return out
}

// Reset reports whether any counter went backwards since base (the data
// plane restarted).
func (s Snapshot) Reset(base Snapshot) bool {
	return s.Exchanges < base.Exchanges || s.Mirrored < base.Mirrored || s.Canary.Total.Requests < base.Canary.Total.Requests
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// maxFields bounds the fields a recorder keeps per service.
const maxFields = 512

// Recorder compares the answers of mirrored requests and keeps the
// counts. It is safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	opts     Options
	expected []expectedRule
	snap     Snapshot
	canary   map[string]*stats.Counts
	stable   map[string]*stats.Counts
	second   map[string]*stats.Counts
}

type expectedRule struct {
	route string
	path  Pattern
}

// NewRecorder returns a recorder that compares with o and accepts the
// expected changes (checked: a bad path is refused, naming its index).
func NewRecorder(o Options, expected []ExpectedChange) (*Recorder, error) {
	r := &Recorder{opts: o, canary: map[string]*stats.Counts{}, stable: map[string]*stats.Counts{}, second: map[string]*stats.Counts{}}
	rules, err := parseExpected(expected)
	if err != nil {
		return nil, err
	}
	r.expected = rules
	return r, nil
}

func parseExpected(expected []ExpectedChange) ([]expectedRule, error) {
	var rules []expectedRule
	for i, x := range expected {
		p, err := ParsePath(x.Path)
		if err != nil {
			return nil, &FieldError{Field: "expectedChanges[" + itoa(i) + "].path", Err: err}
		}
		rules = append(rules, expectedRule{route: x.Route, path: p})
	}
	return rules, nil
}

// SetOptions replaces the comparison's options and expected changes for
// the exchanges still to come (the rules were checked by Settings.Validate).
func (r *Recorder) SetOptions(o Options, expected []ExpectedChange) {
	rules, err := parseExpected(expected)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opts, r.expected = o, rules
}

// Counted notes a request queued (mirrored) or left out: dropped (queue
// full), tooLarge (body over the limit) or notSafe.
func (r *Recorder) Counted(mirrored, dropped, tooLarge, notSafe bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case mirrored:
		r.snap.Mirrored++
	case dropped:
		r.snap.Dropped++
	case tooLarge:
		r.snap.TooLarge++
	case notSafe:
		r.snap.NotSafe++
	}
}

// Record compares one exchange: primary and candidate are required,
// secondary (the second stable answer) may be nil when none came; then
// the fields are not compared, only status and latency counted.
func (r *Recorder) Record(route, traceID string, primary, secondary, candidate *Answer) {
	var dc, ds []Difference
	r.mu.Lock()
	o := r.opts
	r.mu.Unlock()
	if secondary != nil {
		dc = Compare(primary, candidate, o)
		ds = Compare(primary, secondary, o)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	observe(r.stable, route, primary)
	observe(r.canary, route, candidate)
	if secondary == nil {
		return
	}
	observe(r.second, route, secondary)
	r.snap.Exchanges++
	inStable := map[string]bool{}
	for _, d := range ds {
		inStable[d.Path] = true
	}
	inCanary := map[string]bool{}
	for _, d := range dc {
		inCanary[d.Path] = true
		switch {
		case r.isExpected(route, d.Path):
			r.bump(route, d.Path, func(f *FieldCounts) { f.Expected++ })
		case inStable[d.Path]:
			d := d
			r.bump(route, d.Path, func(f *FieldCounts) {
				f.Both++
				if f.Example == nil {
					f.Example = &Example{TraceID: traceID, Stable: d.A, Canary: d.B}
				}
			})
		default:
			d := d
			r.bump(route, d.Path, func(f *FieldCounts) {
				f.CanaryOnly++
				f.Example = &Example{TraceID: traceID, Stable: d.A, Canary: d.B}
			})
		}
	}
	for _, d := range ds {
		if !inCanary[d.Path] {
			r.bump(route, d.Path, func(f *FieldCounts) { f.StableOnly++ })
		}
	}
}

func observe(m map[string]*stats.Counts, route string, a *Answer) {
	c := m[route]
	if c == nil {
		c = &stats.Counts{}
		m[route] = c
	}
	c.Observe(a.Status, a.LatencyMs) // status 0, no answer: counted as failed
}

func (r *Recorder) isExpected(route, path string) bool {
	for _, x := range r.expected {
		if x.route != "" && x.route != route && !strings.HasSuffix(route, " "+x.route) {
			continue
		}
		if x.path.Match(path) {
			return true
		}
	}
	return false
}

func (r *Recorder) bump(route, path string, f func(*FieldCounts)) {
	if r.snap.Fields == nil {
		r.snap.Fields = map[string]FieldCounts{}
	}
	k := route + " " + path
	fc, ok := r.snap.Fields[k]
	if !ok {
		if len(r.snap.Fields) >= maxFields {
			r.snap.FieldsOverflow++
			return
		}
		fc = FieldCounts{Route: route, Path: path}
	}
	f(&fc)
	r.snap.Fields[k] = fc
}

// Snapshot returns the cumulative counts.
func (r *Recorder) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.snap
	out.Fields = make(map[string]FieldCounts, len(r.snap.Fields))
	for k, f := range r.snap.Fields {
		if f.Example != nil {
			e := *f.Example
			f.Example = &e
		}
		out.Fields[k] = f
	}
	out.Canary, out.Stable, out.Secondary = version(r.canary), version(r.stable), version(r.second)
	return out
}

func version(m map[string]*stats.Counts) stats.Version {
	v := stats.Version{Routes: map[string]stats.Counts{}}
	routes := make([]string, 0, len(m))
	for k := range m {
		routes = append(routes, k)
	}
	sort.Strings(routes)
	for _, k := range routes {
		c := m[k].Add(stats.Counts{})
		v.Routes[k] = c
		v.Total = v.Total.Add(c)
	}
	return v
}
