package release

import (
	"context"
	"fmt"
	"time"
)

// Failure is why a version of a release did not run: its last exit, how
// often it was restarted and the last lines it wrote to stderr, with the
// command that shows the rest. The engine fills it when a release fails
// because its new version crashed or never became ready, and when a
// release is rolled back because the new version lost readiness.
type Failure struct {
	Reason string `json:"reason"`
	// ExitCode is the process's last exit status; 0 when none was seen
	// (a version that runs but never answers ready, or an adopted one).
	ExitCode int `json:"exitCode,omitempty"`
	Restarts int `json:"restarts"`
	// Stderr holds the last lines the failing instance wrote to stderr,
	// oldest first.
	Stderr []string `json:"stderr,omitempty"`
	// LogsCommand shows every log line of the version.
	LogsCommand string `json:"logsCommand,omitempty"`
}

// Diagnoser is a Target that can tell why a version is not ready: the
// local runtime reads its instances' exits and stderr files. Targets that
// cannot (a remote cluster) simply do not implement it.
type Diagnoser interface {
	// Diagnose describes the worst instance of the version; nil when every
	// instance looks well.
	Diagnose(ctx context.Context, service, version string) (*Failure, error)
}

// CrashLoopRestarts is the number of restarts before readiness after which
// a pending release fails at once instead of waiting for its readyTimeout:
// a version that exited this often will not come up by waiting.
const CrashLoopRestarts = 3

// LogsCommand is the command that shows a version's recent logs.
func LogsCommand(service, version string, since time.Duration) string {
	return fmt.Sprintf("pave logs --service %s --version %s --since %s", service, version, shortDuration(since))
}

// shortDuration writes 10m rather than 10m0s.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	if d < time.Minute {
		d = time.Minute
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// diagnose asks the release's clusters why version is not ready and
// returns the worst answer (most restarts), nil when none can tell.
func diagnose(ctx context.Context, seams map[string]Cluster, clusters []ClusterStatus, service, version string) *Failure {
	var worst *Failure
	for _, cs := range clusters {
		d, ok := seams[cs.Name].Target.(Diagnoser)
		if !ok {
			continue
		}
		f, err := d.Diagnose(ctx, service, version)
		if err != nil || f == nil {
			continue
		}
		if len(clusters) > 1 {
			f.Reason = "cluster " + cs.Name + ": " + f.Reason
		}
		if worst == nil || f.Restarts > worst.Restarts {
			worst = f
		}
	}
	if worst != nil && worst.LogsCommand == "" {
		worst.LogsCommand = LogsCommand(service, version, 10*time.Minute)
	}
	return worst
}

// crashLooping reports whether f shows a version that keeps exiting.
func crashLooping(f *Failure) bool { return f != nil && f.Restarts >= CrashLoopRestarts }

// failureText is the cause appended to a release's message.
func failureText(f *Failure) string {
	if f == nil {
		return ""
	}
	s := fmt.Sprintf("; %s, %d restarts", f.Reason, f.Restarts)
	if n := len(f.Stderr); n > 0 {
		s += fmt.Sprintf("; last stderr line: %q", f.Stderr[n-1])
	}
	if f.LogsCommand != "" {
		s += "; more: " + f.LogsCommand
	}
	return s
}
