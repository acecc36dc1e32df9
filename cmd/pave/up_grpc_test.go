package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// TestUpServesOTLPOverGRPC: with --otlp-grpc-addr, pave up takes spans
// from the standard OpenTelemetry gRPC exporter, and the API finds them.
func TestUpServesOTLPOverGRPC(t *testing.T) {
	t.Parallel()
	grpcAddr := freeAddr(t)
	p := startUp(t, t.TempDir(), "--otlp-grpc-addr", grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure(), otlptracegrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("checkout"))))
	_, span := tp.Tracer("test").Start(ctx, "GET /v1/pay")
	traceID := span.SpanContext().TraceID().String()
	span.End() // the syncer exports now; the call returns once stored
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("export over gRPC: %v", err)
	}
	resp, err := http.Get(p.api + "/api/v1/traces/" + traceID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "GET /v1/pay") || !strings.Contains(string(body), "checkout") {
		t.Fatalf("trace %s: %d %s", traceID, resp.StatusCode, body)
	}
}
