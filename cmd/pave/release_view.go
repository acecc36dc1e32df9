package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/release"
)

// releaseDoc is a release as the API sent it; raw is printed for
// -o json/yaml so no field the server sent is lost, even one this client's
// release package does not know.
type releaseDoc struct {
	release.Release
	raw json.RawMessage
}

func decodeRelease(b []byte) (releaseDoc, error) {
	d := releaseDoc{raw: b}
	if err := json.Unmarshal(b, &d.Release); err != nil {
		return d, fmt.Errorf("decode release: %w", err)
	}
	return d, nil
}

// fetchRelease reads one release by its exact name.
func fetchRelease(ctx context.Context, g *globals, name string) (releaseDoc, error) {
	var raw json.RawMessage
	if err := g.client().Do(ctx, http.MethodGet, "/api/v1/releases/"+url.PathEscape(name), nil, &raw); err != nil {
		return releaseDoc{}, err
	}
	return decodeRelease(raw)
}

// resolveRelease reads a release named by its name or by its service: a
// service stands for its latest release, as `kubectl rollout status
// deployment/x` stands for the deployment's current rollout.
func resolveRelease(ctx context.Context, g *globals, nameOrService string) (releaseDoc, error) {
	d, err := fetchRelease(ctx, g, nameOrService)
	var apiErr *apiclient.Error
	if err == nil || !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		return d, err
	}
	latest, lerr := latestRelease(ctx, g, nameOrService)
	if lerr != nil {
		return releaseDoc{}, lerr
	}
	if latest == "" {
		return releaseDoc{}, fmt.Errorf("no release or service named %q; list them with `pave release list`", nameOrService)
	}
	return fetchRelease(ctx, g, latest)
}

// resolveReleaseName is resolveRelease for the commands that only need the
// name.
func resolveReleaseName(ctx context.Context, g *globals, nameOrService string) (string, error) {
	d, err := resolveRelease(ctx, g, nameOrService)
	return d.Metadata.Name, err
}

// latestRelease names the newest release of a service, "" when it has none.
func latestRelease(ctx context.Context, g *globals, service string) (string, error) {
	var rs []release.Release
	if err := g.client().Do(ctx, http.MethodGet, "/api/v1/releases?service="+url.QueryEscape(service), nil, &rs); err != nil {
		return "", err
	}
	latest := ""
	var at time.Time
	for _, r := range rs { // the API lists newest first; ties keep the first
		if latest == "" || r.Metadata.CreationTimestamp.After(at) {
			latest, at = r.Metadata.Name, r.Metadata.CreationTimestamp
		}
	}
	return latest, nil
}

