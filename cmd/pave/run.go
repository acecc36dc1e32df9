package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/server"
)

func init() {
	register(runCommand)
	register(psCommand)
	register(stopCommand)
}

func runCommand(g *globals) *cobra.Command {
	var (
		version, source, binary, readiness string
		replicas                           int
		env                                []string
		wait                               bool
		timeout                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run SERVICE --version V (--source DIR | --binary PATH)",
		Short: "Build and run a version of a service on the local runtime",
		Long: `Build a service's source with go build (through the Go build cache), or take a
built binary, and run N replicas of that version as supervised processes on
free loopback ports. Each instance gets PAVE_SERVICE, PAVE_VERSION,
PAVE_CLUSTER, PAVE_DATACENTER, PORT, OTEL_EXPORTER_OTLP_ENDPOINT and
KIT_SPOOL_DIR; it receives traffic through the gateway once its readiness
path answers 2xx. Running the same command again changes nothing; changing
--replicas scales, a changed source or binary replaces the instances.`,
		Example: `  pave run orders --version v1 --source ./orders --replicas 2
  pave run orders --version v2 --binary ./bin/orders --env LOG_LEVEL=debug
  pave run orders --version v1 --source ./orders --replicas 3   # scale`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := args[0]
			if err := runtime.ValidName("service", service); err != nil {
				return err
			}
			if err := runtime.ValidName("version", version); err != nil {
				return fmt.Errorf("--version: %w", err)
			}
			if (source == "") == (binary == "") {
				return errors.New("give exactly one of --source DIR (a directory to build) or --binary PATH")
			}
			req := server.RuntimeDeployRequest{Replicas: &replicas, ReadinessPath: readiness}
			for _, p := range []struct {
				in  string
				out *string
			}{{source, &req.Source}, {binary, &req.Binary}} {
				if p.in != "" {
					abs, err := filepath.Abs(p.in)
					if err != nil {
						return err
					}
					*p.out = abs
				}
			}
			if len(env) > 0 {
				req.Env = map[string]string{}
				for _, kv := range env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return fmt.Errorf("--env %q: want KEY=VALUE", kv)
					}
					req.Env[k] = v
				}
			}
			progress := cmd.ErrOrStderr()
			what := req.Source
			if what == "" {
				what = req.Binary
			}
			if source != "" {
				fmt.Fprintf(progress, "building %s %s from %s ...\n", service, version, what)
			} else {
				fmt.Fprintf(progress, "preparing %s %s from %s ...\n", service, version, what)
			}
			path := "/api/v1/runtime/" + url.PathEscape(service) + "/" + url.PathEscape(version)
			var st runtime.Status
			if err := g.client().Do(cmd.Context(), http.MethodPut, path, req, &st); err != nil {
				return err
			}
			if wait {
				fmt.Fprintf(progress, "starting %d replica(s) ...\n", replicas)
				var err error
				if st, err = waitReady(cmd.Context(), g, path, timeout, progress); err != nil {
					return err
				}
			}
			return g.print(cmd.OutOrStdout(), st, func(out io.Writer) {
				fmt.Fprintf(out, "%s %s: %d/%d ready", st.Service, st.Version, st.Ready, st.Replicas)
				if len(st.Endpoints) > 0 {
					fmt.Fprintf(out, " at %s", strings.Join(st.Endpoints, ", "))
				}
				fmt.Fprintf(out, "\nreach it through the gateway with Host %s.localhost\n", st.Service)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&version, "version", "", "version name, e.g. v1 (required)")
	f.StringVar(&source, "source", "", "directory of the service's main package, built with go build")
	f.StringVar(&binary, "binary", "", "an executable built already")
	f.IntVar(&replicas, "replicas", 1, "number of instances (0 keeps the version deployed with none)")
	f.StringArrayVar(&env, "env", nil, "KEY=VALUE added to each instance's environment (repeatable)")
	f.StringVar(&readiness, "readiness-path", runtime.DefaultReadinessPath, "HTTP path polled until it answers 2xx before an instance gets traffic")
	f.BoolVar(&wait, "wait", true, "wait until every replica is ready")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

// waitReady polls a version until all its replicas are ready, printing each
// change of the ready count.
func waitReady(ctx context.Context, g *globals, path string, timeout time.Duration, progress io.Writer) (runtime.Status, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		var st runtime.Status
		if err := g.client().Do(ctx, http.MethodGet, path, nil, &st); err != nil {
			return st, err
		}
		line := fmt.Sprintf("%s %s: %d/%d ready%s", st.Service, st.Version, st.Ready, st.Replicas, instanceSummary(st))
		if line != last {
			fmt.Fprintln(progress, line)
			last = line
		}
		if st.Ready == st.Replicas && len(st.Instances) == st.Replicas {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, exitCode{code: exitTimeout, msg: fmt.Sprintf("%s %s not ready after %s: %d/%d ready%s; see `pave ps %s` and the instance logs under %s",
				st.Service, st.Version, timeout, st.Ready, st.Replicas, instanceProblems(st), st.Service, logDirs(st))}
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func instanceSummary(st runtime.Status) string {
	counts := map[string]int{}
	for _, in := range st.Instances {
		if in.State != runtime.StateReady {
			counts[in.State]++
		}
	}
	if len(counts) == 0 {
		return ""
	}
	var parts []string
	for s, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, s))
	}
	sort.Strings(parts)
	return " (" + strings.Join(parts, ", ") + ")"
}

