package shadow

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Answer is what one version answered to a mirrored request, reduced to
// what the comparison needs.
type Answer struct {
	// Status is the status code; 0 when no answer came (Err says why).
	Status    int
	LatencyMs float64
	Err       string
	Header    http.Header
	// Body is the answer's body (the mirror keeps bodies up to its size
	// limit; a longer one is compared by its digest only).
	Body      []byte
	Truncated bool
	Digest    [sha256.Size]byte
}

// Difference is one field that differs between two answers.
type Difference struct {
	Path string `json:"path"`
	// A and B are the two values, as compact JSON (or text), cut to
	// valueLimit bytes.
	A string `json:"a"`
	B string `json:"b"`
}

const valueLimit = 200

// Options say what the comparison leaves out.
type Options struct {
	// IgnoreHeaders are response headers never compared (canonical or
	// not). Date, Content-Length and the hop-by-hop headers are never
	// compared anyway.
	IgnoreHeaders []string
}

// alwaysIgnored headers differ between any two answers or say nothing
// about the answer's content.
var alwaysIgnored = map[string]bool{
	"date": true, "content-length": true, "connection": true, "keep-alive": true, "transfer-encoding": true,
	"x-pave-version": true, "x-pave-route": true, "x-pave-cluster": true, "traceparent": true, "tracestate": true,
}

// maxDiffs bounds the differences reported for one pair of answers: a
// body that differs everywhere (another document) is still one finding
// per field up to here.
const maxDiffs = 64

// Compare lists the fields in which a and b differ: the status, the
// response headers not ignored, and the body, field by field when both
// bodies are JSON, else whole ("$"). Answers of different statuses (or
// no answer) differ in their status only.
func Compare(a, b *Answer, o Options) []Difference {
	var out []Difference
	if a.Status != b.Status {
		// Another status is another kind of answer: its body says
		// nothing more.
		return append(out, Difference{Path: StatusPath, A: statusText(a), B: statusText(b)})
	}
	if a.Status == 0 {
		return out
	}
	out = compareHeaders(out, a.Header, b.Header, o)
	if a.Digest == b.Digest && !a.Truncated && !b.Truncated && bytes.Equal(a.Body, b.Body) {
		return out
	}
	if a.Truncated || b.Truncated {
		if a.Digest != b.Digest {
			out = append(out, Difference{Path: "$", A: fmt.Sprintf("sha256:%x", a.Digest[:6]), B: fmt.Sprintf("sha256:%x", b.Digest[:6])})
		}
		return out
	}
	va, okA := parseJSON(a.Body)
	vb, okB := parseJSON(b.Body)
	if !okA || !okB {
		if !bytes.Equal(a.Body, b.Body) {
			out = append(out, Difference{Path: "$", A: cut(string(a.Body)), B: cut(string(b.Body))})
		}
		return out
	}
	return diffValues(out, "$", va, vb)
}

func statusText(a *Answer) string {
	if a.Status == 0 {
		return "no answer: " + cut(a.Err)
	}
	return fmt.Sprint(a.Status)
}

func compareHeaders(out []Difference, a, b http.Header, o Options) []Difference {
	ignored := map[string]bool{}
	for _, h := range o.IgnoreHeaders {
		ignored[strings.ToLower(h)] = true
	}
	names := map[string]string{}
	for k := range a {
		names[strings.ToLower(k)] = http.CanonicalHeaderKey(k)
	}
	for k := range b {
		names[strings.ToLower(k)] = http.CanonicalHeaderKey(k)
	}
	keys := make([]string, 0, len(names))
	for k := range names {
		if !alwaysIgnored[k] && !ignored[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		x, y := strings.Join(a.Values(k), ", "), strings.Join(b.Values(k), ", ")
		if x != y {
			out = append(out, Difference{Path: HeaderPrefix + names[k], A: cut(x), B: cut(y)})
		}
	}
	return out
}

func parseJSON(b []byte) (any, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
		return nil, false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // 10.10 and 10.1 differ as text: amounts are compared as written
	var v any
	if err := d.Decode(&v); err != nil || d.More() {
		return nil, false
	}
	return v, true
}

// diffValues walks two JSON values in step: objects key by key, arrays
// index by index; a missing key or index differs from any value.
func diffValues(out []Difference, path string, a, b any) []Difference {
	if len(out) >= maxDiffs {
		return out
	}
	switch x := a.(type) {
	case map[string]any:
		if y, ok := b.(map[string]any); ok {
			keys := make([]string, 0, len(x)+len(y))
			for k := range x {
				keys = append(keys, k)
			}
			for k := range y {
				if _, seen := x[k]; !seen {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				va, inA := x[k]
				vb, inB := y[k]
				p := memberPath(path, k)
				switch {
				case inA && inB:
					out = diffValues(out, p, va, vb)
				case len(out) < maxDiffs:
					out = append(out, Difference{Path: p, A: show(va, inA), B: show(vb, inB)})
				}
			}
			return out
		}
	case []any:
		if y, ok := b.([]any); ok {
			for i := range max(len(x), len(y)) {
				p := indexPath(path, i)
				switch {
				case i < len(x) && i < len(y):
					out = diffValues(out, p, x[i], y[i])
				case len(out) < maxDiffs:
					out = append(out, Difference{Path: p, A: showAt(x, i), B: showAt(y, i)})
				}
			}
			return out
		}
	default:
		if fmt.Sprintf("%T", a) == fmt.Sprintf("%T", b) && show(a, true) == show(b, true) {
			return out
		}
	}
	return append(out, Difference{Path: path, A: show(a, true), B: show(b, true)})
}

func showAt(v []any, i int) string {
	if i < len(v) {
		return show(v[i], true)
	}
	return show(nil, false)
}

// show renders a value as compact JSON; an absent one as "(absent)".
func show(v any, present bool) string {
	if !present {
		return "(absent)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return cut(fmt.Sprint(v))
	}
	return cut(string(b))
}

func cut(s string) string {
	if len(s) <= valueLimit {
		return s
	}
	return s[:valueLimit] + "…"
}
