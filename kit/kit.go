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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// App is one service process. The zero value is not usable: call New.
type App struct {
	cfg    Config
	mux    *http.ServeMux
	log    *slog.Logger
	ready  atomic.Bool
	server *http.Server
}

// Config holds what kit reads from the environment. FromEnv fills it; tests
// may build one by hand.
type Config struct {
	Service         string        // PAVE_SERVICE, else the name given to New
	Version         string        // PAVE_VERSION, default "dev"
	Cluster         string        // PAVE_CLUSTER
	Datacenter      string        // PAVE_DATACENTER
	Addr            string        // ":"+PORT, default ":8080"
	ShutdownTimeout time.Duration // KIT_SHUTDOWN_TIMEOUT, default 20s
}

// FromEnv reads the configuration from the process environment.
func FromEnv(service string) Config {
	c := Config{Service: service, Version: "dev", Addr: ":8080", ShutdownTimeout: 20 * time.Second}
	if v := os.Getenv("PAVE_SERVICE"); v != "" {
		c.Service = v
	}
	if v := os.Getenv("PAVE_VERSION"); v != "" {
		c.Version = v
	}
	c.Cluster = os.Getenv("PAVE_CLUSTER")
	c.Datacenter = os.Getenv("PAVE_DATACENTER")
	if v := os.Getenv("PORT"); v != "" {
		c.Addr = ":" + v
	}
	if d, err := time.ParseDuration(os.Getenv("KIT_SHUTDOWN_TIMEOUT")); err == nil && d > 0 {
		c.ShutdownTimeout = d
	}
	return c
}

// New returns an App configured from the environment.
func New(service string) *App { return NewWithConfig(FromEnv(service)) }

// NewWithConfig returns an App with an explicit configuration.
func NewWithConfig(cfg Config) *App {
	a := &App{cfg: cfg, mux: http.NewServeMux(), log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	a.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
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
// identity to the next service.
func (a *App) Client() *http.Client { return http.DefaultClient }

// Config returns the configuration the App runs with.
func (a *App) Config() Config { return a.cfg }

// Handler returns the full middleware stack around the registered routes,
// for use with httptest in a service's own tests.
func (a *App) Handler() http.Handler { return a.mux }

// Run serves on the configured address until SIGTERM or SIGINT, then shuts
// down gracefully.
func (a *App) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: readiness
// turns false first, in-flight requests finish within ShutdownTimeout.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	a.server = &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(ln) }()
	a.ready.Store(true)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.server.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
