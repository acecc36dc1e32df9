// Package kit is the common library every Pave service imports. A service
// built on kit gets, with no code of its own, an HTTP server on $PORT with
// graceful shutdown, /healthz, /readyz and /metrics, OpenTelemetry tracing
// with W3C propagation, RED metrics by route template, one JSON access log
// record per request, trace-aware application logs, and export of logs and
// spans over OTLP/HTTP that survives an outage of the collector.
//
// The exported surface is deliberately small:
//
//	app := kit.New("orders")
//	app.HandleFunc("GET /v1/orders/{id}", getOrder)
//	if err := app.Run(); err != nil { ... }
package kit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// App is one service process. The zero value is not usable: call New.
type App struct {
	cfg      Config
	mux      *http.ServeMux
	log      *slog.Logger
	ready    atomic.Bool
	server   *http.Server
	out      *lineWriter
	registry *prometheus.Registry
	metrics  *redMetrics
	tp       *sdktrace.TracerProvider
	tracer   trace.Tracer
	export   *exporter
	client   *http.Client
	handler  http.Handler

	closeOnce sync.Once
	closeErr  error
}

// New returns an App configured from the environment.
func New(service string) *App { return NewWithConfig(FromEnv(service)) }

// NewWithConfig returns an App with an explicit configuration. Zero fields
// take the defaults documented on Config. Background work (log flushing,
// telemetry export, re-sending the disk buffer) starts here and stops when
// Serve returns or Close is called.
func NewWithConfig(cfg Config) *App {
	problems := cfg.withDefaults()
	a := &App{cfg: cfg, mux: http.NewServeMux(), registry: prometheus.NewRegistry()}
	a.out = newLineWriter(cfg.Output, cfg.LogFlushInterval)
	a.metrics = newREDMetrics(a.registry, cfg.Version)
	a.export = newExporter(cfg, a.registry, a.out)
	a.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(serviceResource(cfg)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithSpanProcessor(a.export),
	)
	a.tracer = a.tp.Tracer("github.com/pave-platform/pave/kit")
	a.log = slog.New(newLogHandler(a.out, a.export, cfg))
	a.client = &http.Client{Transport: &clientTransport{app: a, next: http.DefaultTransport}}
	a.handler = a.instrument(a.mux)
	a.export.start(a.log)
	for _, p := range problems {
		a.log.Warn("ignoring invalid kit setting", "problem", p)
	}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return a
}

// Handle registers h for a net/http ServeMux pattern such as
// "GET /v1/orders/{id}". The pattern is the route label in metrics and logs.
func (a *App) Handle(pattern string, h http.Handler) { a.mux.Handle(pattern, h) }

// HandleFunc is Handle for a function.
func (a *App) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	a.mux.HandleFunc(pattern, h)
}

// Logger returns the service's structured logger. Pass the request context
// (InfoContext and friends) and the record carries trace_id and span_id.
func (a *App) Logger() *slog.Logger { return a.log }

// Client returns an HTTP client that propagates the trace and the caller's
// identity (W3C baggage member caller.service) to the next service, and
// records a client span for each call.
func (a *App) Client() *http.Client { return a.client }

// Config returns the configuration the App runs with.
func (a *App) Config() Config { return a.cfg }

// Registry returns the Prometheus registry served on /metrics, so a service
// can register its own collectors next to kit's.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// TracerProvider returns the App's tracer provider; spans started from it
// are exported with the App's own.
func (a *App) TracerProvider() trace.TracerProvider { return a.tp }

// Handler returns the full middleware stack around the registered routes,
// for use with httptest in a service's own tests. /healthz, /readyz and
// /metrics are served outside the instrumentation so probes and scrapes do
// not flood the access log.
func (a *App) Handler() http.Handler { return a.handler }

// Run serves on the configured address until SIGTERM or SIGINT, then shuts
// down gracefully. It installs the App's tracer provider and the W3C
// propagators as the OpenTelemetry globals, so otel.Tracer works in
// handlers.
func (a *App) Run() error {
	otel.SetTracerProvider(a.tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		_ = a.Close(context.Background())
		return fmt.Errorf("kit: listen on %s (set PORT to change it): %w", a.cfg.Addr, err)
	}
	return a.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: readiness
// turns false first, the listener stays open for ReadinessDelay so load
// balancers notice, in-flight requests finish within ShutdownTimeout, and
// finally logs and spans are flushed (to the endpoint, or to the disk buffer
// when it is down).
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	a.server = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: a.cfg.MaxHeaderBytes}
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(ln) }()
	a.ready.Store(true)
	a.log.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		a.ready.Store(false)
		_ = a.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	a.ready.Store(false)
	a.log.Info("shutting down", "readiness_delay", a.cfg.ReadinessDelay.String(), "timeout", a.cfg.ShutdownTimeout.String())
	if a.cfg.ReadinessDelay > 0 {
		time.Sleep(a.cfg.ReadinessDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var shutdownErr error
	if err := a.server.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		shutdownErr = fmt.Errorf("kit: in-flight requests did not finish within %s: %w", a.cfg.ShutdownTimeout, err)
	}
	// The exporters get their own bound so a slow drain of requests does not
	// leave telemetry unflushed.
	fctx, fcancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer fcancel()
	return errors.Join(shutdownErr, a.Close(fctx))
}

// Close flushes and stops the App's background work: pending spans and logs
// go to the OTLP endpoint or, when it is unreachable, to the disk buffer, and
// buffered stdout output is written. Serve calls it on shutdown; tests that
// use only Handler call it themselves. It is safe to call more than once.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		a.ready.Store(false)
		err1 := a.tp.ForceFlush(ctx)
		err2 := a.export.close(ctx)
		err3 := a.tp.Shutdown(ctx)
		err4 := a.out.close()
		a.closeErr = errors.Join(err1, err2, err3, err4)
	})
	return a.closeErr
}
