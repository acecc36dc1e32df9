package main

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/release"
)

// Dynamic completion asks the control plane for names, as kubectl does for
// resources. Completion runs no PersistentPreRun, so each function chooses
// the server itself; it gives up quietly after a short timeout.

const completionTimeout = 2 * time.Second

func completionContext(cmd *cobra.Command, g *globals) (context.Context, context.CancelFunc, bool) {
	if err := g.resolveTarget(cmd); err != nil {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	return ctx, cancel, true
}

// serviceNames are the services the control plane knows: those with
// running instances and those with releases.
func serviceNames(ctx context.Context, g *globals) []string {
	seen := map[string]bool{}
	var ps struct {
		Deployments []struct {
			Service string `json:"service"`
		} `json:"deployments"`
	}
	if g.client().Do(ctx, http.MethodGet, "/api/v1/runtime", nil, &ps) == nil {
		for _, d := range ps.Deployments {
			seen[d.Service] = true
		}
	}
	var rs []release.Release
	if g.client().Do(ctx, http.MethodGet, "/api/v1/releases", nil, &rs) == nil {
		for _, r := range rs {
			seen[r.Spec.Service] = true
		}
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// completeFirstArg completes the first argument with the names list
// fetches from the control plane, and nothing after it.
func completeFirstArg(g *globals, list func(context.Context) []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel, ok := completionContext(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		return withPrefix(list(ctx), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeServices completes the first argument with service names.
func completeServices(g *globals) cobra.CompletionFunc {
	return completeFirstArg(g, func(ctx context.Context) []string { return serviceNames(ctx, g) })
}

// completeReleasesAndServices completes with release names and, since a
// service stands for its latest release, service names.
func completeReleasesAndServices(g *globals) cobra.CompletionFunc {
	return completeFirstArg(g, func(ctx context.Context) []string {
		names := map[string]bool{}
		var rs []release.Release
		if g.client().Do(ctx, http.MethodGet, "/api/v1/releases", nil, &rs) == nil {
			for _, r := range rs {
				names[r.Metadata.Name], names[r.Spec.Service] = true, true
			}
		}
		return sortedKeys(names)
	})
}

// versionNames are a service's versions: running, weighted or released.
func versionNames(ctx context.Context, g *globals, service string) []string {
	seen := map[string]bool{}
	var v struct {
		Weights   map[string]int64    `json:"weights"`
		Endpoints map[string][]string `json:"endpoints"`
	}
	if g.client().Do(ctx, http.MethodGet, "/api/v1/traffic/"+service, nil, &v) == nil {
		for k := range v.Weights {
			seen[k] = true
		}
		for k := range v.Endpoints {
			seen[k] = true
		}
	}
	var rs []release.Release
	if g.client().Do(ctx, http.MethodGet, "/api/v1/releases?service="+service, nil, &rs) == nil {
		for _, r := range rs {
			seen[r.Spec.Version] = true
		}
	}
	return sortedKeys(seen)
}

// completeServiceThenWeights completes `traffic set SERVICE VERSION=...`:
// services first, then VERSION= for each of the service's versions.
func completeServiceThenWeights(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		ctx, cancel, ok := completionContext(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		if len(args) == 0 {
			return withPrefix(serviceNames(ctx, g), toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, v := range versionNames(ctx, g, args[0]) {
			out = append(out, v+"=")
		}
		return withPrefix(out, toComplete), cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// completeFlagVersions completes --version with the versions of the
// service named by --service or the first argument.
func completeFlagVersions(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		service, _ := cmd.Flags().GetString("service")
		if service == "" && len(args) > 0 {
			service = args[0]
		}
		if service == "" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel, ok := completionContext(cmd, g)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cancel()
		return withPrefix(versionNames(ctx, g, service), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeClusters completes the first argument with cluster names.
func completeClusters(g *globals) cobra.CompletionFunc {
	return completeFirstArg(g, func(ctx context.Context) []string {
		var l struct {
			Clusters []struct {
				Name string `json:"name"`
			} `json:"clusters"`
		}
		names := map[string]bool{}
		if g.client().Do(ctx, http.MethodGet, "/api/v1/clusters", nil, &l) == nil {
			for _, c := range l.Clusters {
				names[c.Name] = true
			}
		}
		return sortedKeys(names)
	})
}
