package gateway

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// seeded returns a picker whose randomness is fixed by seed, so tests do
// not flake.
func seeded(weights []int64, seed uint64) *picker {
	p := newPicker(weights)
	p.rnd = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Uint64N
	return p
}

// TestPickerExact checks the split over 100,000 requests: at the end of
// every block each version has exactly its share, and in between it is
// never more than one block's share away from it.
func TestPickerExact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int64
		block   int64
	}{
		{"0.01%", []int64{999_900, 100}, 10_000},
		{"1%", []int64{990_000, 10_000}, 100},
		{"50%", []int64{500_000, 500_000}, 2},
		{"three versions", []int64{989_900, 10_000, 100}, 10_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := seeded(tc.weights, 1)
			if p.size != tc.block {
				t.Fatalf("block of %d requests, want %d", p.size, tc.block)
			}
			counts := make([]int64, len(tc.weights))
			const n = 100_000
			for k := int64(1); k <= n; k++ {
				counts[p.next(nil)]++
				for j, w := range tc.weights {
					diff := counts[j]*totalWeight - k*w
					if k%tc.block == 0 && diff != 0 {
						t.Fatalf("after %d requests (a whole number of blocks) version %d has %d, want exactly %d", k, j, counts[j], k*w/totalWeight)
					}
					if bound := tc.block * w; diff <= -bound || diff >= bound {
						t.Fatalf("after %d requests version %d has %d, more than a block from its share %.4f", k, j, counts[j], float64(k*w)/float64(totalWeight))
					}
				}
			}
		})
	}
}

// TestPickerUnpredictable checks that the canary's slot moves within the
// block: at 1% over 1,000 blocks it lands on many different positions,
// not always the same one (smooth round-robin always chose the 100th).
func TestPickerUnpredictable(t *testing.T) {
	p := seeded([]int64{990_000, 10_000}, 2)
	positions := map[int]int{}
	for blk := range 1000 {
		for i := range 100 {
			if p.next(nil) == 1 {
				positions[i]++
			}
		}
		_ = blk
	}
	if len(positions) < 90 {
		t.Fatalf("the canary's slot took only %d distinct positions of 100 in 1,000 blocks", len(positions))
	}
	for pos, n := range positions {
		if n > 30 { // expected 10 per position; 30 is far beyond chance
			t.Fatalf("position %d got the canary in %d of 1,000 blocks", pos, n)
		}
	}
}

// TestSplitResistsCyclicClients drives request patterns that follow a
// fixed cycle (a health checker, a batch job, a synthetic monitor: the
// client that made smooth round-robin send a whole route to one version)
// through 1%, 10% and 50%, and checks every route's canary share: within
// binomial bounds (5 standard deviations, fixed seeds), and exact per
// route over its completed blocks.
func TestSplitResistsCyclicClients(t *testing.T) {
	for _, canary := range []int64{10_000, 100_000, 500_000} {
		for _, period := range []int{2, 3, 50, 100} {
			for _, layout := range []string{"one-hot", "every-residue", "one-route"} {
				if layout == "every-residue" && period > 50 {
					continue // more routes than are kept apart
				}
				name := fmt.Sprintf("%.0f%%/period %d/%s", float64(canary)/1e4, period, layout)
				t.Run(name, func(t *testing.T) {
					p := seeded([]int64{totalWeight - canary, canary}, uint64(canary)+uint64(period))
					const n = 200_000
					reqs := map[string]int64{}
					onCanary := map[string]int64{}
					// one-route: the gateway cannot tell the cycle's
					// requests apart (one route key); only the random
					// slot within each block keeps every position of the
					// cycle off any one version.
					hotOnCanary, hot := int64(0), int64(0)
					for i := range n {
						route := "rest"
						switch {
						case layout == "every-residue":
							route = fmt.Sprintf("r%d", i%period)
						case layout == "one-route":
						case i%period == 0:
							route = "hot"
						}
						reqs[route]++
						got := p.next([]byte(route))
						if got == 1 {
							onCanary[route]++
						}
						if layout == "one-route" && i%period == 0 {
							hot++
							if got == 1 {
								hotOnCanary++
							}
						}
					}
					if layout == "one-route" {
						w := float64(canary) / float64(totalWeight)
						if want, sd := float64(hot)*w, math.Sqrt(float64(hot)*w*(1-w)); math.Abs(float64(hotOnCanary)-want) > 5*sd+1 {
							t.Errorf("every %dth request: %d of %d on the canary, want %.0f ± %.0f", period, hotOnCanary, hot, want, 5*sd)
						}
					}
					w := float64(canary) / float64(totalWeight)
					blockCanary := p.block[1]
					for route, m := range reqs {
						got := onCanary[route]
						want := float64(m) * w
						if sd := math.Sqrt(float64(m) * w * (1 - w)); math.Abs(float64(got)-want) > 5*sd+1 {
							t.Errorf("route %s: %d of %d requests on the canary, want %.0f ± %.0f", route, got, m, want, 5*sd)
						}
						full := m / p.size
						if got < full*blockCanary || got > full*blockCanary+blockCanary {
							t.Errorf("route %s: %d on the canary after %d whole blocks of %d: not exact per route", route, got, full, blockCanary)
						}
					}
				})
			}
		}
	}
}

func TestPickerZeroWeights(t *testing.T) {
	if i := newPicker([]int64{0, 0}).next(nil); i != -1 {
		t.Fatalf("all-zero picker chose %d, want -1", i)
	}
	p := newPicker([]int64{0, 1_000_000})
	for range 10 {
		if i := p.next(nil); i != 1 {
			t.Fatalf("picked %d, a version with weight 0", i)
		}
	}
}

// TestPickerInheritKeepsCanaryFlowing rebuilds the split every 10 requests
// (as endpoint churn or repeated weight updates do, far more often than a
// canary would) and checks that a 1% version still gets exactly its 1%:
// open blocks carry over instead of restarting.
func TestPickerInheritKeepsCanaryFlowing(t *testing.T) {
	names := []string{"v1", "v2"}
	idx := map[string]int{"v1": 0, "v2": 1}
	p := newPicker([]int64{990_000, 10_000})
	var canary int
	for round := range 1000 {
		for range 10 {
			if p.next(nil) == 1 {
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
	route := []byte("/orders")
	for b.Loop() {
		p.next(route)
	}
}
