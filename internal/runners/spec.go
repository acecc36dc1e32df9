// Package runners scales pools of CI runners by time of day and by queue.
//
// A RunnerPool (apiVersion pave.dev/v1alpha1) declares a pool's bounds,
// its schedules (cron windows with a floor and warm headroom), its idle
// scale-down time and a daily runner-hours budget. One pure function,
// Desire, turns what the pool sees (time, queue, busy runners, hours
// spent) into the number of runners it wants; the live controller and
// the simulation in bench/runners both call it, so what the benchmark
// measures is what runs.
package runners

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// APIVersion and Kind identify a RunnerPool document.
const (
	APIVersion = "pave.dev/v1alpha1"
	Kind       = "RunnerPool"
)

// ErrInvalid marks a RunnerPool that cannot be applied.
var ErrInvalid = errors.New("invalid RunnerPool")

// RunnerPool is the CRD-shaped document kept in the platform's Git
// repository and applied with `pave runners apply -f FILE`.
type RunnerPool struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names the pool.
type Metadata struct {
	Name string `json:"name"`
}

// Spec is what the pool wants.
type Spec struct {
	// Labels are the runner labels jobs ask for (runs-on); a job is the
	// pool's when every label it asks for is here.
	Labels []string `json:"labels"`
	// Min and Max bound the number of runners at every moment.
	Min int `json:"min"`
	Max int `json:"max"`
	// Target is where runners run: exactly one of local or kubernetes.
	Target TargetSpec `json:"target"`
	// Schedules raise the pool during cron windows.
	Schedules []Schedule `json:"schedules,omitempty"`
	// QueueScaleUp starts a runner for every queued job (default true).
	QueueScaleUp *bool `json:"queueScaleUp,omitempty"`
	// IdleTimeout is how long a runner sits idle before it may be
	// stopped when the pool wants fewer (default 10m).
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
	// RunnerHoursPerDay caps warm capacity: once today's runner-hours
	// (in BudgetTimeZone's day) reach it, schedules and spare stop
	// counting and only queued and running jobs get runners. 0: no cap.
	RunnerHoursPerDay float64 `json:"runnerHoursPerDay,omitempty"`
	// BudgetTimeZone is the IANA zone whose midnight starts a budget day
	// (default UTC).
	BudgetTimeZone string `json:"budgetTimeZone,omitempty"`
	// QueueWaitTarget is the p95 queue wait `pave runners suggest` aims
	// for (default 30s).
	QueueWaitTarget Duration `json:"queueWaitTarget,omitempty"`

	budgetLoc *time.Location
}

// Target says where the pool's runners run.
type TargetSpec struct {
	Local      *LocalTarget      `json:"local,omitempty"`
	Kubernetes *KubernetesTarget `json:"kubernetes,omitempty"`
}

// LocalTarget runs runners as processes on the control plane's machine.
type LocalTarget struct {
	// Command starts one runner (argv; default: a placeholder that
	// sleeps, so the embedded default can demonstrate scaling).
	Command []string `json:"command,omitempty"`
}

// KubernetesTarget sets the runner count of an ARC AutoscalingRunnerSet
// or of a plain Deployment of runners (exactly one).
type KubernetesTarget struct {
	Cluster              string `json:"cluster"`
	AutoscalingRunnerSet string `json:"autoscalingRunnerSet,omitempty"` // namespace/name
	Deployment           string `json:"deployment,omitempty"`           // namespace/name
}

// String names the target for the status: local, or
// kubernetes CLUSTER autoscalingRunnerSet|deployment NS/NAME.
func (t TargetSpec) String() string {
	switch k := t.Kubernetes; {
	case k != nil && k.Deployment != "":
		return "kubernetes " + k.Cluster + " deployment " + k.Deployment
	case k != nil:
		return "kubernetes " + k.Cluster + " autoscalingRunnerSet " + k.AutoscalingRunnerSet
	}
	return "local"
}

// Schedule is a cron window: from each time the cron expression fires
// (in TimeZone) for Duration, the pool keeps at least Min runners and
// Spare idle runners on top of the busy and queued ones.
type Schedule struct {
	Cron     string   `json:"cron"`
	TimeZone string   `json:"timeZone,omitempty"`
	Duration Duration `json:"duration"`
	Min      int      `json:"min,omitempty"`
	Spare    int      `json:"spare,omitempty"`

	sched cron.Schedule
	loc   *time.Location
}

// Duration is a time.Duration written as "10m", "1h30m".
type Duration struct{ time.Duration }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"10m\" or \"1h30m\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"10m\" or \"1h30m\", got %q", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// IsZero lets omitempty-aware encoders drop an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// FieldError names the field of a RunnerPool that is at fault.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func invalid(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))}
}

// cronParser reads the standard five fields (minute hour day-of-month
// month day-of-week) and the @daily-style descriptors; no seconds field,
// and no CRON_TZ prefix: the time zone has its own field.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Default fills unset fields.
func (p *RunnerPool) Default() {
	s := &p.Spec
	if s.QueueScaleUp == nil {
		t := true
		s.QueueScaleUp = &t
	}
	if s.IdleTimeout.Duration == 0 {
		s.IdleTimeout.Duration = 10 * time.Minute
	}
	if s.QueueWaitTarget.Duration == 0 {
		s.QueueWaitTarget.Duration = 30 * time.Second
	}
	if s.BudgetTimeZone == "" {
		s.BudgetTimeZone = "UTC"
	}
	for i := range s.Schedules {
		if s.Schedules[i].TimeZone == "" {
			s.Schedules[i].TimeZone = "UTC"
		}
	}
}

