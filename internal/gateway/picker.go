package gateway

import "sync"

// totalWeight is 100% in parts per million, the unit of every weight.
const totalWeight int64 = 1_000_000

// picker splits requests between backends exactly: smooth weighted
// round-robin (nginx's algorithm). Each pick adds every weight to its
// backend's credit and takes the backend with the most credit, which then
// pays the total. The credit of a backend is therefore (picks so far ×
// weight) − (total × times it was picked), so its count never strays from
// its share by more than one request: 1% is exactly 1 in 100, 0.01% is 1
// in 10,000, with no randomness.
type picker struct {
	mu      sync.Mutex
	weights []int64
	credit  []int64
	total   int64
}

func newPicker(weights []int64) *picker {
	p := &picker{weights: weights, credit: make([]int64, len(weights))}
	for _, w := range weights {
		p.total += w
	}
	return p
}

// next returns the index of the chosen backend, or -1 when every weight is 0.
func (p *picker) next() int {
	if p.total == 0 {
		return -1
	}
	p.mu.Lock()
	best := -1
	for i, w := range p.weights {
		if w == 0 {
			continue
		}
		p.credit[i] += w
		if best < 0 || p.credit[i] > p.credit[best] {
			best = i
		}
	}
	p.credit[best] -= p.total
	p.mu.Unlock()
	return best
}

// inherit carries the credit of backends that stay over from the previous
// table, so frequent weight changes (100 a second during a fast canary)
// do not restart the sequence and starve a 1% version. Credits are then
// re-centred to sum to zero, the invariant of smooth round-robin.
func (p *picker) inherit(old *picker, oldIndex map[string]int, names []string) {
	if old == nil {
		return
	}
	old.mu.Lock()
	var sum int64
	for i, n := range names {
		if j, ok := oldIndex[n]; ok && p.weights[i] > 0 {
			c := old.credit[j]
			// Bound the carried credit to one round so a version that lost
			// most of its weight does not get a burst.
			if c > p.total {
				c = p.total
			} else if c < -p.total {
				c = -p.total
			}
			p.credit[i] = c
			sum += c
		}
	}
	old.mu.Unlock()
	var active int64
	for _, w := range p.weights {
		if w > 0 {
			active++
		}
	}
	if active == 0 {
		return
	}
	shift := sum / active
	for i, w := range p.weights {
		if w > 0 {
			p.credit[i] -= shift
		}
	}
}

// sticky maps a key onto the cumulative weight ranges, in the backends'
// order (sorted by name). When the last backend (usually the canary, its
// name sorting after the stable one) grows, only keys moving into its
// range change version, so a user who saw the canary keeps seeing it.
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
