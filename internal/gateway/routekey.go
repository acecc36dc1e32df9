package gateway

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Route keys: the statistics, the access records and the per-route split
// count requests by route template ("GET /v1/orders/{id}"), not by path,
// so /api/items and /api/orders are two routes and /v1/orders/1 and
// /v1/orders/2 are one. The template comes, in this order, from
//
//  1. the service's answer: kit reports the pattern its mux matched in
//     the X-Pave-Route response header, which the gateway reads and strips
//     (it counts the request under it, and learns the pattern so later
//     requests are split by it before they are answered);
//  2. the route list of the service (the routes of its .pave.yaml, given
//     to the gateway with SetServiceRoutes), matched against the request;
//  3. the explicit route's path prefix, else the first path segment.
//
// A version keeps at most maxRoutesPerVersion route keys; the rest are
// counted under "other".

// hdrRoute is the response header kit reports the matched template in.
var hdrRoute = []byte("X-Pave-Route")

// maxRouteKey bounds a reported template; longer or non-printable values
// are ignored (the request keeps its request-side key).
const maxRouteKey = 200

// routePattern is one template: an optional method and a path of
// segments, net/http.ServeMux's syntax: "{name}" matches one segment,
// "{name...}" or a trailing "/" the subtree below, "{$}" only the path
// ending in that slash. A pattern with a host is not supported.
type routePattern struct {
	key    []byte // the template as reported: "GET /v1/orders/{id}"
	method string // "" for any method; GET also matches HEAD
	segs   []string
	wild   []bool // segs[i] is a one-segment wildcard
	end    patternEnd
}

type patternEnd uint8

const (
	endExact   patternEnd = iota // no further segment, no trailing slash
	endSlash                     // "{$}": a trailing slash and nothing after
	endSubtree                   // a trailing slash and anything after
)

func parseRoutePattern(s string) (routePattern, error) {
	p := routePattern{key: []byte(s)}
	path := s
	if i := strings.IndexByte(s, ' '); i >= 0 {
		p.method, path = s[:i], strings.TrimLeft(s[i+1:], " ")
		for _, c := range p.method {
			if c < 'A' || c > 'Z' {
				return routePattern{}, fmt.Errorf("route %q: method %q is not an HTTP method (want e.g. GET /v1/orders/{id})", s, p.method)
			}
		}
	}
	if !strings.HasPrefix(path, "/") {
		return routePattern{}, fmt.Errorf("route %q: the path must start with '/' (want e.g. GET /v1/orders/{id}; host patterns are not supported)", s)
	}
	if len(s) > maxRouteKey {
		return routePattern{}, fmt.Errorf("route %q: longer than %d characters", s, maxRouteKey)
	}
	if path == "/" {
		p.end = endSubtree
		return p, nil
	}
	rest := path[1:]
	for rest != "" {
		seg, after, more := strings.Cut(rest, "/")
		rest = after
		last := !more || rest == ""
		switch {
		case seg == "{$}":
			if more {
				return routePattern{}, fmt.Errorf("route %q: {$} must end the pattern", s)
			}
			p.end = endSlash
			return p, nil
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "...}"):
			if more {
				return routePattern{}, fmt.Errorf("route %q: a {name...} wildcard must end the pattern", s)
			}
			p.end = endSubtree
			return p, nil
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") && len(seg) > 2:
			p.segs = append(p.segs, "")
			p.wild = append(p.wild, true)
		case seg == "" || strings.ContainsAny(seg, "{}"):
			return routePattern{}, fmt.Errorf("route %q: segment %q is neither text nor a {name} wildcard", s, seg)
		default:
			p.segs = append(p.segs, seg)
			p.wild = append(p.wild, false)
		}
		if last && more {
			p.end = endSubtree // a trailing slash
		}
	}
	return p, nil
}

