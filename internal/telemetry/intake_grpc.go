package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP senders may compress with gzip; the server must know it
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// GRPCIntake serves OTLP/gRPC: the LogsService and TraceService Export
// calls. A call succeeds only once its records are durable, exactly like
// the HTTP intake, with which it shares decoding, limits and appending.
type GRPCIntake struct {
	in   *Intake
	auth *IngestAuth // see intake_auth.go
}

// NewGRPCIntake returns the OTLP/gRPC intake writing into store. Its
// largest accepted message (after gzip) is lim.MaxBodyBytes, the HTTP
// intake's body limit.
func NewGRPCIntake(store Store, lim Limits, log *slog.Logger) *GRPCIntake {
	return &GRPCIntake{in: NewIntake(store, lim, log)}
}

// Serve answers OTLP/gRPC calls on ln until ctx ends, then stops accepting
// calls and waits for those in flight, so none is cut between the store's
// fsync and its acknowledgement. It returns nil after such a stop.
func (g *GRPCIntake) Serve(ctx context.Context, ln net.Listener) error {
	srv := g.server()
	stopped := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
			srv.GracefulStop()
		case <-served:
			srv.Stop()
		}
	}()
	err := srv.Serve(ln)
	close(served)
	<-stopped
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("otlp/grpc on %s: %w", ln.Addr(), err)
	}
	return nil
}

func (g *GRPCIntake) server() *grpc.Server {
	srv := grpc.NewServer(append(g.serverOptions(),
		grpc.MaxRecvMsgSize(g.in.limits.MaxBodyBytes),
		grpc.ForceServerCodecV2(rawCodec{fallback: encoding.GetCodecV2("proto")}),
	)...)
	srv.RegisterService(&logsServiceDesc, g)
	srv.RegisterService(&traceServiceDesc, g)
	return srv
}

// rawMessage is a request or response as its protobuf bytes. The services
// below take requests this way rather than through pdata's
// RegisterGRPCServer, which decodes before any handler runs: a malformed
// request (say a 3-byte trace id) would come back as codes.Internal
// without saying what was wrong. Here the bytes go through DecodeOTLPLogs
// or DecodeOTLPTraces, the HTTP intake's code, so a bad request is
// InvalidArgument with the same message naming the record.
type rawMessage struct{ b []byte }

// rawCodec passes rawMessages through and leaves anything else to the
// standard protobuf codec.
type rawCodec struct{ fallback encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.fallback.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawMessage); ok {
		m.b = data.Materialize()
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// exporter is what the service descriptors need of their implementation.
type exporter interface {
	exportLogsGRPC(ctx context.Context, body []byte) (*rawMessage, error)
	exportTracesGRPC(ctx context.Context, body []byte) (*rawMessage, error)
}

// Empty responses: everything accepted. Partial success is never needed,
// because a request is stored whole or not at all, as over HTTP.
var (
	logsOK, _   = plogotlp.NewExportResponse().MarshalProto()
	tracesOK, _ = ptraceotlp.NewExportResponse().MarshalProto()
)

func (g *GRPCIntake) exportLogsGRPC(ctx context.Context, body []byte) (*rawMessage, error) {
	if err := g.in.exportLogs(ctx, body, false); err != nil {
		return nil, g.status("LogsService/Export", err)
	}
	return &rawMessage{b: logsOK}, nil
}

func (g *GRPCIntake) exportTracesGRPC(ctx context.Context, body []byte) (*rawMessage, error) {
	if err := g.in.exportTraces(ctx, body, false); err != nil {
		return nil, g.status("TraceService/Export", err)
	}
	return &rawMessage{b: tracesOK}, nil
}

// status turns a refusal into the gRPC status the OTLP specification
// gives it: back-pressure is Unavailable with RetryInfo (retryable, after
// the delay the HTTP intake puts in Retry-After); a bad request is
// InvalidArgument (not retryable) with the message naming the record.
func (g *GRPCIntake) status(method string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	httpStatus, retry := classify(err)
	code := codes.Internal
	switch httpStatus {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		code = codes.InvalidArgument
	case http.StatusRequestEntityTooLarge:
		code = codes.ResourceExhausted // no RetryInfo: the same request would fail again
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		code = codes.Unavailable
	}
	if httpStatus >= 500 {
		g.in.log.Error("telemetry intake refused a request", "method", method, "code", code.String(), "err", err)
	}
	st := status.New(code, err.Error())
	if retry > 0 {
		if withInfo, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)}); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

func logsExportHandler(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var req rawMessage
	if err := dec(&req); err != nil {
		return nil, err
	}
	return srv.(exporter).exportLogsGRPC(ctx, req.b)
}

func tracesExportHandler(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var req rawMessage
	if err := dec(&req); err != nil {
		return nil, err
	}
	return srv.(exporter).exportTracesGRPC(ctx, req.b)
}

// The OTLP services, by their protobuf names (opentelemetry-proto
// collector/logs/v1 and collector/trace/v1), so any OTLP/gRPC client
// reaches them unchanged.
var (
	logsServiceDesc = grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.logs.v1.LogsService",
		HandlerType: (*exporter)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: logsExportHandler}},
		Metadata:    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
	}
	traceServiceDesc = grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*exporter)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: tracesExportHandler}},
		Metadata:    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
	}
)
