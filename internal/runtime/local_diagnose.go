package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CheckArtifact tells at once whether d's artifact can be run here: the
// source directory exists and holds Go files, the binary exists and is an
// executable file, and no image is asked of a runtime of processes. It
// does not build: that is Deploy's work.
func (l *Local) CheckArtifact(d Deployment) error {
	switch {
	case d.Image != "":
		return invalid("image", "the local runtime runs processes, not images: give source (a directory to build) or binary")
	case d.Source != "":
		if !filepath.IsAbs(d.Source) {
			return invalid("source", "%q is a relative path; give an absolute one", d.Source)
		}
		fi, err := os.Stat(d.Source)
		if err != nil {
			return invalid("source", "directory %s does not exist on the control plane's machine", d.Source)
		}
		if !fi.IsDir() {
			return invalid("source", "%s is not a directory; give the directory of the service's main package, or use binary for an executable", d.Source)
		}
		if m, _ := filepath.Glob(filepath.Join(d.Source, "*.go")); len(m) == 0 {
			return invalid("source", "directory %s holds no Go files; give the directory of the service's main package", d.Source)
		}
	case d.Binary != "":
		if !filepath.IsAbs(d.Binary) {
			return invalid("binary", "%q is a relative path; give an absolute one", d.Binary)
		}
		fi, err := os.Stat(d.Binary)
		if err != nil {
			return invalid("binary", "file %s does not exist on the control plane's machine", d.Binary)
		}
		if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return invalid("binary", "%s is not an executable file", d.Binary)
		}
	}
	return nil
}

// Diagnosis is why a version's instances are not ready: the worst
// instance's last exit and the last lines it wrote to stderr.
type Diagnosis struct {
	Instance string
	// Reason is the last error: an exit status, a failed readiness probe,
	// a start that failed.
	Reason   string
	ExitCode int // 0 when no exit was seen
	Restarts int
	Stderr   []string
}

// StderrTailLines is how many stderr lines a Diagnosis carries.
const StderrTailLines = 10

// Diagnose describes the worst instance of a version (the most restarts,
// then not ready); nil when every instance is ready and never restarted.
func (l *Local) Diagnose(ctx context.Context, service, version string) (*Diagnosis, error) {
	st, err := l.Status(ctx, service, version)
	if err != nil {
		return nil, err
	}
	var worst *Instance
	for i := range st.Instances {
		in := &st.Instances[i]
		if in.State == StateReady && in.Restarts == 0 {
			continue
		}
		if worst == nil || in.Restarts > worst.Restarts || (in.Restarts == worst.Restarts && worst.State == StateReady && in.State != StateReady) {
			worst = in
		}
	}
	if worst == nil {
		return nil, nil
	}
	reason := worst.LastError
	if reason == "" {
		reason = "instance " + worst.Name + " is " + worst.State
	}
	d := &Diagnosis{Instance: worst.Name, Reason: reason, ExitCode: worst.ExitCode, Restarts: worst.Restarts}
	dir := l.instanceDir(service, version, worst.Slot)
	d.Stderr, _ = tailLines(filepath.Join(dir, "stderr.log"), StderrTailLines)
	return d, nil
}

// tailLines returns the last n lines of a file (reading at most its last
// 64 KiB), oldest first.
func tailLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const window = 64 << 10
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-window, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return nil, err
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:] // the first line is cut
		}
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// exitCode is a finished process's exit status; -1 when killed by a
// signal, 0 when unknown (an adopted process) or clean.
func exitCode(p *process) int {
	if p.exited == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// Versions reports the versions of service this runtime runs.
func (l *Local) Versions(ctx context.Context, service string) ([]Status, error) {
	all, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, st := range all {
		if st.Service == service {
			out = append(out, st)
		}
	}
	return out, nil
}

// Services names every service this runtime runs.
func (l *Local) Services(ctx context.Context) ([]string, error) {
	all, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, st := range all {
		if len(out) == 0 || out[len(out)-1] != st.Service {
			out = append(out, st.Service)
		}
	}
	return out, nil
}