// renderRelease is the full view of a release, as `kubectl argo rollouts
// get` shows a rollout: what moves where, the evidence, the verdict, what is
// missing for the next decision, and what to do about a pause or a failure.
func renderRelease(d releaseDoc, now time.Time, rate float64, st style) string {
	var b strings.Builder
	r, s := d.Release, d.Status
	fmt.Fprintf(&b, "%s  %s %s → %s  %s  step %s  weights %s  elapsed %s\n", st.bold(r.Metadata.Name), r.Spec.Service, orNone(s.Stable),
		r.Spec.Version, st.phase(s.Phase), stepLabel(r), orNone(s.Weights.String()), elapsed(r, now))
	if len(s.Clusters) > 1 {
		for _, c := range s.Clusters {
			fmt.Fprintf(&b, "  cluster %-12s wave %d  weights %s", c.Name, c.Wave+1, orNone(c.Weights.String()))
			if c.Error != "" {
				fmt.Fprintf(&b, "  %s since %s: %s", st.red("TROUBLE"), c.ErrorSince.Local().Format(time.TimeOnly), c.Error)
			}
			b.WriteByte('\n')
		}
	}
	if dec := s.Decision; dec != nil {
		for _, f := range dec.Findings {
			n := f.Numbers
			switch {
			case f.Judge == analysis.JudgeErrors && f.Scope == analysis.TotalScope:
				fmt.Fprintf(&b, "  canary %s req, %s errors (%.2f%%)   stable %s req, %s errors (%.2f%%)\n",
					count(n["canaryRequests"]), count(n["canaryErrors"]), 100*n["canaryErrorRate"],
					count(n["stableRequests"]), count(n["stableErrors"]), 100*n["stableErrorRate"])
			case f.Judge == analysis.JudgeLatency && f.Scope == analysis.TotalScope:
				fmt.Fprintf(&b, "  latency p50/p99: canary %.0f/%.0f ms   stable %.0f/%.0f ms\n", n["canaryP50Ms"], n["canaryP99Ms"], n["stableP50Ms"], n["stableP99Ms"])
			}
		}
		fmt.Fprintf(&b, "  verdict: %s — %s\n", st.verdict(dec.Verdict), dec.Reason)
	}
	if s.Message != "" && (s.Decision == nil || s.Message != s.Decision.Reason) {
		fmt.Fprintf(&b, "  %s\n", s.Message)
	}
	if m := missingEvidence(d, now, rate); m != "" {
		fmt.Fprintf(&b, "  missing: %s\n", m)
	}
	if l := forecastLine(s, st); l != "" {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	if s.Phase == release.Paused {
		fmt.Fprintf(&b, "  %s: resume with `pave release resume %s`, or end it with `pave release promote|abort %s`\n",
			st.yellow("paused"), r.Metadata.Name, r.Metadata.Name)
	}
	writeFailure(&b, d, st)
	return b.String()
}

func writeFailure(b *strings.Builder, d releaseDoc, st style) {
	f := d.Status.Failure
	if f == nil {
		return
	}
	var why []string
	if f.ExitCode != 0 {
		why = append(why, fmt.Sprintf("exit status %d", f.ExitCode))
	}
	if f.Restarts > 0 {
		why = append(why, fmt.Sprintf("%d restarts", f.Restarts))
	}
	line := f.Reason
	if len(why) > 0 {
		line += " (" + strings.Join(why, ", ") + ")"
	}
	fmt.Fprintf(b, "  %s: %s\n", st.red("failure"), line)
	for _, l := range f.Stderr {
		fmt.Fprintf(b, "    stderr | %s\n", l)
	}
	if f.LogsCommand != "" {
		fmt.Fprintf(b, "  the rest of its output: %s\n", f.LogsCommand)
	}
}

// progressLine is the one-line form for logs that are not a terminal.
func progressLine(d releaseDoc, now time.Time, rate float64) string {
	r, s := d.Release, d.Status
	parts := []string{fmt.Sprintf("[%s] %s %s", elapsed(r, now), r.Metadata.Name, s.Phase.Words())}
	if !s.Phase.Terminal() {
		parts[0] += fmt.Sprintf(" step %s weights %s", stepLabel(r), orNone(s.Weights.String()))
	}
	if dec := s.Decision; dec != nil && !s.Phase.Terminal() {
		parts = append(parts, fmt.Sprintf("%s: %s", dec.Verdict, dec.Reason))
	} else if s.Message != "" {
		parts = append(parts, s.Message)
	}
	if m := missingEvidence(d, now, rate); m != "" {
		parts = append(parts, "missing "+m)
	}
	if s.Phase == release.Paused {
		parts = append(parts, fmt.Sprintf("resume with `pave release resume %s`", r.Metadata.Name))
	}
	if f := d.Status.Failure; f != nil {
		p := "failure: " + f.Reason
		if f.LogsCommand != "" {
			p += "; see " + f.LogsCommand
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " · ")
}

// changeKey is what makes a new line worth printing outside a terminal:
// the numbers of a step change every poll, its state does not.
func changeKey(d releaseDoc) string {
	s := d.Status
	verdict := ""
	if s.Decision != nil {
		verdict = string(s.Decision.Verdict)
	}
	failure := ""
	if s.Failure != nil {
		failure = s.Failure.Reason
	}
	return fmt.Sprintf("%s|%d|%d|%t|%s|%s|%t|%s", s.Phase, s.Step, s.Wave, s.Gate, s.Weights, verdict, s.WeightsApplied, failure)
}

func stepLabel(r release.Release) string {
	s := r.Status
	if s.Step >= 0 && s.Step < len(r.Spec.Steps) {
		return fmt.Sprintf("%d/%d (%s)", s.Step+1, len(r.Spec.Steps), r.Spec.Steps[s.Step])
	}
	return "-"
}

// elapsed is the release's age, or its whole duration once it ended.
func elapsed(r release.Release, now time.Time) string {
	start := r.Metadata.CreationTimestamp
	if start.IsZero() {
		return "-"
	}
	end := now
	if r.Status.Phase.Terminal() && !r.Status.Finished.IsZero() {
		end = r.Status.Finished
	}
	return shortDuration(end.Sub(start))
}

// missingEvidence says what the current step still needs before it can be
// decided: time, canary samples, and at the measured rate how long that is.
func missingEvidence(d releaseDoc, now time.Time, rate float64) string {
	r, s := d.Release, d.Status
	if s.Phase != release.Progressing || s.Gate || s.Step < 0 {
		return ""
	}
	var parts []string
	var more uint64
	what := "canary requests"
	if s.Decision != nil {
		more = s.Decision.MoreCanaryRequests
	}
	if more == 0 && s.Decision != nil {
		inStep := s.Decision.CanaryRequests // the judges see the current step's window only
		if inStep < r.Spec.StepSamples {
			more, what = r.Spec.StepSamples-inStep, fmt.Sprintf("canary requests for the step's minimum of %s", count(float64(r.Spec.StepSamples)))
		}
	}
	if more > 0 {
		p := fmt.Sprintf("≈%s more %s", count(float64(more)), what)
		if rate > 0 {
			p += fmt.Sprintf(", ≈%s at the current rate (%.1f/s)", roughDuration(time.Duration(float64(more)/rate*float64(time.Second))), rate)
		}
		parts = append(parts, p)
	}
	if !s.StepStarted.IsZero() {
		if left := s.StepStarted.Add(r.Spec.StepDuration.D()).Sub(now); left > 0 {
			parts = append(parts, "step minimum "+shortDuration(left)+" left")
		}
	}
	return strings.Join(parts, "; ")
}

// rateMeter measures the canary's request rate from successive polls.
type rateMeter struct {
	samples []rateSample
}

type rateSample struct {
	at time.Time
	n  uint64
}

// rateWindow is how far back the rate looks: long enough to smooth the
// engine's decision updates (every few seconds), short enough to follow a
// change of load.
const rateWindow = time.Minute

func (m *rateMeter) add(at time.Time, n uint64) {
	if k := len(m.samples); k > 0 && n < m.samples[k-1].n {
		m.samples = m.samples[:0] // counters reset (new wave, restart)
	}
	m.samples = append(m.samples, rateSample{at, n})
	for len(m.samples) > 2 && at.Sub(m.samples[0].at) > rateWindow {
		m.samples = m.samples[1:]
	}
}

// perSecond is the rate over the window, 0 when unknown.
func (m *rateMeter) perSecond() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt < 1 || last.n <= first.n {
		return 0
	}
	return float64(last.n-first.n) / dt
}

// count writes a whole number with thousands separators: 1,900.
func count(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// shortDuration is a duration to the second: 1h2m3s, 4m10s, 12s.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// roughDuration is an estimate as a person says it: 40 s, 3 min, 2 h.
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", max(1, int(d.Seconds()+0.5)))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()+0.5))
	default:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
}

// MarshalJSON writes the document as the server sent it, so -o json, yaml
// and jsonpath show every field.
func (d releaseDoc) MarshalJSON() ([]byte, error) {
	if d.raw != nil {
		return d.raw, nil
	}
	return json.Marshal(d.Release)
}
