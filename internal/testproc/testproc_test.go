package testproc

import "testing"

func TestFreeAddrNeverHandsOutAPortTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}

func TestBetween(t *testing.T) {
	for _, c := range []struct{ s, from, to, want string }{
		{"token: abc\\n", "token: ", "\\n", "abc"},
		{"no marker", "token: ", "\\n", ""},
		{"token: tail", "token: ", "\\n", "tail"},
	} {
		if got := Between(c.s, c.from, c.to); got != c.want {
			t.Errorf("Between(%q, %q, %q) = %q, want %q", c.s, c.from, c.to, got, c.want)
		}
	}
}
