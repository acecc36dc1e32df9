package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/buildinfo"
)

func init() { register(versionCommand) }

func versionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of pave",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": buildinfo.Version, "commit": buildinfo.Commit(), "go": runtime.Version()}
			return g.print(cmd.OutOrStdout(), v, func(w io.Writer) {
				fmt.Fprintf(w, "pave %s (%s)\n", buildinfo.Version, runtime.Version())
			})
		},
	}
}
