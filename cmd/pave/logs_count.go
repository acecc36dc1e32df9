package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/telemetry"
)

// withCountBy adds --count-by to `pave logs`: instead of lines, how many
// matching lines hold each value of a field (GET /api/v1/logs/count), e.g.
// `pave logs --since 15m --count-by status`. The store answers from its
// blocks' footers where it can, without reading the lines.
func withCountBy(g *globals, cmd *cobra.Command, values func() (url.Values, error)) *cobra.Command {
	var by string
	cmd.Flags().StringVar(&by, "count-by", "", "count matching lines by this field's value (status, route, service, level, or any attribute) instead of listing them")
	cmd.Example += "\n  pave logs --since 15m --count-by status"
	list := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if by == "" {
			return list(cmd, args)
		}
		for _, f := range []string{"follow", "cursor", "limit", "forward"} {
			if cmd.Flags().Changed(f) {
				return fmt.Errorf("--count-by counts every matching line: drop --%s", f)
			}
		}
		v, err := values()
		if err != nil {
			return err
		}
		v.Del("limit")
		v.Set("by", by)
		if _, _, err := telemetry.ParseCountQuery(v, time.Now()); err != nil {
			return fmt.Errorf("--count-by: %w", err)
		}
		var res telemetry.CountResult
		if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/logs/count?"+v.Encode(), nil, &res); err != nil {
			return err
		}
		if g.format.kind == outRaw {
			return fmt.Errorf("-o raw prints messages; with --count-by use text, json or yaml")
		}
		return g.print(cmd.OutOrStdout(), res, func(out io.Writer) {
			fmt.Fprintf(out, "%-24s %s\n", "VALUE ("+by+")", "LINES")
			for _, c := range res.Counts {
				v := c.Value
				if v == "" {
					v = "(none)"
				}
				fmt.Fprintf(out, "%-24s %d\n", v, c.Count)
			}
			fmt.Fprintf(out, "%-24s %d\n", "total", res.Total)
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
		})
	}
	return cmd
}
