package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/traffic"
)

func init() { register(releaseCommand) }

func releaseCommand(g *globals) *cobra.Command {
	var (
		version, source, binary, image, steps, file string
		shadowFlag, profile                         string
		maxDuration                                 time.Duration
		wait, supersede, lockstep, create           bool
		replicas                                    int
		clusters                                    []string
		timeout                                     time.Duration
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
it was promoted, so a CI job fails when its release is rolled back: 2 rolled
back, 3 failed or aborted, 4 --timeout passed (the release goes on), 5 the
control plane is unreachable.

A service Pave does not know yet is refused unless --create is given, so a
typo does not start a new service.

With several clusters the release runs in waves: the canary goes through its
steps in the first cluster, a health gate follows, then the next cluster;
--lockstep moves them all together. A failure anywhere rolls back everywhere.`,
		Example: `  pave release checkout --version v2 --binary ./bin/checkout --wait
  pave release checkout --version v3 --image registry.local/checkout:v3 --steps 0.01,1,10,50,100
  pave release checkout --version v4 --image registry.local/checkout:v4 --clusters seoul,busan
  pave release -f release.yaml --wait --timeout 15m -o json
  pave release ledger --version v7 --binary ./bin/ledger --profile no-mirror --shadow off
  pave release payments --version v1 --source ./payments --create
  pave release payments --version v2 --binary ./bin/payments --shadow 2m --max-duration 1h --wait`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError(cmd, fmt.Errorf("one service, got %q%s", args, subcommandHint(cmd, args[0])))
			}
			return nil
		},
		ValidArgsFunction: completeServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 1 && version == "" && file == "" {
				if hint := subcommandHint(cmd, args[0]); hint != "" {
					return usageError(cmd, fmt.Errorf("--version is required to release %s%s", args[0], hint))
				}
			}
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
				if err == nil && profile != "" {
					b, err = withProfile(b, profile)
				}
				if err == nil && (shadowFlag != "" || maxDuration > 0) {
					b, err = withShadow(b, shadowFlag, maxDuration)
				}
				if err != nil {
					return err
				}
				body = b
			}
			path := "/api/v1/releases"
			if create {
				path += "?create=true"
			}
			var raw json.RawMessage
			if err := g.client().Do(ctx, http.MethodPost, path, bytes.NewReader(body), &raw); err != nil {
				return err
			}
			d, err := decodeRelease(raw)
			if err != nil {
				return err
			}
			if !wait {
				return g.print(cmd.OutOrStdout(), d, func(w io.Writer) {
					fmt.Fprintln(w, createdLine(d))
					if l := forecastLine(d.Status, styleFor(w)); l != "" {
						fmt.Fprintln(w, l)
					}
				})
			}
			if l := forecastLine(d.Status, styleFor(cmd.OutOrStdout())); l != "" && !g.machine() {
				fmt.Fprintln(cmd.OutOrStdout(), l) // up front, before following it
			}
			return followRelease(ctx, g, cmd.OutOrStdout(), d.Metadata.Name, timeout)
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
	f.DurationVar(&timeout, "timeout", 0, "with --wait, stop waiting after this long (exit 4; the release goes on), e.g. 15m; 0 waits for the end")
	f.BoolVar(&create, "create", false, "create the service if Pave does not know it yet")
	f.BoolVar(&supersede, "supersede", false, "abort a running release of the same service instead of refusing")
	f.StringVarP(&file, "file", "f", "", "a Release spec, YAML or JSON ('-' reads stdin)")
	f.StringSliceVar(&clusters, "clusters", nil, "clusters to release to, one wave each in this order (default: all)")
	f.BoolVar(&lockstep, "lockstep", false, "move every cluster together instead of in waves")
	f.StringVar(&shadowFlag, "shadow", "", "begin with a shadow step: stable's GET/HEAD requests (and safe routes) are mirrored to the new version and judged before any user sees it; a duration (2m) or a sample count (500); 0 or off: none, not even the one a low-traffic release with --max-duration adds of its own")
	f.StringVar(&profile, "profile", "", "tune the release for a case: no-mirror (a low-traffic service that cannot mirror: steps 5,50,100, stepSamples 75, maxDuration 30m, analysis alpha 0.02, maxRoutes 0, errorFloor 0.01; --steps, --max-duration and the fields a -f file sets still apply)")
	f.DurationVar(&maxDuration, "max-duration", 0, "the release's time budget: an undecided step waits for evidence until it runs out, then a person decides (e.g. 2h)")

	cmd.AddCommand(releaseListCommand(g), releaseStatusCommand(g), releaseHistoryCommand(g), releaseUndoCommand(g))
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

// withShadow adds spec.shadow (a duration or a sample count) and
// spec.maxDuration to a Release document.
func withShadow(doc []byte, shadow string, maxDuration time.Duration) ([]byte, error) {
	var r map[string]any
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, err
	}
	spec := r["spec"].(map[string]any)
	if shadow == "0" || shadow == "off" {
		// No shadow step, not even the one a low-traffic release with a
		// time budget adds of its own (spec.autoShadow).
		spec["autoShadow"] = false
		shadow = ""
	}
	if shadow != "" {
		if n, err := strconv.ParseUint(shadow, 10, 64); err == nil && n > 0 {
			spec["shadow"] = map[string]any{"samples": n}
		} else if d, err := time.ParseDuration(shadow); err == nil && d > 0 {
			spec["shadow"] = map[string]any{"duration": d.String()}
		} else {
			return nil, fmt.Errorf("--shadow %q: want a duration such as 2m or a number of mirrored requests such as 500", shadow)
		}
	}
	if maxDuration > 0 {
		spec["maxDuration"] = maxDuration.String()
	}
	return releaseJSON(r)
}

// withProfile adds a profile's settings to a Release document: --steps,
// given, is kept; --max-duration, applied after, replaces the profile's.
func withProfile(doc []byte, profile string) ([]byte, error) {
	if profile != "no-mirror" {
		return nil, fmt.Errorf("--profile %q: the one profile is no-mirror (a low-traffic service that cannot mirror; docs/release.md, \"Low traffic without a mirror\")", profile)
	}
	var r map[string]any
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, err
	}
	spec, ok := r["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("--profile: the release has no spec")
	}
	keepGiven(spec, release.NoMirrorProfileSpec())
	return releaseJSON(r)
}

// keepGiven adds profile's fields to spec where spec has none, field by
// field inside objects (a file's analysis.latencyFloorMs stays beside
// the profile's analysis.alpha).
func keepGiven(spec, profile map[string]any) {
	for k, v := range profile {
		given, ok := spec[k]
		if !ok {
			spec[k] = v
			continue
		}
		if g, gok := given.(map[string]any); gok {
			if p, pok := v.(map[string]any); pok {
				keepGiven(g, p)
			}
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func releaseJSON(v any) ([]byte, error) { return json.Marshal(v) }
