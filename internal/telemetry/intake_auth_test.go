package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func testIngestAuth() *IngestAuth {
	return &IngestAuth{Rate: 2, Verify: func(_ context.Context, tok string) (string, string, bool) {
		switch tok {
		case "ingest-a", "ingest-b":
			return tok, "", true
		case "viewer":
			return "", "token v1 has role viewer; sending telemetry needs role ingest", false
		}
		return "", "invalid token", false
	}}
}

func TestIngestAuthOffLoopback(t *testing.T) {
	a := testIngestAuth()
	served := 0
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served++ }))
	send := func(remote, authz string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/logs", strings.NewReader("{}"))
		r.RemoteAddr = remote
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	far := "192.0.2.7:5555"
	for _, c := range []struct {
		authz, says string
		code        int
	}{
		{"", "ingest role", 401},
		{"Basic Zm9vOmJhcg==", "Bearer", 401},
		{"Bearer nope", "invalid token", 401},
		{"Bearer viewer", "needs role ingest", 401},
	} {
		if w := send(far, c.authz); w.Code != c.code || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%q: %d %s", c.authz, w.Code, w.Body)
		}
	}
	if served != 0 {
		t.Fatalf("%d refused requests reached the intake", served)
	}
	// Burst of 2×rate, then 429 with the reason; another token is apart.
	for i := range 4 {
		if w := send(far, "Bearer ingest-a"); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, w.Code, w.Body)
		}
	}
	if w := send(far, "Bearer ingest-a"); w.Code != 429 || !strings.Contains(w.Body.String(), "rate limit") || w.Header().Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %s", w.Code, w.Body)
	}
	if w := send(far, "Bearer ingest-b"); w.Code != 200 {
		t.Fatalf("another token has its own limit: %d", w.Code)
	}
	if w := send("127.0.0.1:4444", ""); w.Code != 200 {
		t.Fatalf("this machine's services need no token: %d", w.Code)
	}
}

func TestIngestAuthGRPC(t *testing.T) {
	a := testIngestAuth()
	call := func(remote, authz string) error {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(remote), Port: 1}})
		if authz != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", authz))
		}
		_, err := a.unary(ctx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { return "ok", nil })
		return err
	}
	if err := call("192.0.2.7", ""); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "ingest") {
		t.Fatalf("no token: %v", err)
	}
	if err := call("192.0.2.7", "Bearer ingest-a"); err != nil {
		t.Fatalf("ingest token: %v", err)
	}
	if err := call("::1", ""); err != nil {
		t.Fatalf("loopback: %v", err)
	}
}