// match reports whether the request matches, without allocating.
func (p *routePattern) match(method, path []byte) bool {
	if p.method != "" && string(method) != p.method && !(p.method == "GET" && string(method) == "HEAD") {
		return false
	}
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	pos := 1 // start of the next segment; len(path)+1 once none is left
	for i, seg := range p.segs {
		if pos > len(path) {
			return false
		}
		end := bytes.IndexByte(path[pos:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += pos
		}
		s := path[pos:end]
		if p.wild[i] {
			if len(s) == 0 {
				return false
			}
		} else if string(s) != seg {
			return false
		}
		pos = end + 1
	}
	switch p.end {
	case endExact:
		return pos == len(path)+1
	case endSlash:
		return pos == len(path)
	}
	return pos <= len(path)
}

// specificity orders patterns: more literal segments first, then more
// segments, exact before subtree, a method before none.
func (p *routePattern) specificity() (int, int, int, int) {
	lit := 0
	for _, w := range p.wild {
		if !w {
			lit++
		}
	}
	ex, m := 0, 0
	if p.end != endSubtree {
		ex = 1
	}
	if p.method != "" {
		m = 1
	}
	return lit, len(p.segs), ex, m
}

func sortPatterns(ps []routePattern) {
	sort.SliceStable(ps, func(i, j int) bool {
		a1, a2, a3, a4 := ps[i].specificity()
		b1, b2, b3, b4 := ps[j].specificity()
		if a1 != b1 {
			return a1 > b1
		}
		if a2 != b2 {
			return a2 > b2
		}
		if a3 != b3 {
			return a3 > b3
		}
		return a4 > b4
	})
}

// routeBook is one service's route templates: configured and learned from
// kit's answers. It outlives route tables, like the statistics.
type routeBook struct {
	patterns atomic.Pointer[[]routePattern] // configured then learned, most specific first

	mu         sync.Mutex
	configured []routePattern
	learned    []routePattern
	seen       map[string]bool // reported keys already considered
}

func newRouteBook() *routeBook {
	b := &routeBook{seen: map[string]bool{}}
	b.patterns.Store(&[]routePattern{})
	return b
}

// key returns the template matching the request, or nil.
func (b *routeBook) key(method, path []byte) []byte {
	ps := *b.patterns.Load()
	for i := range ps {
		if ps[i].match(method, path) {
			return ps[i].key
		}
	}
	return nil
}

func (b *routeBook) publishLocked() {
	all := make([]routePattern, 0, len(b.configured)+len(b.learned))
	all = append(all, b.configured...)
	all = append(all, b.learned...)
	sortPatterns(all)
	b.patterns.Store(&all)
}

func (b *routeBook) configure(ps []routePattern) {
	b.mu.Lock()
	b.configured = ps
	b.publishLocked()
	b.mu.Unlock()
}

// learn adds a template a service reported, once; bounded, and ignoring
// what does not parse.
func (b *routeBook) learn(key []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[string(key)] || len(b.seen) >= 4*maxRoutesPerVersion {
		return
	}
	b.seen[string(key)] = true
	if len(b.configured)+len(b.learned) >= maxRoutesPerVersion {
		return
	}
	p, err := parseRoutePattern(string(key))
	if err != nil {
		return
	}
	b.learned = append(b.learned, p)
	b.publishLocked()
}

// validRouteKey reports whether a reported template may be used as a key.
func validRouteKey(v []byte) bool {
	if len(v) == 0 || len(v) > maxRouteKey {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// book returns the route book of a service, creating it.
func (g *Gateway) book(service string) *routeBook {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	b := g.books[service]
	if b == nil {
		b = newRouteBook()
		g.books[service] = b
	}
	return b
}

// SetServiceRoutes sets the route templates of a service that does not
// report its own (a service without kit): its .pave.yaml's routes, e.g.
// "GET /v1/orders/{id}", "POST /v1/pay", "/static/". Requests matching
// none are counted by their first path segment. Invalid patterns are
// refused, naming the first, and the previous list stays.
func (g *Gateway) SetServiceRoutes(service string, patterns []string) error {
	if err := validName("service", service); err != nil {
		return err
	}
	ps, err := parseRoutePatterns(patterns)
	if err != nil {
		return fmt.Errorf("%w: service %s: %v", ErrInvalid, service, err)
	}
	g.book(service).configure(ps)
	return nil
}

// CheckRoutes reports whether SetServiceRoutes would accept patterns, so
// a deployment with a bad route list is refused before anything runs.
func (g *Gateway) CheckRoutes(patterns []string) error {
	if _, err := parseRoutePatterns(patterns); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func parseRoutePatterns(patterns []string) ([]routePattern, error) {
	if len(patterns) > maxRoutesPerVersion {
		return nil, fmt.Errorf("%d routes; at most %d are kept apart, list the ones worth judging", len(patterns), maxRoutesPerVersion)
	}
	ps := make([]routePattern, 0, len(patterns))
	seen := make(map[string]int, len(patterns))
	for i, s := range patterns {
		p, err := parseRoutePattern(s)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: %v", i, err)
		}
		if j, dup := seen[s]; dup {
			return nil, fmt.Errorf("routes[%d]: %q repeats routes[%d]", i, s, j)
		}
		seen[s] = i
		ps = append(ps, p)
	}
	return ps, nil
}

// requestRoute is the request-side route key: a template of the service,
// else the matched explicit route's prefix or the first path segment.
func (s *service) requestRoute(method, path, fallback []byte) []byte {
	if s.book != nil {
		if k := s.book.key(method, path); k != nil {
			return k
		}
	}
	return fallback
}

// reportedRoute takes the template a service reported: the key its
// request is counted under, learned for the split of later requests.
func (s *service) reportedRoute(reported, requestKey []byte) []byte {
	if !validRouteKey(reported) {
		return requestKey
	}
	if s.book != nil && !bytes.Equal(reported, requestKey) {
		s.book.learn(reported)
	}
	return reported
}
