package gateway

import (
	"math/rand/v2"
	"sync"
)

// totalWeight is 100% in parts per million, the unit of every weight.
const totalWeight int64 = 1_000_000

// picker splits requests between backends exactly and unpredictably.
//
// Why not smooth weighted round-robin (nginx's algorithm, used before): it
// is exact but periodic (at 1%, requests 100, 200, 300... go to the
// canary), so a client whose requests follow a cycle (a health checker, a
// batch job, a synthetic monitor: every 50th request to one route) had
// that route's requests all sent to one version, and a broken route of the
// canary was never seen by the judges.
//
// The split is made of blocks: a block holds the smallest whole number of
// requests in which every weight is a whole number of requests (weights
// divided by their greatest common divisor: 100 requests at 1%, 10,000 at
// 0.01%, 2 at 50%), and the requests of a block are dealt without
// replacement in random order: each pick takes backend i with probability
// left_i/left. Every completed block has exactly its shares, yet which
// request of a block goes to the canary is uniform, so no request pattern
// can predict or steer it. Blocks are kept per route key: each route's
// requests are split exactly on their own, so a route that gets every
// 50th request still sees 1% of them on the canary; the split of all
// requests is the sum of the routes' and so exact up to one open block per
// route.
type picker struct {
	mu      sync.Mutex
	weights []int64
	total   int64
	block   []int64 // requests per backend in one block
	size    int64   // requests in one block
	routes  map[string]*pickBlock
	// rnd returns a uniform integer in [0, n); math/rand/v2's runtime
	// generator (ChaCha8, per thread, unpredictable) unless a test seeds
	// its own.
	rnd func(n uint64) uint64
}

// pickBlock is the open block of one route key.
type pickBlock struct {
	left []int64
	n    int64
}

// maxPickRoutes bounds the route keys with a block of their own; further
// keys share otherRoute's block.
const maxPickRoutes = maxRoutesPerVersion

func newPicker(weights []int64) *picker {
	p := &picker{weights: weights, routes: map[string]*pickBlock{}, rnd: rand.Uint64N}
	var g int64
	for _, w := range weights {
		p.total += w
		g = gcd(g, w)
	}
	if g > 0 {
		p.block = make([]int64, len(weights))
		for i, w := range weights {
			p.block[i] = w / g
			p.size += w / g
		}
	}
	return p
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// next returns the index of the backend for a request of route key
// route, or -1 when every weight is 0.
func (p *picker) next(route []byte) int {
	if p.size == 0 {
		return -1
	}
	p.mu.Lock()
	b := p.routes[string(route)] // no allocation: the compiler avoids it for lookups
	if b == nil {
		b = p.newBlock(route)
	}
	if b.n == 0 {
		copy(b.left, p.block)
		b.n = p.size
	}
	r := int64(p.rnd(uint64(b.n)))
	i := 0
	for ; i < len(b.left)-1; i++ {
		if r < b.left[i] {
			break
		}
		r -= b.left[i]
	}
	b.left[i]--
	b.n--
	p.mu.Unlock()
	return i
}

func (p *picker) newBlock(route []byte) *pickBlock {
	key := string(route)
	if len(p.routes) >= maxPickRoutes {
		key = otherRoute
		if b := p.routes[key]; b != nil {
			return b
		}
	}
	b := &pickBlock{left: make([]int64, len(p.block))}
	p.routes[key] = b
	return b
}

// inherit carries the open blocks over from the previous table when the
// split did not change (the same backends with the same weights), so
// frequent reconfiguration (endpoint churn, 100 weight updates a second)
// keeps every block exact. When the split changed, blocks start afresh:
// every request of a fresh block still goes to the canary with exactly its
// new share's probability.
func (p *picker) inherit(old *picker, oldIndex map[string]int, names []string) {
	if old == nil || len(old.weights) != len(p.weights) {
		return
	}
	for i, n := range names {
		if j, ok := oldIndex[n]; !ok || j != i || old.weights[j] != p.weights[i] {
			return
		}
	}
	old.mu.Lock()
	for k, b := range old.routes {
		p.routes[k] = &pickBlock{left: append([]int64(nil), b.left...), n: b.n}
	}
	old.mu.Unlock()
}

// sticky maps a key onto the cumulative weight ranges, in the backends'
// order (sorted by name). When the last backend (usually the canary, its
// name sorting after the stable one) grows, only keys moving into its
// range change version, so a user who saw the canary keeps seeing it.
// A client chooses its key, so it chooses its version: sticky routing is
// honoured only for trusted clients (pin.go) and counted apart from the
// judged split.
func (p *picker) sticky(key []byte) int {
	if p.total == 0 {
		return -1
	}
	pos := int64(fnv64a(key) % uint64(p.total))
	var acc int64
	for i, w := range p.weights {
		acc += w
		if pos < acc {
			return i
		}
	}
	return len(p.weights) - 1
}

// fnv64a is FNV-1a, inlined to keep the hot path free of allocations.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
