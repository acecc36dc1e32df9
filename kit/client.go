package kit

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// clientTransport starts a client span for each outgoing request and
// injects traceparent, tracestate and baggage, with caller.service set to
// this service so the callee's access log names its caller.
type clientTransport struct {
	app  *App
	next http.RoundTripper
}

func (t *clientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a := t.app
	ctx, span := a.tracer.Start(req.Context(), "HTTP "+methodLabel(req.Method),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", methodLabel(req.Method)),
			attribute.String("server.address", req.URL.Host),
		))
	defer span.End()

	bag := baggage.FromContext(ctx)
	if m, err := baggage.NewMemberRaw(callerMember, a.cfg.Service); err == nil {
		if b, err := bag.SetMember(m); err == nil {
			bag = b
		}
	}
	ctx = baggage.ContextWithBaggage(ctx, bag)

	// A RoundTripper must not modify the caller's request.
	out := req.Clone(ctx)
	w3c.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
