package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/traffic"
)

func init() { register(trafficCommand) }

func trafficCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "traffic", Short: "Show and set how a service's traffic is split between versions"}
	set := &cobra.Command{
		Use:   "set SERVICE VERSION=PERCENT...",
		Short: "Set the split of a service's traffic, e.g. v1=99 v2=1",
		Long: `Set the weights of a service's versions in percent, decimals allowed down to
0.0001%. The weights must sum to 100 and name versions the service has (ready
instances or an earlier weight). The change is recorded, then applied to the
gateway atomically; on any error the previous split stays in force.`,
		Example: "  pave traffic set orders v1=99 v2=1\n  pave traffic set orders v1=99.99 v2=0.01",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := args[0]
			if err := traffic.ValidName("service", service); err != nil {
				return err
			}
			w, err := traffic.ParseAssignments(args[1:])
			if err != nil {
				return err
			}
			var v server.TrafficView
			if err := g.client().Do(cmd.Context(), http.MethodPut, "/api/v1/traffic/"+url.PathEscape(service), server.TrafficSetRequest{Weights: w}, &v); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(out io.Writer) {
				fmt.Fprintf(out, "%s: traffic set to %s\n", service, v.Weights)
			})
		},
	}
	show := &cobra.Command{
		Use:   "show SERVICE",
		Short: "Show a service's weights, instances and live statistics",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := traffic.ValidName("service", args[0]); err != nil {
				return err
			}
			var v server.TrafficView
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/traffic/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(out io.Writer) { printTraffic(out, v) })
		},
	}
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
		Long: `Replace the gateway's explicit routes with the given ones (none: remove all).
A route sends requests for HOST (omitted: any host) whose path starts with
PREFIX to SERVICE; the longest prefix wins. Routes with the same host and
prefix collide and are refused; the previous routes then stay in force.`,
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
	routes.AddCommand(routesSet)
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
		fmt.Fprintf(out, "%s: %s (%s)\n", v.Service, v.Weights, v.State)
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
