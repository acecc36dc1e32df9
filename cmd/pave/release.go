package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/traffic"
)

func init() { register(releaseCommand) }

func releaseCommand(g *globals) *cobra.Command {
	var (
		version, source, binary, image, steps, file string
		wait, supersede, lockstep                   bool
		replicas                                    int
		clusters                                    []string
	)
	cmd := &cobra.Command{
		Use:   "release SERVICE --version V (--source DIR | --binary PATH | --image REF) [--steps 1,5,10,25,50,100] [--wait]",
		Short: "Release a new version of a service as a canary, step by step, with automatic rollback",
		Long: `Release a new version of a service. The new version starts at full readiness,
then takes the traffic of each step (percentages, down to 0.01) while judges
compare it with the stable version; it advances only when each step's minimum
duration and samples are reached and the analysis passes, and goes back to 0%
at once when a judge objects.

Instead of flags, -f takes a Release spec (YAML or JSON, kind: Release).
With --wait the command follows the release to its end and exits 0 only when
it was promoted, so a CI job fails when its release is rolled back.

With several clusters the release runs in waves: the canary goes through its
steps in the first cluster, a health gate follows, then the next cluster;
--lockstep moves them all together. A failure anywhere rolls back everywhere.`,
		Example: `  pave release checkout --version v2 --binary ./bin/checkout --wait
  pave release checkout --version v3 --image registry.local/checkout:v3 --steps 0.01,1,10,50,100
  pave release checkout --version v4 --image registry.local/checkout:v4 --clusters seoul,busan
  pave release -f release.yaml --wait -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var body []byte
			if file != "" {
				if len(args) > 0 || version != "" {
					return fmt.Errorf("give either -f FILE or SERVICE --version V, not both")
				}
				b, err := readSpec(file)
				if err != nil {
					return err
				}
				// Relative paths in a spec are relative to the spec file.
				if b, err = release.ResolvePaths(b, specDir(file)); err != nil {
					return err
				}
				body = b
			} else {
				if len(args) == 0 {
					return fmt.Errorf("name the service: pave release SERVICE --version V --binary PATH (or -f spec.yaml)")
				}
				b, err := specFromFlags(args[0], version, source, binary, image, steps, replicas, supersede)
				if err == nil && (len(clusters) > 0 || lockstep) {
					b, err = withClusters(b, clusters, lockstep)
				}
				if err != nil {
					return err
				}
				body = b
			}
			var r release.Release
			if err := g.client().Do(ctx, http.MethodPost, "/api/v1/releases", bytes.NewReader(body), &r); err != nil {
				return err
			}
			if !wait {
				return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
					fmt.Fprintf(w, "release %s created: %s %s → %s; follow it with `pave release status %s`\n",
						r.Metadata.Name, r.Spec.Service, orNone(r.Status.Stable), r.Spec.Version, r.Metadata.Name)
				})
			}
			return followRelease(ctx, g, cmd.OutOrStdout(), r.Metadata.Name)
		},
	}
	f := cmd.Flags()
	f.StringVar(&version, "version", "", "the new version's name, e.g. v2")
	f.StringVar(&source, "source", "", "a source directory to build and run")
	f.StringVar(&binary, "binary", "", "a built binary to run")
	f.StringVar(&image, "image", "", "an OCI image reference (Kubernetes mode)")
	f.StringVar(&steps, "steps", "", "canary percentages, increasing, ending at 100 (default 1,5,10,25,50,100)")
	f.IntVar(&replicas, "replicas", 0, "replicas of the new version (default 1)")
	f.BoolVar(&wait, "wait", false, "follow the release to its end; exit 0 only when promoted")
	f.BoolVar(&supersede, "supersede", false, "abort a running release of the same service instead of refusing")
	f.StringVarP(&file, "file", "f", "", "a Release spec, YAML or JSON ('-' reads stdin)")
	f.StringSliceVar(&clusters, "clusters", nil, "clusters to release to, one wave each in this order (default: all)")
	f.BoolVar(&lockstep, "lockstep", false, "move every cluster together instead of in waves")

	cmd.AddCommand(releaseListCommand(g), releaseStatusCommand(g), releaseHistoryCommand(g))
	for _, a := range []release.Action{release.Pause, release.Resume, release.Promote, release.Abort} {
		cmd.AddCommand(releaseActionCommand(g, a))
	}
	return cmd
}

// specDir is the directory a spec's relative paths are relative to: the
// spec file's, or the working directory's for stdin.
func specDir(file string) string {
	if file == "-" {
		return "."
	}
	return filepath.Dir(file)
}

func readSpec(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 4<<20))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the release spec: %w", err)
	}
	return b, nil
}

// specFromFlags builds a Release document; the control plane validates it
// and names the field at fault.
func specFromFlags(service, version, source, binary, image, steps string, replicas int, supersede bool) ([]byte, error) {
	if version == "" {
		return nil, fmt.Errorf("--version is required, e.g. --version v2")
	}
	abs := func(flag, p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", flag, p, err)
		}
		return a, nil
	}
	var err error
	if source, err = abs("--source", source); err != nil {
		return nil, err
	}
	if binary, err = abs("--binary", binary); err != nil {
		return nil, err
	}
	spec := map[string]any{"service": service, "version": version}
	for k, v := range map[string]string{"source": source, "binary": binary, "image": image} {
		if v != "" {
			spec[k] = v
		}
	}
	if steps != "" {
		var list []string
		for i, s := range strings.Split(steps, ",") {
			s = strings.TrimSpace(s)
			if _, err := traffic.ParsePercent(s); err != nil {
				return nil, fmt.Errorf("--steps item %d: %w", i+1, err)
			}
			list = append(list, s)
		}
		spec["steps"] = list
	}
	if replicas != 0 {
		spec["replicas"] = replicas
	}
	if supersede {
		spec["supersede"] = true
	}
	return releaseJSON(map[string]any{"apiVersion": release.APIVersion, "kind": release.Kind, "spec": spec})
}

// withClusters adds spec.clusters and spec.lockstep to a Release document.
func withClusters(doc []byte, clusters []string, lockstep bool) ([]byte, error) {
	var r map[string]any
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, err
	}
	spec := r["spec"].(map[string]any)
	if len(clusters) > 0 {
		spec["clusters"] = clusters
	}
	if lockstep {
		spec["lockstep"] = true
	}
	return releaseJSON(r)
}

// followRelease polls a release until it ends, showing its progress, and
// turns the end state into the exit status.
func followRelease(ctx context.Context, g *globals, w io.Writer, name string) error {
	live := !g.json() && isTerminal(w)
	var last string
	lines := 0
	for {
		var r release.Release
		if err := g.client().Do(ctx, http.MethodGet, "/api/v1/releases/"+url.PathEscape(name), nil, &r); err != nil {
			return err
		}
		if !g.json() {
			text := renderRelease(r)
			if text != last {
				if live && lines > 0 {
					fmt.Fprintf(w, "\x1b[%dA\x1b[J", lines) // redraw in place
				}
				fmt.Fprint(w, text)
				last, lines = text, strings.Count(text, "\n")
			}
		}
		if r.Settled() {
			if g.json() {
				if err := g.print(w, r, nil); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "release %s %s: %s\n", r.Metadata.Name, r.Status.Phase.Words(), r.Status.Message)
			}
			if r.Status.Phase != release.Promoted {
				return exitCode{code: 1, msg: fmt.Sprintf("release %s was %s, not promoted", r.Metadata.Name, r.Status.Phase.Words())}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// renderRelease is the progress view: step, weights, samples per version,
// the current verdict and why.
func renderRelease(r release.Release) string {
	var b strings.Builder
	s := r.Status
	step := "-"
	if s.Step >= 0 && s.Step < len(r.Spec.Steps) {
		step = fmt.Sprintf("%d/%d (%s)", s.Step+1, len(r.Spec.Steps), r.Spec.Steps[s.Step])
	}
	fmt.Fprintf(&b, "%s  %s %s → %s  %s  step %s  weights %s\n", r.Metadata.Name, r.Spec.Service, orNone(s.Stable), r.Spec.Version,
		s.Phase.Words(), step, orNone(s.Weights.String()))
	if len(s.Clusters) > 1 {
		for _, c := range s.Clusters {
			fmt.Fprintf(&b, "  cluster %-12s wave %d  weights %s", c.Name, c.Wave+1, orNone(c.Weights.String()))
			if c.Error != "" {
				fmt.Fprintf(&b, "  TROUBLE since %s: %s", c.ErrorSince.Local().Format("15:04:05"), c.Error)
			}
			b.WriteByte('\n')
		}
	}
	if d := s.Decision; d != nil {
		for _, f := range d.Findings {
			if f.Judge == analysis.JudgeErrors && f.Scope == analysis.TotalScope {
				n := f.Numbers
				fmt.Fprintf(&b, "  canary %.0f req, %.0f errors (%.2f%%)   stable %.0f req, %.0f errors (%.2f%%)\n",
					n["canaryRequests"], n["canaryErrors"], 100*n["canaryErrorRate"], n["stableRequests"], n["stableErrors"], 100*n["stableErrorRate"])
			}
			if f.Judge == analysis.JudgeLatency && f.Scope == analysis.TotalScope {
				n := f.Numbers
				fmt.Fprintf(&b, "  latency p50/p99: canary %.0f/%.0f ms   stable %.0f/%.0f ms\n", n["canaryP50Ms"], n["canaryP99Ms"], n["stableP50Ms"], n["stableP99Ms"])
			}
		}
		fmt.Fprintf(&b, "  verdict: %s — %s\n", d.Verdict, d.Reason)
	} else if s.Message != "" {
		fmt.Fprintf(&b, "  %s\n", s.Message)
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func releaseListCommand(g *globals) *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "list [--service S]",
		Short: "List releases, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/releases"
			if service != "" {
				path += "?service=" + url.QueryEscape(service)
			}
			var rs []release.Release
			if err := g.client().Do(cmd.Context(), http.MethodGet, path, nil, &rs); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), rs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSERVICE\tFROM\tTO\tPHASE\tSTEP\tCREATED")
				for _, r := range rs {
					step := "-"
					if r.Status.Step >= 0 && r.Status.Step < len(r.Spec.Steps) {
						step = r.Spec.Steps[r.Status.Step].String()
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Metadata.Name, r.Spec.Service, orNone(r.Status.Stable), r.Spec.Version,
						r.Status.Phase.Words(), step, r.Metadata.CreationTimestamp.Local().Format(time.DateTime))
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "only this service's releases")
	return cmd
}

func releaseStatusCommand(g *globals) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status NAME [--watch]",
		Short: "Show a release: step, weights, samples, verdict and why",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if watch {
				return followRelease(cmd.Context(), g, cmd.OutOrStdout(), args[0])
			}
			var r release.Release
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/releases/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) { fmt.Fprint(w, renderRelease(r)) })
		},
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "follow it live until it ends (exit 0 only when promoted)")
	return cmd
}

func releaseHistoryCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history NAME",
		Short: "Show a release's timeline: steps, weights, verdicts, actions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var evs []release.Event
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/releases/"+url.PathEscape(args[0])+"/history", nil, &evs); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), evs, func(w io.Writer) {
				for _, e := range evs {
					data := string(e.Data)
					if len(data) > 160 {
						data = data[:157] + "..."
					}
					fmt.Fprintf(w, "%s  %-12s %s\n", e.Time.Local().Format(time.TimeOnly), e.Type, data)
				}
			})
		},
	}
}

func releaseActionCommand(g *globals, a release.Action) *cobra.Command {
	short := map[release.Action]string{
		release.Pause:   "Hold a progressing release at its current step",
		release.Resume:  "Let a paused release progress again",
		release.Promote: "Send all traffic to the new version now, skipping the remaining steps",
		release.Abort:   "Send all traffic back to the stable version now",
	}[a]
	return &cobra.Command{
		Use:   string(a) + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r release.Release
			if err := g.client().Do(cmd.Context(), http.MethodPost, "/api/v1/releases/"+url.PathEscape(args[0])+"/"+string(a), nil, &r); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(w io.Writer) {
				fmt.Fprintf(w, "release %s is %s: %s (weights %s)\n", r.Metadata.Name, r.Status.Phase.Words(), r.Status.Message, orNone(r.Status.Weights.String()))
			})
		},
	}
}

func releaseJSON(v any) ([]byte, error) { return json.Marshal(v) }
