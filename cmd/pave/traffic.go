package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/traffic"
)

func init() { register(trafficCommand) }

func trafficCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "traffic", Short: "Show and set how a service's traffic is split between versions"}
	var force bool
	set := &cobra.Command{
		Use:   "set SERVICE VERSION=PERCENT...",
		Short: "Set the split of a service's traffic, e.g. v1=99 v2=1",
		Long: `Set the weights of a service's versions in percent, decimals allowed down to
0.0001%. The weights must sum to 100 and name versions the service has (ready
instances or an earlier weight). The change is recorded, then applied to the
gateway atomically; on any error the previous split stays in force.

While a release of the service is unfinished the control plane refuses the
change, since the release would move traffic again; --force pauses the
release and sets the split (resume it with pave release resume SERVICE).`,
		Example:           "  pave traffic set orders v1=99 v2=1\n  pave traffic set orders v1=99.99 v2=0.01\n  pave traffic set orders v1=100 --force",
		Args:              minArgs(2, "SERVICE and at least one VERSION=PERCENT"),
		ValidArgsFunction: completeServiceThenWeights(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := args[0]
			if err := traffic.ValidName("service", service); err != nil {
				return err
			}
			w, err := traffic.ParseAssignments(args[1:])
			if err != nil {
				return err
			}
			// The body is TrafficSetRequest plus contract 5's force.
			req := struct {
				server.TrafficSetRequest
				Force bool `json:"force,omitempty"`
			}{server.TrafficSetRequest{Weights: w}, force}
			var raw json.RawMessage
			if err := g.client().Do(cmd.Context(), http.MethodPut, "/api/v1/traffic/"+url.PathEscape(service), req, &raw); err != nil {
				var apiErr *apiclient.Error
				if !force && errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
					return fmt.Errorf("%w\nadd --force to pause that release and set the split anyway", err)
				}
				return err
			}
			var v server.TrafficView
			var answer struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("decode the answer: %w", err)
			}
			_ = json.Unmarshal(raw, &answer)
			return g.print(cmd.OutOrStdout(), raw, func(out io.Writer) {
				fmt.Fprintf(out, "%s: traffic set to %s\n", service, v.Weights)
				if answer.Message != "" {
					fmt.Fprintln(out, answer.Message)
				}
			})
		},
	}
	var watch bool
	show := &cobra.Command{
		Use:               "show SERVICE [--watch]",
		Short:             "Show a service's weights, instances and live statistics",
		Args:              exactArgs(1, "SERVICE"),
		ValidArgsFunction: completeServices(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := traffic.ValidName("service", args[0]); err != nil {
				return err
			}
			return watchOrPrint(cmd, g, watch, func(ctx context.Context) (any, func(io.Writer), error) {
				var v server.TrafficView
				if err := g.client().Do(ctx, http.MethodGet, "/api/v1/traffic/"+url.PathEscape(args[0]), nil, &v); err != nil {
					return nil, nil, err
				}
				return v, func(out io.Writer) { printTraffic(out, v) }, nil
			})
		},
	}
	show.Flags().BoolVarP(&watch, "watch", "w", false, "print it again whenever it changes")
	set.Flags().BoolVar(&force, "force", false, "set the split even while a release runs: the release is paused")
	routes := &cobra.Command{
		Use:   "routes",
		Short: "Show the gateway's explicit host/path-prefix routes",
		Long: `Show the gateway's explicit routes. Without routes, a service is reached with
the Host SERVICE.localhost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r server.GatewayRoutes
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/gateway/routes", nil, &r); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), r, func(out io.Writer) { printRoutes(out, r.Routes) })
		},
	}
	routesSet := &cobra.Command{
		Use:   "set [HOST]/PREFIX=SERVICE...",
		Short: "Replace the gateway's explicit routes",
		Args:  minArgs(1, "at least one route [HOST]/PREFIX=SERVICE"),
		Long: `Replace the gateway's explicit routes with the given ones (at least one).
A route sends requests for HOST (omitted: any host) whose path starts with
PREFIX to SERVICE; the longest prefix wins. Routes with the same host and
prefix collide and are refused; the previous routes then stay in force.
"pave traffic routes clear" removes them all.`,
		Example: "  pave traffic routes set api.example.com/orders=orders api.example.com/pay=payments\n  pave traffic routes set /=frontend",
		RunE: func(cmd *cobra.Command, args []string) error {
			req := server.GatewayRoutes{Routes: []gateway.Route{}}
			for i, a := range args {
				r, err := parseRoute(a)
				if err != nil {
					return fmt.Errorf("argument %d: %w", i+1, err)
				}
				req.Routes = append(req.Routes, r)
			}
			var resp server.GatewayRoutes
			if err := g.client().Do(cmd.Context(), http.MethodPut, "/api/v1/gateway/routes", req, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(out io.Writer) { printRoutes(out, resp.Routes) })
		},
	}
	routesClear := &cobra.Command{
		Use:   "clear",
		Short: "Remove every explicit route (services stay reachable as SERVICE.localhost)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp server.GatewayRoutes
			if err := g.client().Do(cmd.Context(), http.MethodDelete, "/api/v1/gateway/routes", struct{}{}, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(out io.Writer) { printRoutes(out, resp.Routes) })
		},
	}
	routes.AddCommand(routesSet, routesClear)
	cmd.AddCommand(set, show, routes)
	return cmd
}

// parseRoute reads "[HOST]/PREFIX=SERVICE".
func parseRoute(s string) (gateway.Route, error) {
	target, service, ok := strings.Cut(s, "=")
	slash := strings.IndexByte(target, '/')
	if !ok || slash < 0 || service == "" {
		return gateway.Route{}, fmt.Errorf("%q: want [HOST]/PREFIX=SERVICE, e.g. api.example.com/orders=orders", s)
	}
	return gateway.Route{Host: target[:slash], PathPrefix: target[slash:], Service: service}, nil
}

func printRoutes(out io.Writer, routes []gateway.Route) {
	if len(routes) == 0 {
		fmt.Fprintln(out, "no explicit routes; services are reached with Host SERVICE.localhost")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPREFIX\tSERVICE")
	for _, r := range routes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", orDash(r.Host), r.PathPrefix, r.Service)
	}
	tw.Flush()
}

func printTraffic(out io.Writer, v server.TrafficView) {
	versions := map[string]bool{}
	for ver := range v.Weights {
		versions[ver] = true
	}
	for ver := range v.Endpoints {
		versions[ver] = true
	}
	for ver := range v.Stats {
		versions[ver] = true
	}
	names := make([]string, 0, len(versions))
	for ver := range versions {
		names = append(names, ver)
	}
	sort.Strings(names)
	if v.Weights == nil {
		fmt.Fprintf(out, "%s: no weights set; traffic is split evenly between versions with ready instances\n", v.Service)
	} else {
		line := v.Service + ": " + orNone(v.Weights.String())
		if v.State != "" {
			line += " (" + v.State + ")"
		}
		fmt.Fprintln(out, line)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tWEIGHT\tINSTANCES\tREQUESTS\tERRORS\tP50\tP99")
	for _, ver := range names {
		weight := "-"
		if p, ok := v.Weights[ver]; ok {
			weight = traffic.FormatPercent(p) + "%"
		}
		s := v.Stats[ver].Total
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", ver, weight, orDash(strings.Join(v.Endpoints[ver], ",")),
			s.Requests, percentOf(s.Errors, s.Requests), millis(s.Quantile(0.5)), millis(s.Quantile(0.99)))
	}
	tw.Flush()
	printUnjudged(out, names, v.Stats)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func percentOf(n, total uint64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(total))
}

func millis(ms float64) string {
	if math.IsNaN(ms) {
		return "-"
	}
	return fmt.Sprintf("%.1fms", ms)
}