// Validate checks the pool and compiles its schedules; errors name the
// field path and what is allowed.
func (p *RunnerPool) Validate() error {
	if p.APIVersion != APIVersion {
		return invalid("apiVersion", "want %q, got %q", APIVersion, p.APIVersion)
	}
	if p.Kind != Kind {
		return invalid("kind", "want %q, got %q", Kind, p.Kind)
	}
	if !nameRE.MatchString(p.Metadata.Name) {
		return invalid("metadata.name", "want a DNS label (lower-case letters, digits and '-', at most 63), got %q", p.Metadata.Name)
	}
	s := &p.Spec
	for i, l := range s.Labels {
		if strings.TrimSpace(l) == "" || strings.ContainsAny(l, ", \t\n") {
			return invalid(fmt.Sprintf("spec.labels[%d]", i), "want a runner label without spaces or commas, got %q", l)
		}
	}
	if s.Min < 0 {
		return invalid("spec.min", "want 0 or more, got %d", s.Min)
	}
	if s.Max < 1 || s.Max > 10000 {
		return invalid("spec.max", "want 1 to 10000, got %d", s.Max)
	}
	if s.Min > s.Max {
		return invalid("spec.min", "%d is above spec.max %d", s.Min, s.Max)
	}
	if err := s.Target.validate("spec.target"); err != nil {
		return err
	}
	if s.IdleTimeout.Duration < 0 {
		return invalid("spec.idleTimeout", "want a positive duration, got %s", s.IdleTimeout)
	}
	if s.QueueWaitTarget.Duration < 0 {
		return invalid("spec.queueWaitTarget", "want a positive duration, got %s", s.QueueWaitTarget)
	}
	if s.RunnerHoursPerDay < 0 {
		return invalid("spec.runnerHoursPerDay", "want 0 (no cap) or more, got %v", s.RunnerHoursPerDay)
	}
	loc, err := time.LoadLocation(s.BudgetTimeZone)
	if err != nil || s.BudgetTimeZone == "Local" {
		return invalid("spec.budgetTimeZone", "want an IANA time zone such as Asia/Seoul or UTC, got %q", s.BudgetTimeZone)
	}
	s.budgetLoc = loc
	for i := range s.Schedules {
		if err := s.Schedules[i].compile(fmt.Sprintf("spec.schedules[%d]", i), s.Max); err != nil {
			return err
		}
	}
	return nil
}

func (t TargetSpec) validate(path string) error {
	switch {
	case t.Local != nil && t.Kubernetes != nil:
		return invalid(path, "set exactly one of local and kubernetes, not both")
	case t.Local == nil && t.Kubernetes == nil:
		return invalid(path, "set one of local: {}, kubernetes: {cluster: NAME, autoscalingRunnerSet: NAMESPACE/NAME} or kubernetes: {cluster: NAME, deployment: NAMESPACE/NAME}")
	case t.Kubernetes != nil:
		k := t.Kubernetes
		if k.Cluster == "" {
			return invalid(path+".kubernetes.cluster", "name the registered cluster (pave cluster list)")
		}
		field, ref := "autoscalingRunnerSet", k.AutoscalingRunnerSet
		switch {
		case k.AutoscalingRunnerSet != "" && k.Deployment != "":
			return invalid(path+".kubernetes", "set exactly one of autoscalingRunnerSet and deployment, not both")
		case k.Deployment != "":
			field, ref = "deployment", k.Deployment
		}
		ns, name, ok := strings.Cut(ref, "/")
		if !ok || !nameRE.MatchString(ns) || !nameRE.MatchString(name) {
			return invalid(path+".kubernetes."+field, "want NAMESPACE/NAME (an ARC runner scale set in autoscalingRunnerSet, or a Deployment of runners in deployment), got %q", ref)
		}
	}
	return nil
}

func (s *Schedule) compile(path string, max int) error {
	if strings.HasPrefix(strings.TrimSpace(s.Cron), "CRON_TZ=") || strings.HasPrefix(strings.TrimSpace(s.Cron), "TZ=") {
		return invalid(path+".cron", "put the time zone in %s.timeZone, not in the expression", path)
	}
	if len(strings.Fields(s.Cron)) != 5 && !strings.HasPrefix(strings.TrimSpace(s.Cron), "@") {
		return invalid(path+".cron", "want five fields (minute hour day-of-month month day-of-week), e.g. \"0 9 * * 1-5\", got %q", s.Cron)
	}
	sched, err := cronParser.Parse(s.Cron)
	if err != nil {
		return invalid(path+".cron", "%q: %v; e.g. \"0 9 * * 1-5\" is 09:00 Monday to Friday", s.Cron, err)
	}
	if strings.TrimSpace(s.Cron) == "@every" || strings.HasPrefix(strings.TrimSpace(s.Cron), "@every ") {
		return invalid(path+".cron", "@every is not a time of day; use five fields")
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil || s.TimeZone == "Local" {
		return invalid(path+".timeZone", "want an IANA time zone such as Asia/Seoul or UTC, got %q", s.TimeZone)
	}
	if s.Duration.Duration <= 0 || s.Duration.Duration > 7*24*time.Hour {
		return invalid(path+".duration", "want a duration from 1m to 168h, e.g. \"10h\", got %q", s.Duration.String())
	}
	if s.Min < 0 || s.Min > max {
		return invalid(path+".min", "want 0 to spec.max (%d), got %d", max, s.Min)
	}
	if s.Spare < 0 || s.Spare > max {
		return invalid(path+".spare", "want 0 to spec.max (%d), got %d", max, s.Spare)
	}
	s.sched, s.loc = sched, loc
	return nil
}
