package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/server"
)

func init() { register(clusterCommand) }

func clusterCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Register clusters, drain them for upgrades, see their share of traffic"}

	var add server.ClusterAddRequest
	var kubeconfig string
	var allowExec bool
	addCmd := &cobra.Command{
		Use:   "add NAME --kubeconfig FILE [--context C] [--datacenter DC]",
		Short: "Register a Kubernetes cluster",
		Long: `Register a Kubernetes cluster. Pave keeps a copy of the kubeconfig in its data
directory (mode 0600; never shown by the API). The kubeconfig must parse and
hold the context; whether the API server answers is reported, and a cluster
that does not answer is registered anyway and reported as failing, never
fatal to the others. A kubeconfig whose credentials run a command (exec,
auth-provider) or read local files (tokenFile, client-certificate,
client-key, certificate-authority) is refused unless --allow-exec is given
on the control plane's machine; inline credentials need nothing. Releases then run in it (spec.clusters defaults to every
cluster), with the traffic router of --router and the metrics of --prometheus.`,
		Example: "  pave cluster add seoul --kubeconfig ~/.kube/seoul.yaml --datacenter kr-central --router istio --prometheus http://prometheus.seoul:9090",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fleet.ValidName(args[0]); err != nil {
				return err
			}
			if kubeconfig == "" {
				return fmt.Errorf("--kubeconfig FILE is required: the kubeconfig that reaches the cluster")
			}
			b, err := os.ReadFile(kubeconfig)
			if err != nil {
				return fmt.Errorf("--kubeconfig: %w", err)
			}
			add.Name, add.Kubeconfig = args[0], string(b)
			client := g.client()
			if allowExec {
				key, err := client.LocalKey(cmd.Context())
				if err != nil {
					return fmt.Errorf("--allow-exec: %w", err)
				}
				add.AllowExecProof = server.AllowExecProof(key, add.Name, add.Kubeconfig)
			}
			var v server.ClusterView
			if err := client.Do(cmd.Context(), http.MethodPost, "/api/v1/clusters", add, &v); err != nil {
				return fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
			}
			return g.print(cmd.OutOrStdout(), v, func(out io.Writer) {
				fmt.Fprintf(out, "cluster %s added (datacenter %s, router %s, namespace %s)\n", v.Name, v.Datacenter, v.Router, v.Namespace)
				if v.Reachable != nil && !*v.Reachable {
					fmt.Fprintf(out, "warning: its API server does not answer now: %s\n", v.Problem)
				}
			})
		},
	}
	addCmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster (required)")
	addCmd.Flags().StringVar(&add.Context, "context", "", "context of the kubeconfig (default: its current context)")
	addCmd.Flags().StringVar(&add.Datacenter, "datacenter", "", "datacenter or region of the cluster (default: its name)")
	addCmd.Flags().StringVar(&add.Namespace, "namespace", "", "namespace of the services (default \"default\")")
	addCmd.Flags().StringVar(&add.Router, "router", "", "traffic router: istio (default) or gatewayapi")
	addCmd.Flags().StringVar(&add.Prometheus, "prometheus", "", "Prometheus base URL for the release analysis in this cluster")
	addCmd.Flags().BoolVar(&allowExec, "allow-exec", false, "let the kubeconfig keep exec credential plugins, auth-providers and local file references (only on the control plane's machine, as the user who runs pave up)")
	addCmd.Flags().Int64Var(&add.Weight, "weight", 0, "share at the edge relative to the other clusters (default 1)")

	var watchList bool
	list := &cobra.Command{
		Use:   "list [--watch]",
		Short: "List clusters with their health and share of traffic at the edge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return watchOrPrint(cmd, g, watchList, func(ctx context.Context) (any, func(io.Writer), error) {
				var l server.ClusterList
				if err := g.client().Do(ctx, http.MethodGet, "/api/v1/clusters", nil, &l); err != nil {
					return nil, nil, err
				}
				return l, func(out io.Writer) { printClusters(out, l.Clusters) }, nil
			})
		},
	}
	list.Flags().BoolVarP(&watchList, "watch", "w", false, "print the list again whenever it changes")
	status := &cobra.Command{
		Use:               "status NAME",
		Short:             "Show one cluster, probing its API server now",
		Args:              exactArgs(1, "a cluster name"),
		ValidArgsFunction: completeClusters(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v server.ClusterView
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/clusters/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(out io.Writer) { printClusterStatus(out, v) })
		},
	}
	remove := &cobra.Command{
		Use:               "remove NAME",
		Short:             "Forget a Kubernetes cluster (its workloads are left as they are)",
		Args:              exactArgs(1, "a cluster name"),
		ValidArgsFunction: completeClusters(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().Do(cmd.Context(), http.MethodDelete, "/api/v1/clusters/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), map[string]string{"removed": args[0]}, func(out io.Writer) {
				fmt.Fprintf(out, "cluster %s removed\n", args[0])
			})
		},
	}
	drainCmd := func(drain bool) *cobra.Command {
		use, short, verb := "drain NAME [--pace 10%/min]", "Move traffic away from a cluster gradually, e.g. for an upgrade", "draining"
		if !drain {
			use, short, verb = "undrain NAME [--pace 10%/min]", "Bring a drained cluster's traffic back gradually", "bringing back"
		}
		var pace string
		var wait bool
		var timeout time.Duration
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Long: short + `. The pace is the part of the cluster's own
share moved per unit of time (10%/min drains it in 10 minutes); the edge
moves requests between clusters at that pace, with no request dropped.
With --wait the command follows the move to its end.`,
			Example:           "  pave cluster drain busan --pace 10%/min --wait\n  pave cluster undrain busan --pace 50%/min",
			Args:              exactArgs(1, "a cluster name"),
			ValidArgsFunction: completeClusters(g),
			RunE: func(cmd *cobra.Command, args []string) error {
				if _, err := fleet.ParsePace(pace); err != nil {
					return fmt.Errorf("--pace: %w", err)
				}
				path := "/api/v1/clusters/" + url.PathEscape(args[0])
				action := "/undrain"
				if drain {
					action = "/drain"
				}
				var v server.ClusterView
				if err := g.client().Do(cmd.Context(), http.MethodPost, path+action, server.DrainRequest{Pace: pace}, &v); err != nil {
					return err
				}
				if !wait {
					return g.print(cmd.OutOrStdout(), v, func(out io.Writer) {
						fmt.Fprintf(out, "cluster %s: %s at %s (serving at %.0f%% of its weight now)\n", v.Name, verb, pace, 100*v.DrainFactor)
					})
				}
				ctx := cmd.Context()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				timedOut := func() error {
					return exitCode{code: exitTimeout, msg: fmt.Sprintf("timed out after %s: cluster %s is at %.0f%% of its weight and the move goes on; watch it with `pave cluster list --watch`",
						timeout, v.Name, 100*v.DrainFactor)}
				}
				for {
					if err := g.client().Do(ctx, http.MethodGet, path, nil, &v); err != nil {
						if ctx.Err() == context.DeadlineExceeded {
							return timedOut()
						}
						return err
					}
					if !g.machine() {
						fmt.Fprintf(cmd.ErrOrStderr(), "cluster %s: %s, %.0f%% of its weight, %.2f%% of traffic\n", v.Name, verb, 100*v.DrainFactor, v.Share)
					}
					if (drain && v.DrainFactor == 0) || (!drain && v.DrainFactor == 1) {
						return g.print(cmd.OutOrStdout(), v, func(out io.Writer) {
							fmt.Fprintf(out, "cluster %s: %s\n", v.Name, map[bool]string{true: "drained", false: "serving fully again"}[drain])
						})
					}
					select {
					case <-ctx.Done():
						if ctx.Err() == context.DeadlineExceeded {
							return timedOut()
						}
						return ctx.Err()
					case <-time.After(2 * time.Second):
					}
				}
			},
		}
		c.Flags().StringVar(&pace, "pace", fleet.DefaultPace, "how fast: PERCENT%/UNIT with unit s, min or h")
		c.Flags().BoolVar(&wait, "wait", false, "follow the move until it is complete")
		c.Flags().DurationVar(&timeout, "timeout", 0, "with --wait, stop after this long (exit 4; the move goes on)")
		return c
	}
	lose := &cobra.Command{
		Use:   "lose NAME",
		Short: "Failover drill: kill an embedded cluster's gateway and instances",
		Long: `Simulate the loss of a whole embedded cluster (pave up --clusters a,b): its
instances are killed with SIGKILL and its gateway stops answering, until pave
up restarts. The edge retries in another cluster every idempotent request and
every request no byte of which reached the lost cluster's instances, and the
fleet controller moves the cluster's share to the others. A POST already
sent to an instance when it was killed fails with a 502 marked
X-Pave-Gateway-Error: upstream (it may have been acted on, so no gateway
repeats it); pave demo counts those apart (docs/fleet.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a server.LoseAnswer
			if err := g.client().Do(cmd.Context(), http.MethodPost, "/api/v1/clusters/"+url.PathEscape(args[0])+"/lose", nil, &a); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), a, func(out io.Writer) {
				fmt.Fprintf(out, "cluster %s lost: %d instances killed, gateway stopped; watch pave cluster list\n", a.Cluster, a.KilledInstances)
			})
		},
	}
	cmd.AddCommand(addCmd, list, status, remove, drainCmd(true), drainCmd(false), lose)
	return cmd
}

func clusterState(v server.ClusterView) string {
	switch {
	case v.Health.State == fleet.Failed:
		return "failed"
	case v.Drain.Draining && v.DrainFactor == 0:
		return "drained"
	case v.Drain.Draining:
		return "draining"
	case v.DrainFactor < 1:
		return "undraining"
	}
	return "serving"
}

func printClusters(out io.Writer, cs []server.ClusterView) {
	if len(cs) == 0 {
		fmt.Fprintln(out, "no clusters; register one with pave cluster add, or run pave up --clusters a,b")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tDATACENTER\tSTATE\tSHARE\tHEALTH SINCE\tREASON")
	for _, c := range cs {
		since := "-"
		if !c.Health.Since.IsZero() {
			since = c.Health.Since.Local().Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f%%\t%s\t%s\n", c.Name, c.Kind, orDash(c.Datacenter), clusterState(c), c.Share, since, orDash(c.Health.Reason))
	}
	tw.Flush()
}

func printClusterStatus(out io.Writer, v server.ClusterView) {
	fmt.Fprintf(out, "cluster %s (%s, datacenter %s): %s, %.2f%% of traffic at the edge\n", v.Name, v.Kind, orDash(v.Datacenter), clusterState(v), v.Share)
	if v.Reachable != nil {
		if *v.Reachable {
			fmt.Fprintln(out, "  reachable now")
		} else {
			fmt.Fprintf(out, "  NOT reachable now: %s\n", v.Problem)
		}
	}
	fmt.Fprintf(out, "  health: %s", v.Health.State)
	if !v.Health.Since.IsZero() {
		fmt.Fprintf(out, " since %s", v.Health.Since.Local().Format(time.RFC3339))
	}
	if v.Health.Reason != "" {
		fmt.Fprintf(out, " (%s)", v.Health.Reason)
	}
	fmt.Fprintln(out)
	if v.Kind == fleet.KindKubernetes {
		fmt.Fprintf(out, "  router %s, namespace %s, prometheus %s\n", v.Router, v.Namespace, orDash(v.Prometheus))
	}
}
