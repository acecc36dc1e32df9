package kit

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config holds what kit reads from the environment. FromEnv fills it; tests
// may build one by hand. Zero fields take the defaults given here.
type Config struct {
	Service         string        // PAVE_SERVICE, else the name given to New
	Version         string        // PAVE_VERSION, default "dev"
	Cluster         string        // PAVE_CLUSTER
	Datacenter      string        // PAVE_DATACENTER
	Addr            string        // ":"+PORT, default ":8080"
	ShutdownTimeout time.Duration // KIT_SHUTDOWN_TIMEOUT, default 20s

	// ReadinessDelay is how long Serve keeps accepting requests after
	// readiness turned false, so load balancers stop sending new ones
	// (KIT_READINESS_DELAY, default 0; set a few seconds on Kubernetes).
	ReadinessDelay time.Duration

	// OTLPEndpoint is the base URL of the OTLP/HTTP receiver; spans go to
	// /v1/traces and logs to /v1/logs under it (OTEL_EXPORTER_OTLP_ENDPOINT,
	// default http://127.0.0.1:4318, the local Pave).
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_LOGS_ENDPOINT
	// override the full URL of one signal.
	OTLPEndpoint string
	TracesURL    string
	LogsURL      string
	// ExportDisabled turns OTLP export off (OTEL_SDK_DISABLED=true); logs
	// still go to Output.
	ExportDisabled bool
	// ExportInterval is the longest a record waits in memory before its
	// batch is sent (KIT_EXPORT_INTERVAL, default 1s).
	ExportInterval time.Duration
	// ExportTimeout bounds one POST to the receiver (default 5s).
	ExportTimeout time.Duration
	// RetryInterval is how often the disk buffer is re-sent while the
	// receiver is down (KIT_EXPORT_RETRY_INTERVAL, default 5s).
	RetryInterval time.Duration
	// QueueSize bounds the records held in memory per signal; beyond it new
	// records are dropped and counted, never waited for (KIT_EXPORT_QUEUE,
	// default 8192).
	QueueSize int
	// SpoolDir is the disk buffer for batches the receiver did not accept
	// (KIT_SPOOL_DIR, default <user cache dir>/pave-kit/<service>).
	SpoolDir string
	// SpoolMaxBytes bounds the disk buffer (KIT_SPOOL_MAX_BYTES, default 512 MiB).
	SpoolMaxBytes int64

	// MerchantHeader is the request header the default merchant extractor
	// reads (KIT_MERCHANT_HEADER, default X-Merchant-Id).
	MerchantHeader string
	// MerchantID, when set, replaces the default extractor.
	MerchantID func(*http.Request) string

	// Output receives the access log and application logs, one JSON object
	// per line (default os.Stdout). Writes are buffered and flushed every
	// LogFlushInterval (default 100ms) and on Close.
	Output           io.Writer
	LogFlushInterval time.Duration
	// LogLevel is the minimum level of application logs (KIT_LOG_LEVEL:
	// debug, info, warn, error; default info).
	LogLevel slog.Level
	// MaxHeaderBytes bounds request headers (default net/http's 1 MiB).
	MaxHeaderBytes int

	problems []string
}

// FromEnv reads the configuration from the process environment. Invalid
// values are ignored in favour of the default and reported as warnings in
// the application log when the App starts.
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
		if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 65535 {
			c.problems = append(c.problems, fmt.Sprintf("PORT=%q is not a port number (0-65535); using 8080", v))
		} else {
			c.Addr = ":" + v
		}
	}
	// HOST narrows the listener to one interface: empty (all interfaces)
	// suits a container; Pave's local runtime sets 127.0.0.1 so services on
	// a developer machine are not reachable from the network.
	if h := os.Getenv("HOST"); h != "" {
		if net.ParseIP(h) == nil && h != "localhost" {
			c.problems = append(c.problems, fmt.Sprintf("HOST=%q is not an IP address or localhost; listening on all interfaces", h))
		} else {
			_, port, _ := net.SplitHostPort(c.Addr)
			c.Addr = net.JoinHostPort(h, port)
		}
	}
	c.ShutdownTimeout = envDuration(&c, "KIT_SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	c.ReadinessDelay = envDuration(&c, "KIT_READINESS_DELAY", 0)
	c.OTLPEndpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	c.TracesURL = os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	c.LogsURL = os.Getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
	c.ExportDisabled = strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true")
	c.ExportInterval = envDuration(&c, "KIT_EXPORT_INTERVAL", 0)
	c.RetryInterval = envDuration(&c, "KIT_EXPORT_RETRY_INTERVAL", 0)
	if v := os.Getenv("KIT_EXPORT_QUEUE"); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n <= 0 {
			c.problems = append(c.problems, fmt.Sprintf("KIT_EXPORT_QUEUE=%q is not a positive integer", v))
		} else {
			c.QueueSize = n
		}
	}
	c.SpoolDir = os.Getenv("KIT_SPOOL_DIR")
	if v := os.Getenv("KIT_SPOOL_MAX_BYTES"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
			c.problems = append(c.problems, fmt.Sprintf("KIT_SPOOL_MAX_BYTES=%q is not a positive integer (bytes)", v))
		} else {
			c.SpoolMaxBytes = n
		}
	}
	c.MerchantHeader = os.Getenv("KIT_MERCHANT_HEADER")
	if v := os.Getenv("KIT_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			c.problems = append(c.problems, fmt.Sprintf("KIT_LOG_LEVEL=%q is not one of debug, info, warn, error", v))
		}
	}
	return c
}

func envDuration(c *Config, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		c.problems = append(c.problems, fmt.Sprintf("%s=%q is not a duration such as 500ms or 5s", name, v))
		return def
	}
	return d
}

// withDefaults fills zero fields and returns the problems found while
// reading the environment.
func (c *Config) withDefaults() []string {
	if c.Service == "" {
		c.Service = "unknown_service"
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.OTLPEndpoint == "" {
		c.OTLPEndpoint = "http://127.0.0.1:4318"
	}
	base := strings.TrimRight(c.OTLPEndpoint, "/")
	if c.TracesURL == "" {
		c.TracesURL = base + "/v1/traces"
	}
	if c.LogsURL == "" {
		c.LogsURL = base + "/v1/logs"
	}
	if c.ExportInterval <= 0 {
		c.ExportInterval = time.Second
	}
	if c.ExportTimeout <= 0 {
		c.ExportTimeout = 5 * time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 5 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 8192
	}
	if c.SpoolDir == "" {
		c.SpoolDir = defaultSpoolDir(c.Service)
	}
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = 512 << 20
	}
	if c.MerchantHeader == "" {
		c.MerchantHeader = "X-Merchant-Id"
	}
	if c.Output == nil {
		c.Output = os.Stdout
	}
	if c.LogFlushInterval <= 0 {
		c.LogFlushInterval = 100 * time.Millisecond
	}
	problems := c.problems
	c.problems = nil
	return problems
}

// defaultSpoolDir keeps the buffer outside the working directory and per
// service. The service name comes from configuration, but it still must
// not be able to steer the path elsewhere.
func defaultSpoolDir(service string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "pave-kit", safeFileName(service))
}

func safeFileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	out := strings.Trim(string(b), ".")
	if out == "" {
		out = "service"
	}
	return out
}
