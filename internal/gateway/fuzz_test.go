package gateway

import (
	"bytes"
	"testing"
)

// FuzzTraceparent: whatever a client sends, the upstream gets a well-formed
// traceparent, and a valid one keeps its trace id.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
		"", "garbage", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var tc traceContext
		tc.fromTraceparent(in)
		out := tc.appendTraceparent(nil)
		if len(out) != 55 || !isLowerHex(out[3:35]) || !isLowerHex(out[36:52]) || allZero(out[3:35]) {
			t.Fatalf("%q produced malformed traceparent %q", in, out)
		}
		if len(in) == 55 && bytes.Equal(in[:3], []byte("00-")) && isLowerHex(in[3:35]) && !allZero(in[3:35]) &&
			in[35] == '-' && isLowerHex(in[36:52]) && in[52] == '-' && isLowerHex(in[53:55]) && !bytes.Equal(in[3:35], out[3:35]) {
			t.Fatalf("valid %q lost its trace id: %q", in, out)
		}
	})
}

// FuzzMatch: any host and path either match nothing or a configured
// service, never panic.
func FuzzMatch(f *testing.F) {
	g := New(Options{Log: quietLog()})
	g.SetEndpoints("orders", "v1", []string{"127.0.0.1:1"})
	if err := g.SetRoutes([]Route{{Host: "api.example", PathPrefix: "/pay", Service: "payments"}}); err != nil {
		f.Fatal(err)
	}
	t := g.table.Load()
	for _, s := range [][2]string{{"orders.localhost", "/a/b"}, {"api.example:80", "/pay/x"}, {"[::1]:80", "/"}, {":", ""}, {".localhost", "//"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(ft *testing.T, host, path string) {
		s, route := t.match([]byte(host), []byte(path), g.hostSuffix)
		if s != nil && s.name != "orders" && s.name != "payments" {
			ft.Fatalf("%q %q matched unknown service %q", host, path, s.name)
		}
		if s != nil && len(route) == 0 {
			ft.Fatalf("%q %q matched %s with an empty route key", host, path, s.name)
		}
	})
}

func FuzzCallerOf(f *testing.F) {
	for _, s := range []string{"caller.service=web", "a=b, caller.service = api ;p=1", ",,,=", "caller.service="} {
		f.Add([]byte(s), []byte("hdr"))
	}
	f.Fuzz(func(t *testing.T, baggage, header []byte) {
		if c := callerOf(baggage, header); len(c) > maxFieldLen {
			t.Fatalf("caller of %d bytes exceeds the bound", len(c))
		}
	})
}
