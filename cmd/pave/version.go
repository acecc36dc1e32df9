package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/buildinfo"
)

func init() { register(versionCommand) }

func versionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of pave: module version, VCS revision, Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			return g.print(cmd.OutOrStdout(), info, func(w io.Writer) {
				fmt.Fprintf(w, "pave %s %s", info, info.Go)
				if info.Time != "" {
					fmt.Fprintf(w, " built from a commit of %s", info.Time)
				}
				fmt.Fprintln(w)
			})
		},
	}
}
