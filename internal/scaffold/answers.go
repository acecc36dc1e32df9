package scaffold

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Answers are the questions a service's repository was generated from. They
// are recorded in .pave.yaml so `pave upgrade` can render the same service at
// another template version.
type Answers struct {
	// Name is the service's name: a DNS-1035 label (a DNS-1123 label that
	// starts with a letter), because Kubernetes Service names must be.
	Name string `json:"name"`
	// Module is the Go module path; default example.com/<owner>/<name>.
	Module string `json:"module,omitempty"`
	// Domain is the DNS domain the service is reached under as <name>.<domain>.
	Domain string `json:"domain,omitempty"`
	// Owner is the owning team, a DNS-1123 label (used as a label and namespace).
	Owner string `json:"owner,omitempty"`
	// Memory is the container's memory request and limit, a Kubernetes quantity.
	Memory string `json:"memory,omitempty"`
	// CPU is the container's CPU request, a Kubernetes quantity.
	CPU string `json:"cpu,omitempty"`
	// MinReplicas and MaxReplicas bound the HorizontalPodAutoscaler.
	MinReplicas int `json:"minReplicas,omitempty"`
	MaxReplicas int `json:"maxReplicas,omitempty"`
	// Clusters get one kustomize overlay each.
	Clusters []string `json:"clusters,omitempty"`
	// Registry is where CI pushes the image, without the service's name.
	Registry string `json:"registry,omitempty"`
	// PaveServer is the URL of the Pave control plane CI releases through.
	PaveServer string `json:"paveServer,omitempty"`
	// AvailabilityObjective is the percentage of requests that must not fail.
	AvailabilityObjective string `json:"availabilityObjective,omitempty"`
	// LatencyObjective is the percentage of requests that must finish within
	// LatencyThreshold, which must be one of kit's histogram bucket bounds.
	LatencyObjective string `json:"latencyObjective,omitempty"`
	LatencyThreshold string `json:"latencyThreshold,omitempty"`
	// GoVersion is the go line of go.mod and the builder image's tag.
	GoVersion string `json:"goVersion,omitempty"`
	// KitVersion is the required version of Pave's kit module.
	KitVersion string `json:"kitVersion,omitempty"`
	// KitReplace, when set, is a local kit checkout go.mod replaces kit with.
	KitReplace string `json:"kitReplace,omitempty"`
}

// Defaults of the answers nobody gave.
const (
	DefaultDomain     = "example.com"
	DefaultOwner      = "platform"
	DefaultMemory     = "256Mi"
	DefaultCPU        = "100m"
	DefaultRegistry   = "ghcr.io/example"
	DefaultPaveServer = "https://pave.example.com"
	DefaultGoVersion  = "1.26.10" // see docs/security.md, "Toolchain policy"
	// DefaultKitVersion is the released kit a service requires when it is
	// not built against a local checkout.
	DefaultKitVersion = "v0.1.0"
	KitModule         = "github.com/pave-platform/pave/kit"
)

// DefaultClusters are the two clusters Pave runs services in, active-active.
var DefaultClusters = []string{"dc1", "dc2"}

// kitLatencyBounds are kit's request duration histogram bounds in seconds;
// a latency SLO threshold must be one of them so the rules can read it from
// a single bucket.
var kitLatencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// FieldError names the answer that was wrong, so the CLI can point at the
// flag or the answers file key.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// WithDefaults returns a copy with every empty answer set to its default.
func (a Answers) WithDefaults() Answers {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&a.Domain, DefaultDomain)
	def(&a.Owner, DefaultOwner)
	def(&a.Memory, DefaultMemory)
	def(&a.CPU, DefaultCPU)
	def(&a.Registry, DefaultRegistry)
	def(&a.PaveServer, DefaultPaveServer)
	def(&a.AvailabilityObjective, "99.9")
	def(&a.LatencyObjective, "99")
	def(&a.LatencyThreshold, "250ms")
	def(&a.GoVersion, DefaultGoVersion)
	def(&a.KitVersion, DefaultKitVersion)
	if a.Module == "" && a.Name != "" {
		a.Module = "example.com/" + a.Owner + "/" + a.Name
	}
	if a.MinReplicas == 0 {
		a.MinReplicas = 2
	}
	if a.MaxReplicas == 0 {
		a.MaxReplicas = max(10, a.MinReplicas)
	}
	if len(a.Clusters) == 0 {
		a.Clusters = append([]string(nil), DefaultClusters...)
	}
	return a
}

