package gateway

import (
	"fmt"
	"testing"
)

// TestPickerExact checks the split over 100,000 requests: after every
// request, each version's count is within one request of its share.
func TestPickerExact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int64
	}{
		{"0.01%", []int64{999_900, 100}},
		{"1%", []int64{990_000, 10_000}},
		{"50%", []int64{500_000, 500_000}},
		{"three versions", []int64{989_900, 10_000, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPicker(tc.weights)
			counts := make([]int64, len(tc.weights))
			const n = 100_000
			for k := int64(1); k <= n; k++ {
				i := p.next()
				counts[i]++
				for j, w := range tc.weights {
					// Share after k requests is k*w/total; allow one request.
					diff := counts[j]*totalWeight - k*w
					if diff <= -totalWeight || diff >= totalWeight {
						t.Fatalf("after %d requests version %d has %d, share %.4f", k, j, counts[j], float64(k*w)/float64(totalWeight))
					}
				}
			}
			for j, w := range tc.weights {
				if want := n * w / totalWeight; counts[j] != want {
					t.Errorf("version %d got %d of %d requests, want exactly %d", j, counts[j], n, want)
				}
			}
		})
	}
}

func TestPickerZeroWeights(t *testing.T) {
	if i := newPicker([]int64{0, 0}).next(); i != -1 {
		t.Fatalf("all-zero picker chose %d, want -1", i)
	}
	p := newPicker([]int64{0, 1_000_000})
	for range 10 {
		if i := p.next(); i != 1 {
			t.Fatalf("picked %d, a version with weight 0", i)
		}
	}
}

// TestPickerInheritKeepsCanaryFlowing changes weights every 10 requests
// (far more often than a canary would) and checks that a 1% version still
// gets its 1%: credits carry over instead of restarting the sequence.
func TestPickerInheritKeepsCanaryFlowing(t *testing.T) {
	names := []string{"v1", "v2"}
	idx := map[string]int{"v1": 0, "v2": 1}
	p := newPicker([]int64{990_000, 10_000})
	var canary int
	for round := range 1000 {
		for range 10 {
			if p.next() == 1 {
				canary++
			}
		}
		// Alternate between two encodings of the same 1%.
		np := newPicker([]int64{990_000, 10_000})
		if round%2 == 0 {
			np = newPicker([]int64{990_000, 10_000})
		}
		np.inherit(p, idx, names)
		p = np
	}
	if canary < 99 || canary > 101 {
		t.Fatalf("1%% version got %d of 10,000 requests under constant reconfiguration, want 100±1", canary)
	}
}

// TestStickyGrowing checks that a user on the canary stays there while its
// weight grows, and that the sticky split follows the weights.
func TestStickyGrowing(t *testing.T) {
	const users = 20_000
	onCanary := map[int]bool{}
	for _, canaryPPM := range []int64{10_000, 50_000, 200_000, 500_000} {
		p := newPicker([]int64{totalWeight - canaryPPM, canaryPPM})
		n := 0
		for u := range users {
			key := []byte(fmt.Sprintf("user-%d", u))
			if p.sticky(key) != p.sticky(key) {
				t.Fatal("sticky choice is not stable")
			}
			if p.sticky(key) == 1 {
				n++
				onCanary[u] = true
			} else if onCanary[u] {
				t.Fatalf("user %d left the canary when it grew to %d ppm", u, canaryPPM)
			}
		}
		share := float64(n) / users
		want := float64(canaryPPM) / float64(totalWeight)
		if share < want*0.8-0.002 || share > want*1.2+0.002 {
			t.Errorf("at %d ppm, %.4f of users are on the canary, want about %.4f", canaryPPM, share, want)
		}
	}
}

func BenchmarkPicker(b *testing.B) {
	p := newPicker([]int64{990_000, 10_000})
	for b.Loop() {
		p.next()
	}
}
