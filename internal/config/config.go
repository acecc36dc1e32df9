// Package config resolves `pave up` settings from, in rising precedence,
// defaults, a pave.yaml file, PAVE_* environment variables and flags. Every
// setting is declared once in the table below, so the file key, the
// environment variable and the flag can never drift apart, and an invalid
// value names the setting, where it came from, the value and what is allowed.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/netaddr"
	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/vlstore"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// Config is the control plane's configuration.
type Config struct {
	DataDir  string
	HTTPAddr string
	OTLPAddr string
	// OTLPGRPCAddr is the OTLP/gRPC intake's address, e.g. 127.0.0.1:4317;
	// empty (the default) leaves gRPC off.
	OTLPGRPCAddr string
	GatewayAddr  string
	// RequireAuth forces bearer tokens even on loopback. Tokens are always
	// required when the API listens on a non-loopback address.
	RequireAuth bool
	LogLevel    string
	// Clusters names the local clusters of embedded mode (active-active).
	Clusters []string
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration
	// GatewayStickyHeader and GatewayStickyCookie name the key (e.g. a
	// user or merchant id) that keeps one user on one version.
	GatewayStickyHeader string
	GatewayStickyCookie string
	// GatewayNoEventLoop serves every gateway connection with a goroutine
	// (the fasthttp path) instead of the Linux event loop: a fallback.
	GatewayNoEventLoop bool
	// GatewayPinNetworks are the client networks (CIDR) whose requests may
	// pin a version (X-Pave-Version) or stick to one; "none" for none.
	// Anyone else needs a tester credential (gateway.md).
	GatewayPinNetworks []string
	// TelemetryColdStore is where old telemetry partitions go: "dir" (the
	// data directory), "dir:/abs/path" or "s3://bucket/prefix?endpoint=…".
	TelemetryColdStore string
	// TelemetryStore is where logs and spans are kept: "embedded" (the
	// store under the data directory) or "victorialogs://host:port[,…]"
	// (a VictoriaLogs node or cluster; telemetry.md).
	TelemetryStore string
	// FleetFile is the fleet of service repositories (fleet.yaml) the
	// services page reports on; VulnDB the vulnerability database it
	// scans them against (issue 22).
	FleetFile string
	VulnDB    string
	// Edge picks who splits traffic between clusters: "" (the embedded
	// edge gateway when --clusters names several, else none),
	// "istio:CLUSTER" (locality load balancing in the mesh whose
	// configuration lives in registered cluster CLUSTER), "webhook:URL"
	// (DNS / GSLB) or "none".
	Edge string

	// Security (issue 12): who may reach the control plane, and how.
	// HTTPAllowedHosts are Host names the API accepts besides localhost,
	// 127.0.0.1 and [::1] (DNS-rebinding defence).
	HTTPAllowedHosts []string
	// RunRoots is a PATH-like list of directories under which releases
	// and `pave run` may point spec.source/spec.binary; empty: the
	// directory `pave up` started in and the data directory.
	RunRoots string
	// TLSCert and TLSKey serve the API, UI and OTLP receivers over TLS
	// (reloaded when the files change); TLSClientCA requires client
	// certificates signed by it.
	TLSCert, TLSKey, TLSClientCA string
	// InsecureHTTP allows plain HTTP on a non-loopback address.
	InsecureHTTP bool
	// OTLPRate is the per-token rate limit of the OTLP receivers off
	// loopback, in requests per second (burst: twice that).
	OTLPRate string

	// Build cache (issue 17): the shared Go build cache `pave up` serves
	// on CacheAddr (empty: off), its disk tier bound and optional shared
	// tier (docs/buildcache.md).
	CacheAddr, CacheMaxSize, CacheSharedStore string

	// Metrics store (issue 15).
	// MetricsScrapeInterval is how often every target is scraped.
	MetricsScrapeInterval time.Duration
	// MetricsRetention and MetricsRetentionSize bound the TSDB by age and
	// by bytes ("" or "0": no size bound; e.g. 10GB, 512MiB).
	MetricsRetention     time.Duration
	MetricsRetentionSize string
	// MetricsSampleLimit fails a scrape returning more samples.
	MetricsSampleLimit string
	// MetricsRemoteWrite are remote-write receivers (repeatable).
	MetricsRemoteWrite []string

	// Alerting (issue 16).
	// RuleFiles are globs of Prometheus rule files (repeatable).
	RuleFiles []string
	// AlertConfig is an Alertmanager configuration file (route,
	// receivers, inhibit_rules); empty: Pave's default (no receivers).
	AlertConfig string
	// Alertmanagers are external Alertmanager URLs every alert goes to.
	Alertmanagers []string
	// AlertOutboxRetention is how long the alert outbox keeps a
	// notification it could not deliver, or one a receiver refused.
	AlertOutboxRetention time.Duration
	// Runners (issue 19): the GitHub webhook's shared secret.
	GitHubWebhookSecret string

	// State store and leader election (issue 21).
	// StateStore is "sqlite" (DATA_DIR/state.db) or a postgres:// URL
	// several replicas share.
	StateStore string
	// LeaderLease bounds how long a dead leader delays its successor.
	LeaderLease time.Duration
	// ReleaseWorkers is how many releases the engine reconciles at once
	// (a whole number, 1–256; docs/release.md).
	ReleaseWorkers string
	// Runners (issue 19): the GitHub REST API the runner queue is
	// reconciled against for missed webhook events.
	GitHubAPIURL            string
	GitHubToken             string
	GitHubRepositories      []string
	GitHubReconcileInterval time.Duration
}

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		DataDir:            "./.pave",
		HTTPAddr:           "127.0.0.1:7070",
		OTLPAddr:           "127.0.0.1:4318",
		GatewayAddr:        "127.0.0.1:8080",
		LogLevel:           "info",
		Clusters:           []string{"local"},
		ShutdownTimeout:    30 * time.Second,
		TelemetryColdStore: "dir",
		TelemetryStore:     "embedded",
		OTLPRate:           "200",
		GatewayPinNetworks: []string{"127.0.0.0/8", "::1/128"},

		MetricsScrapeInterval: 15 * time.Second,
		AlertOutboxRetention:  120 * time.Hour,
		MetricsRetention:      15 * 24 * time.Hour,
		MetricsSampleLimit:    "100000",

		StateStore:              "sqlite",
		LeaderLease:             15 * time.Second,
		ReleaseWorkers:          "16",
		GitHubAPIURL:            "https://api.github.com",
		GitHubReconcileInterval: 5 * time.Minute,
	}
}

// setting binds one configuration key to its field, help and validation.
type setting struct {
	name  string // flag name and file key; env is PAVE_ + upper snake
	help  string
	value func(c *Config) any // pointer to the field
	check func(c *Config) error
}

func settings() []setting {
	return []setting{
		{"data-dir", "directory for state, telemetry and caches", func(c *Config) any { return &c.DataDir }, func(c *Config) error {
			if strings.TrimSpace(c.DataDir) == "" {
				return errors.New("must be a directory path, e.g. ./.pave")
			}
			return nil
		}},
		{"http-addr", "API and web UI listen address", func(c *Config) any { return &c.HTTPAddr }, func(c *Config) error { return checkAddr(c.HTTPAddr) }},
		{"otlp-addr", "OTLP/HTTP intake listen address", func(c *Config) any { return &c.OTLPAddr }, func(c *Config) error { return checkAddr(c.OTLPAddr) }},
		{"otlp-grpc-addr", "OTLP/gRPC intake listen address, e.g. 127.0.0.1:4317 (empty: off)", func(c *Config) any { return &c.OTLPGRPCAddr }, func(c *Config) error {
			if c.OTLPGRPCAddr == "" {
				return nil
			}
			return checkAddr(c.OTLPGRPCAddr)
		}},
		{"edge", "who splits traffic between clusters: empty (embedded edge gateway with several --clusters), istio:CLUSTER, webhook:URL or none", func(c *Config) any { return &c.Edge }, func(c *Config) error {
			kind, arg, _ := strings.Cut(c.Edge, ":")
			switch {
			case c.Edge == "" || c.Edge == "none":
				return nil
			case kind == "istio" && isDNSLabel(arg):
				return nil
			case kind == "webhook":
				u, err := url.Parse(arg)
				if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
					return nil
				}
			}
			return errors.New("want istio:CLUSTER (a registered cluster's name), webhook:http(s)://host/path, none, or empty")
		}},
		{"gateway-addr", "gateway (data plane) listen address", func(c *Config) any { return &c.GatewayAddr }, func(c *Config) error { return checkAddr(c.GatewayAddr) }},
		{"require-auth", "require API tokens even on loopback", func(c *Config) any { return &c.RequireAuth }, nil},
		{"log-level", "debug, info, warn or error", func(c *Config) any { return &c.LogLevel }, func(c *Config) error {
			switch c.LogLevel {
			case "debug", "info", "warn", "error":
				return nil
			}
			return errors.New("allowed: debug, info, warn, error")
		}},
		{"clusters", "local clusters to run in embedded mode, comma-separated", func(c *Config) any { return &c.Clusters }, func(c *Config) error {
			if len(c.Clusters) == 0 {
				return errors.New("name at least one cluster, e.g. local or a,b")
			}
			seen := map[string]bool{}
			for _, n := range c.Clusters {
				if !isDNSLabel(n) {
					return fmt.Errorf("cluster name %q must be a DNS-1123 label (lowercase letters, digits, '-')", n)
				}
				if seen[n] {
					return fmt.Errorf("cluster %q named twice", n)
				}
				seen[n] = true
			}
			return nil
		}},
		{"gateway-sticky-header", "request header whose value keeps a user on one version, e.g. X-User-Id", func(c *Config) any { return &c.GatewayStickyHeader }, func(c *Config) error {
			return checkToken(c.GatewayStickyHeader, "a header name, e.g. X-User-Id")
		}},
		{"gateway-no-event-loop", "serve every gateway connection with a goroutine instead of the Linux event loop (a fallback; slower)", func(c *Config) any { return &c.GatewayNoEventLoop }, nil},
		{"gateway-sticky-cookie", "cookie whose value keeps a user on one version, e.g. merchant_id", func(c *Config) any { return &c.GatewayStickyCookie }, func(c *Config) error {
			return checkToken(c.GatewayStickyCookie, "a cookie name, e.g. merchant_id")
		}},
		{"telemetry-cold-store", "where old telemetry goes: dir, dir:/abs/path or s3://bucket/prefix?endpoint=host:port&insecure=1 (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)", func(c *Config) any { return &c.TelemetryColdStore }, func(c *Config) error {
			_, err := telemetry.ParseColdStore(c.TelemetryColdStore)
			if err != nil {
				// The error repeats the value; never with a secret in it.
				c.TelemetryColdStore = telemetry.RedactColdStore(c.TelemetryColdStore)
			}
			return err
		}},
		{"telemetry-store", "where logs and spans are kept: embedded, or victorialogs://host:port[,host:port][?flush-interval=5s] (a VictoriaLogs node or cluster)", func(c *Config) any { return &c.TelemetryStore }, func(c *Config) error {
			if c.TelemetryStore == "embedded" {
				return nil
			}
			_, err := vlstore.ParseURL(c.TelemetryStore)
			if err != nil {
				c.TelemetryStore = vlstore.Redact(c.TelemetryStore) // the error repeats the value
			}
			return err
		}},
		// The fleet of services (issue 22).
		{"fleet-file", "fleet.yaml listing the service repositories for the services page (GET /api/v1/fleet/services); empty turns the page off", func(c *Config) any { return &c.FleetFile }, nil},
		{"vulndb", "Go vulnerability database (a directory or URL) the services page scans against; empty skips the scan", func(c *Config) any { return &c.VulnDB }, nil},
		// Security settings (issue 12), kept together.
		{"http-allowed-hosts", "Host names the API and UI answer to besides localhost, 127.0.0.1 and [::1], comma-separated (* for any, behind a proxy that checks Host)", func(c *Config) any { return &c.HTTPAllowedHosts }, nil},
		{"run-roots", "directories (separated like PATH) under which spec.source and spec.binary may point (default: the directory pave up starts in and the data directory)", func(c *Config) any { return &c.RunRoots }, nil},
		{"tls-cert", "TLS certificate file (PEM) for the API, UI and OTLP receivers; reloaded when it changes", func(c *Config) any { return &c.TLSCert }, func(c *Config) error {
			if (c.TLSCert == "") != (c.TLSKey == "") {
				return errors.New("give both --tls-cert and --tls-key, or neither")
			}
			return nil
		}},
		{"tls-key", "TLS private key file (PEM) matching --tls-cert", func(c *Config) any { return &c.TLSKey }, nil},
		{"tls-client-ca", "CA file (PEM): require client certificates signed by it (needs --tls-cert)", func(c *Config) any { return &c.TLSClientCA }, func(c *Config) error {
			if c.TLSClientCA != "" && c.TLSCert == "" {
				return errors.New("client certificates need TLS: give --tls-cert and --tls-key too")
			}
			return nil
		}},
		{"insecure-http", "allow plain HTTP on a non-loopback address (tokens and kubeconfigs then cross the network in clear)", func(c *Config) any { return &c.InsecureHTTP }, nil},
		{"otlp-rate", "requests per second each ingest token may send to the OTLP receivers off loopback", func(c *Config) any { return &c.OTLPRate }, func(c *Config) error {
			if n, err := strconv.Atoi(c.OTLPRate); err != nil || n <= 0 {
				return errors.New("must be a positive whole number of requests per second, e.g. 200")
			}
			return nil
		}},
		// gateway (GW): who may choose a version.
		{"gateway-pin-networks", "client networks (CIDR, comma-separated) whose gateway requests may pin a version with X-Pave-Version or stick to one; none for none (others need a tester token in X-Pave-Tester-Token)", func(c *Config) any { return &c.GatewayPinNetworks }, func(c *Config) error {
			_, err := c.PinNetworks()
			return err
		}},
		// Metrics store (issue 15), kept together.
		{"metrics-scrape-interval", "how often the metrics store scrapes every service instance, gateway and Pave itself", func(c *Config) any { return &c.MetricsScrapeInterval }, func(c *Config) error {
			if c.MetricsScrapeInterval < time.Second {
				return errors.New("must be at least 1s, e.g. 15s")
			}
			return nil
		}},
		{"metrics-retention", "how long the metrics store keeps series", func(c *Config) any { return &c.MetricsRetention }, func(c *Config) error {
			if c.MetricsRetention < time.Hour {
				return errors.New("must be at least 1h, e.g. 360h for 15 days")
			}
			return nil
		}},
		{"metrics-retention-size", "largest size of the metrics store on disk (blocks and WAL), e.g. 10GB or 512MiB; empty: no bound", func(c *Config) any { return &c.MetricsRetentionSize }, func(c *Config) error {
			_, err := c.MetricsRetentionBytes()
			return err
		}},
		{"metrics-sample-limit", "most samples one scrape of one target may return; more marks the target down and keeps none of that scrape", func(c *Config) any { return &c.MetricsSampleLimit }, func(c *Config) error {
			if n, err := strconv.Atoi(c.MetricsSampleLimit); err != nil || n <= 0 {
				return errors.New("must be a positive whole number, e.g. 100000")
			}
			return nil
		}},
		{"metrics-remote-write", "remote-write receiver URL every scraped sample is also sent to, e.g. http://prometheus:9090/api/v1/write (repeat the flag or separate with commas for several)", func(c *Config) any { return &c.MetricsRemoteWrite }, func(c *Config) error {
			for _, u := range c.MetricsRemoteWrite {
				if err := checkRemoteWriteURL(u); err != nil {
					return fmt.Errorf("%q: %w", u, err)
				}
			}
			return nil
		}},
		// Alerting (issue 16), kept together.
		{"rule-files", "Prometheus rule files (globs, repeat the flag or separate with commas), re-read on change, e.g. ./rules/*.yaml", func(c *Config) any { return &c.RuleFiles }, func(c *Config) error {
			for _, g := range c.RuleFiles {
				if _, err := filepath.Match(g, ""); err != nil {
					return fmt.Errorf("%q is not a valid glob: %w", g, err)
				}
			}
			return nil
		}},
		{"alert-config", "Alertmanager configuration file (route, receivers, inhibit_rules, templates) for the embedded Alertmanager; empty: no receivers but the UI and CLI", func(c *Config) any { return &c.AlertConfig }, func(c *Config) error {
			if c.AlertConfig == "" {
				return nil
			}
			if _, err := os.Stat(c.AlertConfig); err != nil {
				return fmt.Errorf("cannot read %s: %w", c.AlertConfig, err)
			}
			return nil
		}},
		{"alertmanagers", "external Alertmanager URLs every alert is also sent to over API v2, e.g. http://alertmanager:9093 (repeat the flag or separate with commas)", func(c *Config) any { return &c.Alertmanagers }, func(c *Config) error {
			for _, raw := range c.Alertmanagers {
				u, err := url.Parse(raw)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("%q is not an Alertmanager URL; want http(s)://HOST:PORT, e.g. http://alertmanager:9093", raw)
				}
			}
			return nil
		}},
		{"alert-outbox-retention", "how long the alert outbox retries a notification a receiver has not accepted (then it is dropped, logged and listed as expired), and keeps one a receiver refused", func(c *Config) any { return &c.AlertOutboxRetention }, func(c *Config) error {
			if c.AlertOutboxRetention < time.Minute {
				return errors.New("must be at least 1m, e.g. 120h")
			}
			return nil
		}},
		{"shutdown-timeout", "how long a graceful stop may take", func(c *Config) any { return &c.ShutdownTimeout }, func(c *Config) error {
			if c.ShutdownTimeout <= 0 {
				return errors.New("must be a positive duration, e.g. 30s")
			}
			return nil
		}},
		// build cache (issue 17): the shared Go build cache.
		{"cache-addr", "serve the shared Go build cache (GOCACHEPROG=\"pave cache gocacheprog\") on this address, e.g. 127.0.0.1:7077 (empty: off; off loopback, API tokens are required: deployer and admin write, viewer reads)", func(c *Config) any { return &c.CacheAddr }, func(c *Config) error {
			if c.CacheAddr == "" {
				return nil
			}
			return checkAddr(c.CacheAddr)
		}},
		{"cache-max-size", "bound of the build cache's disk tier (least recently used go first), e.g. 10GiB", func(c *Config) any { return &c.CacheMaxSize }, func(c *Config) error {
			if c.CacheMaxSize == "" {
				return nil
			}
			_, err := ParseSize(c.CacheMaxSize)
			return err
		}},
		{"cache-shared-store", "optional shared tier of the build cache: dir:/abs/path or s3://bucket/prefix?endpoint=host:port&insecure=1 (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)", func(c *Config) any { return &c.CacheSharedStore }, func(c *Config) error {
			if c.CacheSharedStore == "" {
				return nil
			}
			_, err := telemetry.ParseColdStore(c.CacheSharedStore)
			return err
		}},

		// runners (issue 19)
		{"github-webhook-secret", "secret of the GitHub workflow_job webhook at POST /hooks/github (X-Hub-Signature-256); prefer PAVE_GITHUB_WEBHOOK_SECRET to a flag; empty: every delivery is refused", func(c *Config) any { return &c.GitHubWebhookSecret }, func(c *Config) error {
			if c.GitHubWebhookSecret != "" && len(c.GitHubWebhookSecret) < 16 {
				return errors.New("must be at least 16 characters (e.g. openssl rand -hex 20), or empty to refuse every delivery")
			}
			return nil
		}},

		// state store and leader election (issue 21)
		{"state-store", "where the control plane's state lives: sqlite (DATA_DIR/state.db, one replica) or postgres://USER@HOST:PORT/DB?sslmode=verify-full (several replicas, one leader; password from PGPASSWORD or ~/.pgpass rather than the URL)", func(c *Config) any { return &c.StateStore }, func(c *Config) error {
			err := state.CheckSetting(c.StateStore)
			if err != nil {
				// The error repeats the value; never with a password in it.
				c.StateStore = state.Describe(c.StateStore)
			}
			return err
		}},
		{"leader-lease", "how long a dead leader delays its successor: the leader renews its lease every fifth of it, a standby takes over within it", func(c *Config) any { return &c.LeaderLease }, func(c *Config) error {
			if c.LeaderLease < 3*time.Second || c.LeaderLease > 5*time.Minute {
				return errors.New("must be between 3s and 5m, e.g. 15s")
			}
			return nil
		}},
		{"release-workers", "how many releases the leader reconciles at once (releases of one service always one at a time); with a postgres:// state-store keep the URL's pool_max_conns above it", func(c *Config) any { return &c.ReleaseWorkers }, func(c *Config) error {
			if n, err := strconv.Atoi(c.ReleaseWorkers); err != nil || n < 1 || n > 256 {
				return errors.New("must be a whole number from 1 to 256, e.g. 16")
			}
			return nil
		}},
		{"github-api-url", "GitHub REST API the runner queue is reconciled against (GitHub Enterprise Server: https://HOST/api/v3)", func(c *Config) any { return &c.GitHubAPIURL }, func(c *Config) error {
			u, err := url.Parse(c.GitHubAPIURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return errors.New("want an http(s) URL such as https://api.github.com")
			}
			return nil
		}},
		{"github-token", "token for the GitHub REST API (Actions: read on the repositories); prefer PAVE_GITHUB_TOKEN to a flag", func(c *Config) any { return &c.GitHubToken }, nil},
		{"github-repositories", "repositories whose queued and running jobs are reconciled with the runner queue, OWNER/NAME or OWNER/* (an organisation's), comma-separated; empty: webhooks only", func(c *Config) any { return &c.GitHubRepositories }, func(c *Config) error {
			return runners.CheckRepos(c.GitHubRepositories)
		}},
		{"github-reconcile-interval", "how often the runner queue is reconciled with the GitHub REST API (each pass lists the queued and running runs of every repository)", func(c *Config) any { return &c.GitHubReconcileInterval }, func(c *Config) error {
			if c.GitHubReconcileInterval < 10*time.Second {
				return errors.New("want 10s or more (GitHub allows 5,000 requests an hour per token)")
			}
			return nil
		}},
	}
}

// EnvName is the environment variable of a setting.
func EnvName(name string) string {
	return "PAVE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Loader binds flags and resolves a Config.
type Loader struct {
	flags *pflag.FlagSet
	cfg   Config
	file  string
}

// Bind registers a flag for every setting, plus --config, on fs.
func Bind(fs *pflag.FlagSet) *Loader {
	l := &Loader{flags: fs, cfg: Default()}
	fs.StringVar(&l.file, "config", "", "settings file (default ./pave.yaml when present; env PAVE_CONFIG)")
	for _, s := range settings() {
		help := s.help + " (env " + EnvName(s.name) + ")"
		switch p := s.value(&l.cfg).(type) {
		case *string:
			fs.StringVar(p, s.name, *p, help)
		case *bool:
			fs.BoolVar(p, s.name, *p, help)
		case *[]string:
			fs.StringSliceVar(p, s.name, *p, help)
		case *time.Duration:
			fs.DurationVar(p, s.name, *p, help)
		}
	}
	return l
}

// Load resolves the configuration: defaults < file < env < flags.
func (l *Loader) Load(getenv func(string) string) (Config, error) {
	cfg := Default()
	file := l.file
	if file == "" {
		file = getenv("PAVE_CONFIG")
	}
	explicit := file != ""
	if file == "" {
		file = "pave.yaml"
	}
	fromFile := map[string]bool{}
	if b, err := os.ReadFile(file); err == nil {
		var raw map[string]any
		if err := yaml.Unmarshal(b, &raw); err != nil {
			return cfg, fmt.Errorf("settings file %s: %w", file, err)
		}
		known := map[string]setting{}
		for _, s := range settings() {
			known[s.name] = s
		}
		for k, v := range raw {
			s, ok := known[k]
			if !ok {
				return cfg, fmt.Errorf("settings file %s: unknown setting %q (known: %s)", file, k, strings.Join(names(), ", "))
			}
			if err := assign(s.value(&cfg), v); err != nil {
				return cfg, fmt.Errorf("invalid setting %s (from %s): %v", k, file, err)
			}
			fromFile[k] = true
		}
	} else if explicit || !errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("settings file %s: %w", file, err)
	}
	source := map[string]string{}
	for _, s := range settings() {
		if fromFile[s.name] {
			source[s.name] = file
		}
		if v := getenv(EnvName(s.name)); v != "" {
			if err := assign(s.value(&cfg), v); err != nil {
				return cfg, fmt.Errorf("invalid setting %s (from %s): %v", s.name, EnvName(s.name), err)
			}
			source[s.name] = EnvName(s.name)
		}
		if l.flags != nil && l.flags.Changed(s.name) {
			copyField(s.value(&cfg), s.value(&l.cfg))
			source[s.name] = "--" + s.name
		}
	}
	for _, s := range settings() {
		if s.check == nil {
			continue
		}
		if err := s.check(&cfg); err != nil {
			from := source[s.name]
			if from == "" {
				from = "default"
			}
			return cfg, fmt.Errorf("invalid setting %s (from %s): %s: %v", s.name, from, show(s.value(&cfg)), err)
		}
	}
	return cfg, nil
}

func names() []string {
	var out []string
	for _, s := range settings() {
		out = append(out, s.name)
	}
	return out
}

func assign(dst any, v any) error {
	str := fmt.Sprint(v)
	switch p := dst.(type) {
	case *string:
		*p = str
	case *bool:
		b, err := strconv.ParseBool(str)
		if err != nil {
			return fmt.Errorf("%q: want true or false", str)
		}
		*p = b
	case *[]string:
		switch vv := v.(type) {
		case []any:
			*p = nil
			for _, e := range vv {
				*p = append(*p, strings.TrimSpace(fmt.Sprint(e)))
			}
		default:
			*p = nil
			for _, e := range strings.Split(str, ",") {
				*p = append(*p, strings.TrimSpace(e))
			}
		}
	case *time.Duration:
		d, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("%q: want a duration such as 30s or 2m", str)
		}
		*p = d
	}
	return nil
}

func copyField(dst, src any) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *bool:
		*d = *src.(*bool)
	case *[]string:
		*d = append([]string(nil), *src.(*[]string)...)
	case *time.Duration:
		*d = *src.(*time.Duration)
	}
}

func show(p any) string {
	switch v := p.(type) {
	case *string:
		return strconv.Quote(*v)
	case *[]string:
		return strconv.Quote(strings.Join(*v, ","))
	case *time.Duration:
		return v.String()
	case *bool:
		return strconv.FormatBool(*v)
	}
	return fmt.Sprint(p)
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:7070 (use 0.0.0.0:PORT to listen on all interfaces)")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q must be a number from 0 to 65535", port)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("host %q must be an IP address or localhost", host)
	}
	return nil
}

// IsLoopback reports whether addr listens only on the loopback interface.
func IsLoopback(addr string) bool { return netaddr.IsLoopback(addr) }

func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return false
		}
	}
	return true
}

// checkToken accepts an empty value or an HTTP token (RFC 9110), which
// header and cookie names must be.
func checkToken(v, want string) error {
	for _, c := range v {
		if c > 0x7e || c <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return fmt.Errorf("character %q is not allowed; want %s", c, want)
		}
	}
	return nil
}