var (
	modulePathRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9](/[A-Za-z0-9._~-]+)+$`)
	goVersionRE  = regexp.MustCompile(`^1\.[0-9]+(\.[0-9]+)?$`)
	semverRE     = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	registryRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
	serverRE     = regexp.MustCompile(`^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$`)
)

// Validate checks every answer (after WithDefaults) and returns the first
// problem as a *FieldError naming the answer.
func (a Answers) Validate() error {
	if a.Name == "" {
		return fieldErr("name", "missing: give the service's name, e.g. orders")
	}
	if msgs := validation.IsDNS1035Label(a.Name); len(msgs) > 0 {
		return fieldErr("name", "%q is not a DNS-1123 label starting with a letter (Kubernetes Service names must be): %s", a.Name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(a.Owner); len(msgs) > 0 {
		return fieldErr("owner", "%q is not a DNS-1123 label (it becomes a label and the namespace): %s", a.Owner, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(a.Domain); len(msgs) > 0 {
		return fieldErr("domain", "%q is not a DNS domain: %s", a.Domain, strings.Join(msgs, "; "))
	}
	if !modulePathRE.MatchString(a.Module) || strings.Contains(a.Module, "..") {
		return fieldErr("module", "%q is not a Go module path like example.com/team/%s", a.Module, a.Name)
	}
	mem, err := resource.ParseQuantity(a.Memory)
	if err != nil {
		return fieldErr("memory", "%q is not a Kubernetes quantity (e.g. 512Mi, 1Gi): %v", a.Memory, err)
	}
	if mem.Cmp(resource.MustParse("16Mi")) < 0 {
		return fieldErr("memory", "%s is below 16Mi, too little for a Go service; use e.g. 256Mi", a.Memory)
	}
	cpu, err := resource.ParseQuantity(a.CPU)
	if err != nil {
		return fieldErr("cpu", "%q is not a Kubernetes quantity (e.g. 100m, 1): %v", a.CPU, err)
	}
	if cpu.Sign() <= 0 {
		return fieldErr("cpu", "%s: want more than 0", a.CPU)
	}
	if a.MinReplicas < 1 {
		return fieldErr("minReplicas", "%d: want at least 1", a.MinReplicas)
	}
	if a.MaxReplicas < a.MinReplicas {
		return fieldErr("maxReplicas", "%d is below minReplicas %d", a.MaxReplicas, a.MinReplicas)
	}
	seen := map[string]bool{}
	for i, c := range a.Clusters {
		field := fmt.Sprintf("clusters[%d]", i)
		if msgs := validation.IsDNS1123Label(c); len(msgs) > 0 {
			return fieldErr(field, "%q is not a DNS-1123 label (it names the overlay directory): %s", c, strings.Join(msgs, "; "))
		}
		if seen[c] {
			return fieldErr(field, "%q is listed twice", c)
		}
		seen[c] = true
	}
	if !registryRE.MatchString(a.Registry) {
		return fieldErr("registry", "%q is not an image repository prefix like ghcr.io/acme", a.Registry)
	}
	if !serverRE.MatchString(a.PaveServer) {
		return fieldErr("paveServer", "%q is not an http(s) URL like https://pave.example.com", a.PaveServer)
	}
	for _, o := range []struct{ field, v string }{{"availabilityObjective", a.AvailabilityObjective}, {"latencyObjective", a.LatencyObjective}} {
		f, err := strconv.ParseFloat(o.v, 64)
		if err != nil || f <= 0 || f >= 100 {
			return fieldErr(o.field, "%q: want a percentage above 0 and below 100, e.g. 99.9", o.v)
		}
	}
	if _, err := a.latencyBucket(); err != nil {
		return err
	}
	if !goVersionRE.MatchString(a.GoVersion) {
		return fieldErr("goVersion", "%q is not a Go version like %s", a.GoVersion, DefaultGoVersion)
	}
	if !semverRE.MatchString(a.KitVersion) {
		return fieldErr("kitVersion", "%q is not a semantic version like %s", a.KitVersion, DefaultKitVersion)
	}
	if a.KitReplace != "" && (strings.ContainsAny(a.KitReplace, "\n\r") || strings.TrimSpace(a.KitReplace) != a.KitReplace) {
		return fieldErr("kitReplace", "%q is not a usable directory path", a.KitReplace)
	}
	return nil
}

// latencyBucket returns the threshold as kit's bucket label ("0.25").
func (a Answers) latencyBucket() (string, error) {
	d, err := time.ParseDuration(a.LatencyThreshold)
	if err != nil {
		return "", fieldErr("latencyThreshold", "%q is not a duration like 250ms", a.LatencyThreshold)
	}
	var bounds []string
	for _, b := range kitLatencyBounds {
		if time.Duration(b*float64(time.Second)) == d {
			return strconv.FormatFloat(b, 'f', -1, 64), nil
		}
		bounds = append(bounds, time.Duration(b*float64(time.Second)).String())
	}
	return "", fieldErr("latencyThreshold", "%s is not one of kit's latency histogram bounds (%s): pick the nearest", a.LatencyThreshold, strings.Join(bounds, ", "))
}

// ParseAnswers reads an answers file (YAML or JSON with the keys of Answers).
// Unknown keys are errors, so a typo does not silently fall back to a default.
func ParseAnswers(data []byte) (Answers, error) {
	var a Answers
	if len(bytes.TrimSpace(data)) == 0 {
		return a, errors.New("empty answers file: want YAML keys such as name, owner, memory")
	}
	if err := yaml.UnmarshalStrict(data, &a); err != nil {
		return Answers{}, fmt.Errorf("answers: %w", err)
	}
	return a, nil
}
