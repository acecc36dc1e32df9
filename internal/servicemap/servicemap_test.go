package servicemap

import "testing"

func TestQuantileNearestRank(t *testing.T) {
	v := make([]float64, 0, 100)
	for i := 100; i >= 1; i-- {
		v = append(v, float64(i))
	}
	for _, c := range []struct {
		q, want float64
	}{{0.99, 99}, {0.5, 50}, {1, 100}, {0, 1}} {
		if got := quantile(append([]float64(nil), v...), c.q); got != c.want {
			t.Errorf("quantile(1..100, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if quantile(nil, 0.99) != 0 || quantile([]float64{7}, 0.99) != 7 {
		t.Error("empty or single sample")
	}
}
