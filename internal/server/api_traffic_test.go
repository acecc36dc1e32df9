package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

func newTrafficServer(t *testing.T) (*httptest.Server, *gateway.Gateway) {
	t.Helper()
	st, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw := gateway.New(gateway.Options{Log: quiet})
	gw.SetEndpoints("orders", "v1", []string{"127.0.0.1:9001"})
	gw.SetEndpoints("orders", "v2", []string{"127.0.0.1:9002"})
	router, err := traffic.NewGatewayRouter(context.Background(), st, gw, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Tokens: auth.Tokens{Store: st}, Open: true, Log: quiet})
	TrafficAPI{Router: router, Live: gw}.Register(s)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	authorizeClient(t, hs, auth.Tokens{Store: st})
	return hs, gw
}

func trafficCall(t *testing.T, hs *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestTrafficAPI(t *testing.T) {
	hs, gw := newTrafficServer(t)
	code, body := trafficCall(t, hs, "PUT", "/api/v1/traffic/orders", `{"weights":{"v1":990000,"v2":10000}}`)
	if code != 200 {
		t.Fatalf("PUT weights: %d %s", code, body)
	}
	var v TrafficView
	if err := json.Unmarshal(body, &v); err != nil || v.Percent["v2"] != "1" || v.State != traffic.RouteApplied || len(v.Endpoints["v1"]) != 1 {
		t.Fatalf("view %+v (%v) does not show v2 at 1%% applied", v, err)
	}
	if w := gw.Weights("orders"); w["v2"] != 10_000 {
		t.Fatalf("gateway weights %v", w)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"weights":{"v1":990000,"v3":10000}}`, "no version v3"},
		{`{"weights":{"v1":990000,"v2":20000}}`, "sum to 101%"},
		{`{"weights":{"v1":1010000,"v2":-10000}}`, "more than 100%"},
		{`{"weights":{"v1":"99"}}`, "request body"},
		{`{"weight":{"v1":1000000}}`, "unknown field"},
	} {
		code, body := trafficCall(t, hs, "PUT", "/api/v1/traffic/orders", tc.body)
		var e APIError
		_ = json.Unmarshal(body, &e)
		if code != 400 || !strings.Contains(e.Error, tc.want) {
			t.Errorf("PUT %s: %d %s, want 400 mentioning %q", tc.body, code, body, tc.want)
		}
	}
	if w := gw.Weights("orders"); w["v2"] != 10_000 {
		t.Fatalf("refused input changed the gateway: %v", w)
	}
	if code, _ := trafficCall(t, hs, "GET", "/api/v1/traffic/nothing", ""); code != 404 {
		t.Errorf("unknown service: %d, want 404", code)
	}
	if code, _ := trafficCall(t, hs, "GET", "/api/v1/traffic/Bad!", ""); code != 400 {
		t.Errorf("bad service name: %d, want 400", code)
	}
	code, body = trafficCall(t, hs, "GET", "/api/v1/traffic/orders/stats", "")
	var snap stats.Snapshot
	if code != 200 || json.Unmarshal(body, &snap) != nil {
		t.Fatalf("stats: %d %s", code, body)
	}
}

func TestTrafficStream(t *testing.T) {
	hs, _ := newTrafficServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/api/v1/traffic/orders/stream?every=50ms", nil)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	events := 0
	for sc.Scan() && events < 3 {
		if line := sc.Bytes(); bytes.HasPrefix(line, []byte("data: ")) {
			var snap stats.Snapshot
			if err := json.Unmarshal(line[6:], &snap); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			events++
		}
	}
	if events < 3 {
		t.Fatalf("got %d events before the stream ended: %v", events, sc.Err())
	}
	if code, _ := trafficCall(t, hs, "GET", "/api/v1/traffic/orders/stream?every=1ms", ""); code != 400 {
		t.Errorf("every=1ms: %d, want 400", code)
	}
}

func TestGatewayRoutesAPI(t *testing.T) {
	hs, gw := newTrafficServer(t)
	code, body := trafficCall(t, hs, "PUT", "/api/v1/gateway/routes", `{"routes":[{"host":"api.example","path_prefix":"/orders","service":"orders"}]}`)
	if code != 200 || !strings.Contains(string(body), `"/orders"`) {
		t.Fatalf("PUT routes: %d %s", code, body)
	}
	code, body = trafficCall(t, hs, "PUT", "/api/v1/gateway/routes", `{"routes":[{"path_prefix":"/a","service":"a"},{"path_prefix":"/a","service":"b"}]}`)
	var e APIError
	_ = json.Unmarshal(body, &e)
	if code != 400 || e.Field != "routes" || !strings.Contains(e.Error, "collides") {
		t.Fatalf("colliding routes: %d %s", code, body)
	}
	if got := gw.Routes(); len(got) != 1 || got[0].Service != "orders" {
		t.Fatalf("gateway routes after a refusal: %v", got)
	}
	code, body = trafficCall(t, hs, "GET", "/api/v1/gateway/routes", "")
	if code != 200 || !strings.Contains(string(body), `"api.example"`) {
		t.Fatalf("GET routes: %d %s", code, body)
	}
}
