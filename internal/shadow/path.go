package shadow

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A Path names one field of an answer: "$.fee", "$.items[2].price" or
// "$['odd key']" for a field of the JSON body, "$" for a body that is not
// JSON (compared whole), "status" for the status code and
// "header:Content-Type" for a response header. Paths are written the way
// JSONPath writes them, so a person can copy one from a verdict into
// expectedChanges; there "[*]" matches every index and ".*" every key.

// Root names of the answer parts that are not in the body.
const (
	StatusPath   = "status"
	HeaderPrefix = "header:"
)

// segment is one step of a parsed path: a key, an index, or a wildcard.
type segment struct {
	key   string
	index int // -1: a key step
	wild  bool
}

// Pattern is a parsed path that may hold wildcards.
type Pattern struct {
	raw    string
	header string // for a header path, its canonical name
	status bool
	segs   []segment
}

// String is the path as written.
func (p Pattern) String() string { return p.raw }

var errPath = errors.New("invalid path")

// ParsePath reads a path: "status", "header:NAME", or a JSONPath of
// member and index steps from "$" ($.a.b, $['a b'], $[0], $.items[*].x,
// $.*). Filters, slices and recursive descent are refused.
func ParsePath(s string) (Pattern, error) {
	p := Pattern{raw: s}
	switch {
	case s == StatusPath:
		p.status = true
		return p, nil
	case strings.HasPrefix(s, HeaderPrefix):
		name := strings.TrimSpace(s[len(HeaderPrefix):])
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return Pattern{}, fmt.Errorf("%w %q: want header:NAME, e.g. header:X-Request-Id", errPath, s)
		}
		p.header = strings.ToLower(name)
		return p, nil
	case !strings.HasPrefix(s, "$"):
		return Pattern{}, fmt.Errorf("%w %q: a body path starts with $ (e.g. $.fee), or use status or header:NAME", errPath, s)
	}
	i := 1
	for i < len(s) {
		switch s[i] {
		case '.':
			i++
			if i < len(s) && s[i] == '.' {
				return Pattern{}, fmt.Errorf("%w %q: recursive descent (..) is not supported; name the field's full path", errPath, s)
			}
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			if j == i {
				return Pattern{}, fmt.Errorf("%w %q: empty member name at offset %d", errPath, s, i)
			}
			name := s[i:j]
			if name == "*" {
				p.segs = append(p.segs, segment{index: -1, wild: true})
			} else {
				p.segs = append(p.segs, segment{key: name, index: -1})
			}
			i = j
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return Pattern{}, fmt.Errorf("%w %q: unclosed [ at offset %d", errPath, s, i)
			}
			in := s[i+1 : i+end]
			switch {
			case in == "*":
				p.segs = append(p.segs, segment{index: -1, wild: true})
				i += end + 1
			case len(in) >= 2 && in[0] == '\'':
				// A quoted key may hold ']' itself: find the closing quote.
				k, n, err := unquote(s[i+1:])
				if err != nil {
					return Pattern{}, fmt.Errorf("%w %q: %v", errPath, s, err)
				}
				if i+1+n >= len(s) || s[i+1+n] != ']' {
					return Pattern{}, fmt.Errorf("%w %q: want ] after the quoted key at offset %d", errPath, s, i)
				}
				p.segs = append(p.segs, segment{key: k, index: -1})
				i += n + 2
			default:
				n, err := strconv.Atoi(in)
				if err != nil || n < 0 || strconv.Itoa(n) != in {
					return Pattern{}, fmt.Errorf("%w %q: [%s] is not an index, '*' or a quoted key", errPath, s, in)
				}
				p.segs = append(p.segs, segment{index: n})
				i += end + 1
			}
		default:
			return Pattern{}, fmt.Errorf("%w %q: unexpected %q at offset %d; want . or [", errPath, s, s[i], i)
		}
	}
	return p, nil
}

// unquote reads a single-quoted key at the start of s ('a\'b'), returning
// it and the bytes it took.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, errors.New("dangling backslash")
			}
			i++
			b.WriteByte(s[i])
		case '\'':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, errors.New("unclosed quote")
}

// Match reports whether the pattern names the concrete path.
func (p Pattern) Match(path string) bool {
	q, err := ParsePath(path)
	if err != nil {
		return false
	}
	switch {
	case p.status || q.status:
		return p.status && q.status
	case p.header != "" || q.header != "":
		return p.header == q.header
	}
	if len(p.segs) != len(q.segs) {
		return false
	}
	for i, s := range p.segs {
		t := q.segs[i]
		switch {
		case s.wild:
		case s.index >= 0:
			if t.index != s.index {
				return false
			}
		case t.index >= 0 || t.key != s.key:
			return false
		}
	}
	return true
}

// memberPath appends a key step, quoted when it is not a plain name.
func memberPath(parent, key string) string {
	plain := key != "" && key != "*"
	for _, r := range key {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return parent + "." + key
	}
	return parent + "['" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(key) + "']"
}

func indexPath(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }
