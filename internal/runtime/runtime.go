// Package runtime is the runtime-target seam: run version V of service S
// with N replicas, scale it, remove it, and report its health and
// endpoints. The local provider (local.go) runs service binaries as
// supervised processes on this machine; a Kubernetes provider follows the
// same interface.
//
// Targets are level-triggered: Deploy and Remove record the desired state
// in the state store first, and a reconcile loop makes the running
// instances match it, so a restarted control plane resumes from what is
// stored, never from memory.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Target runs versions of services.
type Target interface {
	// Deploy makes d run; deploying the same d again changes nothing.
	Deploy(ctx context.Context, d Deployment) error
	// Remove stops every instance of a version and forgets it. It returns
	// an error wrapping ErrNotFound when the version is not deployed.
	Remove(ctx context.Context, service, version string) error
	// Status reports one version's desired and observed state.
	Status(ctx context.Context, service, version string) (Status, error)
	// List reports every deployed version, ordered by service and version.
	List(ctx context.Context) ([]Status, error)
}

// EndpointSink receives the addresses ("127.0.0.1:PORT") of a version's
// ready instances whenever they change; an empty slice removes the
// version. The embedded gateway implements it.
type EndpointSink interface {
	SetEndpoints(service, version string, endpoints []string)
}

// OutputSink receives each line a service instance writes to stdout or
// stderr (stream "stdout" or "stderr"), e.g. for the telemetry intake. Line
// must not keep line after it returns.
type OutputSink interface {
	Line(service, version, instance, stream string, line []byte)
}

// Deployment is one version of a service a target must run. Exactly one of
// Source, Binary and Image is set.
type Deployment struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// Source is a directory holding the main package of the service; the
	// local target builds it with `go build`.
	Source string `json:"source,omitempty"`
	// Binary is the path of an executable built already.
	Binary string `json:"binary,omitempty"`
	// Image is an OCI image reference (Kubernetes targets only).
	Image    string `json:"image,omitempty"`
	Replicas int    `json:"replicas"`
	// Env is added to each instance's environment; the variables the
	// runtime sets itself (PORT, PAVE_*, ...) cannot be overridden.
	Env map[string]string `json:"env,omitempty"`
	// ReadinessPath is polled with HTTP GET until it answers 2xx before an
	// instance receives traffic; default /readyz.
	ReadinessPath string `json:"readiness_path,omitempty"`
}

// DefaultReadinessPath is the readiness endpoint kit serves.
const DefaultReadinessPath = "/readyz"

// MaxReplicas bounds replicas on one machine; more is almost certainly a
// typo.
const MaxReplicas = 64

// Instance states.
const (
	StateStarting  = "starting"  // process started, not ready yet
	StateReady     = "ready"     // readiness passed: receives traffic
	StateUnhealthy = "unhealthy" // was ready, readiness now fails
	StateBackoff   = "backoff"   // exited; waiting to restart
	StateStopping  = "stopping"
)

// Status is the desired and observed state of one version.
type Status struct {
	// Cluster names the cluster when a control plane runs several.
	Cluster  string `json:"cluster,omitempty"`
	Service  string `json:"service"`
	Version  string `json:"version"`
	Replicas int    `json:"replicas"` // desired
	Ready    int    `json:"ready"`
	// Artifact is what runs: the built or copied binary.
	Artifact  string     `json:"artifact,omitempty"`
	Source    string     `json:"source,omitempty"`
	Binary    string     `json:"binary,omitempty"`
	Instances []Instance `json:"instances"`
	// Endpoints are the addresses of ready instances, as announced.
	Endpoints []string  `json:"endpoints"`
	Deployed  time.Time `json:"deployed"`
}

// Instance is one supervised replica.
type Instance struct {
	Name      string `json:"name"` // SERVICE-VERSION-SLOT
	Slot      int    `json:"slot"`
	State     string `json:"state"`
	PID       int    `json:"pid,omitempty"`
	Port      int    `json:"port,omitempty"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
	// ExitCode is the last exit status of the instance's process (0 when
	// none was seen); -1 when a signal ended it.
	ExitCode int       `json:"exit_code,omitempty"`
	Started  time.Time `json:"started,omitempty"`
	Adopted  bool      `json:"adopted,omitempty"`
	LogDir   string    `json:"log_dir,omitempty"`
}

// ErrInvalid marks a deployment that was refused; ErrNotFound a version
// that is not deployed.
var (
	ErrInvalid  = errors.New("invalid deployment")
	ErrNotFound = errors.New("not deployed")
)

// FieldError names the field of a Deployment that was refused.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}

// Names become directory names and DNS labels (SERVICE.localhost), so they
// are restricted to what both accept: no '/', no "..", nothing hidden.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ValidName checks a service or version name.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) || strings.Contains(name, "..") {
		return invalid(kind, "%s name %q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit", kind, name)
	}
	return nil
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedEnv are set by the runtime for every instance.
var reservedEnv = map[string]bool{
	"PORT": true, "HOST": true, "PAVE_SERVICE": true, "PAVE_VERSION": true, "PAVE_CLUSTER": true,
	"PAVE_DATACENTER": true, "PAVE_INSTANCE": true, "OTEL_EXPORTER_OTLP_ENDPOINT": true, "KIT_SPOOL_DIR": true,
}

// Validate checks d without touching the file system; providers check
// paths and artifacts themselves.
func (d Deployment) Validate() error {
	if err := ValidName("service", d.Service); err != nil {
		return err
	}
	if err := ValidName("version", d.Version); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{d.Source, d.Binary, d.Image} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return invalid("source", "give exactly one of source (a directory to build), binary (an executable) or image (Kubernetes only); got %d", n)
	}
	for field, p := range map[string]string{"source": d.Source, "binary": d.Binary} {
		if p != "" && !filepath.IsAbs(p) {
			return invalid(field, "path %q must be absolute (the CLI makes it so)", p)
		}
		if strings.ContainsRune(p, 0) {
			return invalid(field, "path contains a NUL byte")
		}
	}
	if d.Replicas < 0 || d.Replicas > MaxReplicas {
		return invalid("replicas", "%d: want 0 to %d (0 keeps the version deployed with no instance)", d.Replicas, MaxReplicas)
	}
	keys := make([]string, 0, len(d.Env))
	for k := range d.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case !envKeyRE.MatchString(k):
			return invalid("env."+k, "variable name must be letters, digits and '_', not starting with a digit")
		case reservedEnv[k]:
			return invalid("env."+k, "set by the runtime itself; it cannot be overridden")
		case strings.ContainsRune(d.Env[k], 0):
			return invalid("env."+k, "value contains a NUL byte")
		}
	}
	if p := d.ReadinessPath; p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n\t#")) {
		return invalid("readiness_path", "%q: want an absolute URL path such as /readyz", p)
	}
	return nil
}

func (d Deployment) readinessPath() string {
	if d.ReadinessPath == "" {
		return DefaultReadinessPath
	}
	return d.ReadinessPath
}

func key(service, version string) string { return service + "/" + version }

// SortStatuses orders statuses by service, then version, as List reports
// them.
func SortStatuses(sts []Status) {
	sort.SliceStable(sts, func(i, j int) bool {
		if sts[i].Service != sts[j].Service {
			return sts[i].Service < sts[j].Service
		}
		return sts[i].Version < sts[j].Version
	})
}
