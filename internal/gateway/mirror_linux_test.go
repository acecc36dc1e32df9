package gateway

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/shadow"
)

// TestLoopFallbackAndH2CMirrorAlike (a TestLoop* test: it runs each serving
// path itself, so the NoEventLoop re-run leaves it out): users get stable's
// answers only; GET and the safe POST route are mirrored, the unsafe POST
// is not, a body over the limit is not; the noise fields (timestamp, id)
// differ between the two stables and are never counted against the
// canary, the changed amount is, with an example trace id. The body cases
// are the same on every path (h2c streams bodies, and keeps a copy on the
// way): bodies within the limit, of known or unknown length, reach the
// canary byte for byte; bodies over it, of known or unknown length, are
// not mirrored and are counted.
func TestLoopFallbackAndH2CMirrorAlike(t *testing.T) {
	for _, sp := range servingPaths() {
		t.Run(sp.name, func(t *testing.T) {
			o := Options{Log: quietLog()}
			sp.opts(&o)
			g := New(o)
			g.SetEndpoints("pay", "v1", []string{startJSONUpstream(t, "v1", false, 0), startJSONUpstream(t, "v1", false, 0)})
			canary, canaryBodies := startJSONUpstreamBodies(t, "v2", true, 0)
			g.SetEndpoints("pay", "v2", []string{canary})
			if err := g.SetWeights("pay", map[string]int64{"v1": 1_000_000, "v2": 0}); err != nil {
				t.Fatal(err)
			}
			if err := g.SetServiceRoutes("pay", []string{"GET /v1/ok", "GET /v1/wrong", "POST /v1/pay", "POST /v1/quote"}); err != nil {
				t.Fatal(err)
			}
			err := g.SetMirror("pay", &Mirror{Stable: "v1", Canary: "v2", MaxBodyBytes: 200,
				Settings: shadow.Settings{SafeRoutes: []string{"POST /v1/quote"}, IgnoreHeaders: []string{"X-Served-By"}}})
			if err != nil {
				t.Fatal(err)
			}
			gw := startGateway(t, g)
			send := func(method, path, body string, unknownLength ...bool) {
				t.Helper()
				var rd io.Reader = strings.NewReader(body)
				if len(unknownLength) > 0 {
					rd = io.MultiReader(rd) // no length: chunked on HTTP/1, no content-length on h2c
				}
				req, _ := http.NewRequest(method, "http://"+gw+path, rd)
				req.Host = "pay.localhost"
				resp, err := sp.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("X-Pave-Version") != "v1" || !strings.Contains(string(b), `"amount":"10.00"`) {
					t.Fatalf("%s %s: a user got %d from %q: %s", method, path, resp.StatusCode, resp.Header.Get("X-Pave-Version"), b)
				}
			}
			for range 20 {
				send("GET", "/v1/ok", "")
				send("GET", "/v1/wrong", "")
			}
			for range 5 {
				send("POST", "/v1/pay", `{"amount":"10.00"}`)
			}
			// The body cases, alike on every path: 5 small bodies, one
			// exactly at the limit, one of unknown length within it,
			// then two over it (known and unknown length).
			var quoteBodies []string
			for i := range 5 {
				quoteBodies = append(quoteBodies, fmt.Sprintf(`{"q":%d}`, i))
			}
			quoteBodies = append(quoteBodies, `{"q":"`+strings.Repeat("a", 200-8)+`"}`)
			for _, b := range quoteBodies {
				send("POST", "/v1/quote", b)
			}
			sp.served(t, g) // before the bodies of unknown length: HTTP/1's event loop hands chunked requests to the fallback
			send("POST", "/v1/quote", `{"q":"unknown length"}`, true)
			quoteBodies = append(quoteBodies, `{"q":"unknown length"}`)
			quotes := len(quoteBodies)
			send("POST", "/v1/quote", strings.Repeat("x", 300))       // over the mirror's body limit
			send("POST", "/v1/quote", strings.Repeat("y", 300), true) // over it, of unknown length
			want := uint64(40 + quotes)
			var snap shadow.Snapshot
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				snap, _ = g.ShadowSnapshot("pay")
				if snap.Exchanges >= want || time.Now().After(deadline) {
					break
				}
			}
			if snap.Exchanges != want || snap.Mirrored != want {
				t.Fatalf("exchanges %d, mirrored %d; want %d (40 GET + %d safe POST)", snap.Exchanges, snap.Mirrored, want, quotes)
			}
			if snap.NotSafe != 5 {
				t.Errorf("unsafe POSTs counted %d, want 5", snap.NotSafe)
			}
			if snap.TooLarge != 2 {
				t.Errorf("over the body limit: %d, want 2", snap.TooLarge)
			}
			if snap.Dropped != 0 {
				t.Errorf("copies dropped: %d, want 0", snap.Dropped)
			}
			got := canaryBodies()["POST /v1/quote"]
			sort.Strings(got)
			sort.Strings(quoteBodies)
			if !reflect.DeepEqual(got, quoteBodies) {
				t.Errorf("the canary received the bodies %q\nwant %q", got, quoteBodies)
			}
			if n := len(canaryBodies()["POST /v1/pay"]); n != 0 {
				t.Errorf("the canary received %d bodies of the unsafe route", n)
			}
			amount := snap.Fields["GET /v1/wrong $.amount"]
			if testing.Verbose() {
				for k, f := range snap.Fields {
					t.Logf("%s: %+v %+v", k, f, f.Example)
				}
			}
			if amount.CanaryOnly != 20 || amount.Example == nil || amount.Example.Stable != `"10.00"` || amount.Example.Canary != `"10.50"` || len(amount.Example.TraceID) != 32 {
				t.Errorf("the changed amount: %+v", amount)
			}
			for k, f := range snap.Fields {
				if k != "GET /v1/wrong $.amount" && f.CanaryOnly > f.StableOnly+f.Both && f.Path != "$.at" {
					t.Errorf("%s counted against the canary: %+v", k, f)
				}
				if strings.Contains(k, "X-Served-By") {
					t.Errorf("an ignored header was compared: %s", k)
				}
			}
			if id := snap.Fields["GET /v1/ok $.id"]; id.Both+id.StableOnly == 0 {
				t.Errorf("the random id is noise between stables: %+v", id)
			}
			if snap.Canary.Total.Requests != want || snap.Stable.Routes["GET /v1/wrong"].Requests != 20 {
				t.Errorf("paired counts: canary %d, stable on /v1/wrong %d", snap.Canary.Total.Requests, snap.Stable.Routes["GET /v1/wrong"].Requests)
			}
			live := g.Snapshot("pay")
			if live["v2"].Total.Requests != 0 {
				t.Errorf("mirror traffic counted as the canary's live traffic: %d", live["v2"].Total.Requests)
			}
		})
	}
}
