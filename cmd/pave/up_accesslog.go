package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/telemetry"
)

// gatewayAccessLog stores the gateway's access records in the telemetry
// store, next to the services' own records of the same trace: the viewer
// then shows each request as the edge saw it and as the service did.
type gatewayAccessLog struct {
	store interface {
		AppendLogs(context.Context, []telemetry.Log) error
	}
	log *slog.Logger
}

var _ gateway.BatchAccessLogger = (*gatewayAccessLog)(nil)

func (a *gatewayAccessLog) LogAccess(r *gateway.AccessRecord) {
	a.LogAccessBatch([]*gateway.AccessRecord{r})
}

// LogAccessBatch runs on the gateway's single access-log goroutine.
func (a *gatewayAccessLog) LogAccessBatch(recs []*gateway.AccessRecord) {
	// A new slice each time: the store keeps the one it is given.
	batch := make([]telemetry.Log, 0, len(recs))
	for _, r := range recs {
		batch = append(batch, accessLogRecord(r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.store.AppendLogs(ctx, batch); err != nil {
		a.log.Warn("gateway access records not stored", "records", len(batch), "err", err)
	}
}

func accessLogRecord(r *gateway.AccessRecord) telemetry.Log {
	level := "INFO"
	if r.Status >= 500 || r.Status == 0 {
		level = "ERROR"
	}
	return telemetry.Log{Time: r.Time, Service: r.Service, Version: r.Version, Level: level,
		Message: r.Method + " " + r.Route, Kind: "access", TraceID: r.TraceID, SpanID: r.SpanID,
		Method: r.Method, Route: r.Route, Status: r.Status, DurationMS: r.DurationMS, Bytes: int64(r.Bytes),
		Caller: r.Caller, Cluster: r.Cluster, Datacenter: r.Datacenter, MerchantID: r.MerchantID,
		Attrs: telemetry.Attrs{{Key: "source", Value: "gateway"}}}
}