func instanceProblems(st runtime.Status) string {
	var b strings.Builder
	for _, in := range st.Instances {
		if in.LastError != "" {
			fmt.Fprintf(&b, "; %s: %s", in.Name, in.LastError)
		}
	}
	return b.String()
}

func logDirs(st runtime.Status) string {
	if len(st.Instances) == 0 {
		return "the data directory (runtime/instances)"
	}
	return filepath.Dir(st.Instances[0].LogDir)
}

func psCommand(g *globals) *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:               "ps [SERVICE] [--watch]",
		Short:             "List the instances of the local runtime with their health",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/v1/runtime"
			if len(args) == 1 {
				if err := runtime.ValidName("service", args[0]); err != nil {
					return err
				}
				path += "/" + url.PathEscape(args[0])
			}
			return watchOrPrint(cmd, g, watch, func(ctx context.Context) (any, func(io.Writer), error) {
				var list server.RuntimeList
				if err := g.client().Do(ctx, http.MethodGet, path, nil, &list); err != nil {
					return nil, nil, err
				}
				return list, func(out io.Writer) { printPS(out, list.Deployments) }, nil
			})
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the list again whenever it changes")
	return cmd
}

func printPS(out io.Writer, deps []runtime.Status) {
	if len(deps) == 0 {
		fmt.Fprintln(out, "nothing runs; start a service with `pave run SERVICE --version V --source DIR`")
		return
	}
	// With several clusters each line starts with its cluster.
	multi := false
	for _, d := range deps {
		multi = multi || d.Cluster != ""
	}
	lead := func(d runtime.Status) string {
		if !multi {
			return ""
		}
		return orDash(d.Cluster) + "\t"
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	header := "SERVICE\tVERSION\tREADY\tINSTANCE\tSTATE\tPID\tADDRESS\tRESTARTS\tUPTIME\tLAST ERROR"
	if multi {
		header = "CLUSTER\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, d := range deps {
		ready := fmt.Sprintf("%d/%d", d.Ready, d.Replicas)
		if len(d.Instances) == 0 {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t\n", lead(d), d.Service, d.Version, ready)
		}
		for _, in := range d.Instances {
			pid, addr, up := "-", "-", "-"
			if in.PID > 0 {
				pid = strconv.Itoa(in.PID)
				up = time.Since(in.Started).Round(time.Second).String()
			}
			if in.Port > 0 {
				addr = "127.0.0.1:" + strconv.Itoa(in.Port)
			}
			state := in.State
			if in.Adopted {
				state += " (adopted)"
			}
			lastErr := in.LastError
			if len(lastErr) > 60 {
				lastErr = lastErr[:57] + "..."
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", lead(d), d.Service, d.Version, ready, in.Name, state, pid, addr, in.Restarts, up, lastErr)
		}
	}
	tw.Flush()
}

func stopCommand(g *globals) *cobra.Command {
	var (
		version string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stop SERVICE [--version V]",
		Short: "Stop a service's instances on the local runtime (all versions, or one)",
		Long: `Stop every instance of a service, or of one version: each instance is taken
out of the gateway, sent SIGTERM, and killed with SIGKILL if it has not
exited after the grace period.`,
		Example: "  pave stop orders --version v1\n  pave stop orders",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := args[0]
			if err := runtime.ValidName("service", service); err != nil {
				return err
			}
			path := "/api/v1/runtime/" + url.PathEscape(service)
			if version != "" {
				if err := runtime.ValidName("version", version); err != nil {
					return fmt.Errorf("--version: %w", err)
				}
				path += "/" + url.PathEscape(version)
			}
			var stopping []runtime.Status
			if version != "" {
				var st runtime.Status
				if err := g.client().Do(cmd.Context(), http.MethodDelete, path, nil, &st); err != nil {
					return err
				}
				stopping = []runtime.Status{st}
			} else {
				var list server.RuntimeList
				if err := g.client().Do(cmd.Context(), http.MethodDelete, path, nil, &list); err != nil {
					return err
				}
				stopping = list.Deployments
			}
			progress := cmd.ErrOrStderr()
			for _, st := range stopping {
				fmt.Fprintf(progress, "stopping %s %s (%d instance(s)) ...\n", st.Service, st.Version, len(st.Instances))
			}
			if wait {
				if err := waitGone(cmd.Context(), g, stopping, timeout); err != nil {
					return err
				}
			}
			result := map[string]any{"stopped": stopping, "waited": wait}
			return g.print(cmd.OutOrStdout(), result, func(out io.Writer) {
				for _, st := range stopping {
					if wait {
						fmt.Fprintf(out, "%s %s stopped\n", st.Service, st.Version)
					} else {
						fmt.Fprintf(out, "%s %s stopping\n", st.Service, st.Version)
					}
				}
			})
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "stop only this version")
	cmd.ValidArgsFunction = completeServices(g)
	_ = cmd.RegisterFlagCompletionFunc("version", completeFlagVersions(g))
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until every instance has exited")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

// waitGone polls until the runtime no longer knows the versions.
func waitGone(ctx context.Context, g *globals, versions []runtime.Status, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, st := range versions {
		path := "/api/v1/runtime/" + url.PathEscape(st.Service) + "/" + url.PathEscape(st.Version)
		for {
			var cur runtime.Status
			err := g.client().Do(ctx, http.MethodGet, path, nil, &cur)
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				break
			}
			if err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return exitCode{code: exitTimeout, msg: fmt.Sprintf("%s %s: %d instance(s) still stopping after %s; see `pave ps %s`", st.Service, st.Version, len(cur.Instances), timeout, st.Service)}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
