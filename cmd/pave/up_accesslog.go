package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/telemetry"
)

// accessSpoolBytes bounds each gateway's disk spool of access records the
// telemetry store could not take at once (about 2 M records).
const accessSpoolBytes = 256 << 20

// gatewayAccessLog stores the gateway's access records in the telemetry
// store, next to the services' own records of the same trace: the viewer
// then shows each request as the edge saw it and as the service did.
//
// No record is dropped silently: what the store refuses (busy flushing,
// a full disk) and what the gateway's in-memory queue has no room for goes
// to a bounded disk spool, replayed in order when the store takes it;
// once the spool has records, new ones queue behind them so the order
// holds. Only what exceeds the spool's bound is lost, and it is counted
// (pave_access_spool_lost_records_total) and logged.
type gatewayAccessLog struct {
	store accessStore
	spool *telemetry.Spool
	log   *slog.Logger
}

type accessStore interface {
	AppendLogs(context.Context, []telemetry.Log) error
}

var (
	_ gateway.BatchAccessLogger = (*gatewayAccessLog)(nil)
	_ gateway.AccessSpiller     = (*gatewayAccessLog)(nil)
	_ prometheus.Collector      = (*gatewayAccessLog)(nil)
)

// newGatewayAccessLog opens the spool in spoolDir and replays it into
// store until ctx ends; Close the result when the gateway is done.
func newGatewayAccessLog(ctx context.Context, store accessStore, spoolDir string, log *slog.Logger) (*gatewayAccessLog, error) {
	sp, err := telemetry.OpenSpool(spoolDir, accessSpoolBytes, log.With("component", "access-spool"))
	if err != nil {
		return nil, err
	}
	go sp.Run(ctx, store, 250*time.Millisecond)
	return &gatewayAccessLog{store: store, spool: sp, log: log}, nil
}

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
	if a.spool == nil {
		a.appendOrWarn(batch)
		return
	}
	if n, _ := a.spool.Pending(); n == 0 && !storeBusy(a.store) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.store.AppendLogs(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		// Refused records were not stored (the store either writes a
		// batch whole or not at all), so spooling them stores them once.
		a.log.Debug("telemetry refused gateway access records; spooling them", "records", len(batch), "err", err)
	}
	_ = a.spool.Put(batch) // a loss is counted and logged by the spool
}

// SpillAccess takes a record the gateway's in-memory queue had no room for.
func (a *gatewayAccessLog) SpillAccess(r *gateway.AccessRecord) bool {
	if a.spool == nil {
		return false
	}
	return a.spool.Put([]telemetry.Log{accessLogRecord(r)}) == nil
}

func (a *gatewayAccessLog) appendOrWarn(batch []telemetry.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.store.AppendLogs(ctx, batch); err != nil {
		a.log.Warn("gateway access records not stored", "records", len(batch), "err", err)
	}
}

func storeBusy(s accessStore) bool {
	b, ok := s.(interface{ Busy() bool })
	return ok && b.Busy()
}

// Describe and Collect expose the spool's counters with the gateway's metrics.
func (a *gatewayAccessLog) Describe(ch chan<- *prometheus.Desc) {
	if a.spool != nil {
		a.spool.Describe(ch)
	}
}

func (a *gatewayAccessLog) Collect(ch chan<- prometheus.Metric) {
	if a.spool != nil {
		a.spool.Collect(ch)
	}
}

// Close closes the spool; records still in it are stored after the next start.
func (a *gatewayAccessLog) Close() error {
	if a.spool == nil {
		return nil
	}
	return a.spool.Close()
}

func accessLogRecord(r *gateway.AccessRecord) telemetry.Log {
	level := "INFO"
	if r.Status >= 500 || r.Status == 0 {
		level = "ERROR"
	}
	route := accessRoute(r.Route)
	return telemetry.Log{Time: r.Time, Service: r.Service, Version: r.Version, Level: level,
		Message: r.Method + " " + route, Kind: "access", TraceID: r.TraceID, SpanID: r.SpanID,
		Method: r.Method, Route: route, Status: r.Status, DurationMS: r.DurationMS, Bytes: int64(r.Bytes),
		Caller: r.Caller, Cluster: r.Cluster, Datacenter: r.Datacenter, MerchantID: r.MerchantID,
		Attrs: telemetry.Attrs{{Key: "source", Value: "gateway"}}}
}

// accessRoute is the route of a record as kit's own access lines name it:
// the gateway keys routes by the whole template the service reported ("GET
// /v1/orders/{id}"), kit's lines carry its path alone, and a search by
// route=/v1/orders/{id} must find both the gateway's line and the
// service's.
func accessRoute(template string) string {
	if i := strings.IndexByte(template, ' '); i >= 0 {
		return template[i+1:]
	}
	return template
}
