package kit_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pave-platform/pave/kit"
)

// benchHandler is the service's own work in both variants.
func benchHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "order "+r.PathValue("id"))
}

func benchRequest(withHeaders bool) *http.Request {
	req := httptest.NewRequest("GET", "/v1/orders/42", nil)
	if withHeaders {
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		req.Header.Set("baggage", "caller.service=checkout")
		req.Header.Set("X-Merchant-Id", "m-42")
	}
	return req
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func serveLoop(b *testing.B, h http.Handler, req *http.Request) {
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkBare is the peer: the same route on a bare ServeMux.
func BenchmarkBare(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/orders/{id}", benchHandler)
	serveLoop(b, mux, benchRequest(true))
}

// BenchmarkKit is the full middleware stack with export on; the receiver
// address is closed, so batches go to the disk buffer in the background.
func BenchmarkKit(b *testing.B) {
	app := kit.NewWithConfig(kit.Config{Service: "bench", Output: io.Discard, SpoolDir: b.TempDir(),
		OTLPEndpoint: "http://127.0.0.1:1"})
	defer app.Close(context.Background())
	app.HandleFunc("GET /v1/orders/{id}", benchHandler)
	serveLoop(b, app.Handler(), benchRequest(true))
}

// BenchmarkKitNoHeaders is a request that starts a new trace.
func BenchmarkKitNoHeaders(b *testing.B) {
	app := kit.NewWithConfig(kit.Config{Service: "bench", Output: io.Discard, ExportDisabled: true})
	defer app.Close(context.Background())
	app.HandleFunc("GET /v1/orders/{id}", benchHandler)
	serveLoop(b, app.Handler(), benchRequest(false))
}
