package kit

import (
	"strings"
	"testing"
)

func TestListenAddressFromEnv(t *testing.T) {
	cases := []struct{ port, host, want, problem string }{
		{"", "", ":8080", ""},
		{"9000", "", ":9000", ""},
		{"9000", "127.0.0.1", "127.0.0.1:9000", ""},
		{"9000", "::1", "[::1]:9000", ""},
		{"", "127.0.0.1", "127.0.0.1:8080", ""},
		{"9000", "not a host", ":9000", "HOST"},
		{"http", "", ":8080", "PORT"},
	}
	for _, c := range cases {
		t.Run(c.port+"/"+c.host, func(t *testing.T) {
			t.Setenv("PORT", c.port)
			t.Setenv("HOST", c.host)
			cfg := FromEnv("svc")
			if cfg.Addr != c.want {
				t.Errorf("Addr = %q, want %q", cfg.Addr, c.want)
			}
			got := strings.Join(cfg.problems, "; ")
			if c.problem == "" && got != "" || c.problem != "" && !strings.Contains(got, c.problem) {
				t.Errorf("problems %q, want mention of %q", got, c.problem)
			}
		})
	}
}
