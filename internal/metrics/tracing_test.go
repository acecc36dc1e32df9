package metrics

import (
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// TestStoreQuietsTracingOnlyWhenNothingIsInstalled: the store replaces
// OpenTelemetry's global stand-in (which builds a span per scrape) with
// the no-op provider, and leaves a provider someone installed alone.
func TestStoreQuietsTracingOnlyWhenNothingIsInstalled(t *testing.T) {
	before := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(before) })

	openStore(t, Options{})
	if _, ok := otel.GetTracerProvider().(tracenoop.TracerProvider); !ok {
		t.Errorf("after Open the tracer provider is %T, want the no-op one", otel.GetTracerProvider())
	}

	mine := &countingProvider{TracerProvider: tracenoop.NewTracerProvider()}
	otel.SetTracerProvider(mine)
	quietTracing()
	if otel.GetTracerProvider() != trace.TracerProvider(mine) {
		t.Errorf("an installed provider was replaced by %T", otel.GetTracerProvider())
	}
}

type countingProvider struct{ tracenoop.TracerProvider }
