package spelling

import "testing"

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"orders", "orders", 0},
		{"ordres", "orders", 2}, // a swap is two edits
		{"ordrs", "orders", 1},
		{"statsu", "status", 2},
		{"kitten", "sitting", 3},
		{"서울", "서울시", 1}, // runes, not bytes
		{"busan", "seoul", 5},
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := Distance(c.b, c.a); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", c.b, c.a, got, c.want)
		}
	}
}
