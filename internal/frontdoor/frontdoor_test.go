package frontdoor

import (
	"net/http/httptest"
	"testing"
)

func TestHostsAllowLoopbackAndTheGivenNamesOnly(t *testing.T) {
	h := NewHosts([]string{" Pave.Internal ", "[2001:db8::1]"})
	for host, want := range map[string]bool{
		"localhost:8080": true, "127.0.0.1": true, "[::1]:80": true,
		"pave.internal:443": true, "PAVE.INTERNAL": true, "[2001:db8::1]:8080": true,
		"evil.example:8080": false, "": false, "127.0.0.2:80": false, "pave.internal.evil.example": false,
	} {
		if got := h.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
	if any := NewHosts([]string{"*"}); !any.Allows("evil.example") {
		t.Error(`"*" should allow any Host`)
	}
}

func TestSameOriginRefusesOtherSitesOnly(t *testing.T) {
	for _, c := range []struct {
		origin, site string
		ok           bool
	}{
		{"", "", true},
		{"", "same-origin", true},
		{"", "none", true},
		{"http://localhost:8080", "", true},
		{"", "cross-site", false},
		{"", "same-site", false},
		{"http://evil.example", "", false},
		{"http://localhost:9999", "", false},
		{"null", "", false},
	} {
		r := httptest.NewRequest("POST", "http://localhost:8080/api/v1/x", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if err := SameOrigin(r); (err == nil) != c.ok {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: got %v, want ok=%v", c.origin, c.site, err, c.ok)
		}
	}
}
