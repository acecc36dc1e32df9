package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/vlstore"
)

// telemetryBackend is the store every log line and span goes to.
type telemetryBackend interface {
	telemetry.Store
	Close() error
}

// openTelemetry opens the telemetry-store setting's backend (issue 21):
// the embedded store under the data directory, or VictoriaLogs. stats is
// nil for VictoriaLogs, which reports its sizes itself (its /metrics).
func openTelemetry(ctx context.Context, cfg config.Config, log *slog.Logger) (tel telemetryBackend, stats func() telemetry.Stats, err error) {
	if cfg.TelemetryStore != "" && cfg.TelemetryStore != "embedded" {
		o, err := vlstore.ParseURL(cfg.TelemetryStore)
		if err != nil {
			return nil, nil, fmt.Errorf("setting telemetry-store: %w", err)
		}
		s, err := vlstore.Open(ctx, o)
		if err != nil {
			return nil, nil, fmt.Errorf("setting telemetry-store %s: %w", cfg.TelemetryStore, err)
		}
		log.Info("telemetry goes to VictoriaLogs", "addrs", o.Addrs, "flush_interval", o.FlushInterval)
		return s, nil, nil
	}
	cold, err := telemetry.OpenColdStore(ctx, cfg.TelemetryColdStore)
	if err != nil {
		return nil, nil, fmt.Errorf("--telemetry-cold-store: %w", err)
	}
	e, err := telemetry.Open(ctx, telemetry.Options{Dir: filepath.Join(cfg.DataDir, "telemetry"), Blob: cold, Log: log.With("component", "telemetry")})
	if err != nil {
		return nil, nil, err
	}
	return e, e.Stats, nil
}
