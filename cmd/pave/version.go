package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/buildinfo"
)

func init() { register(versionCommand) }

// noRevision says why a binary knows no commit and how to build one that
// does. Go stamps the revision only when it builds inside a git clone (a
// .git directory: a git worktree's .git file does not count) and
// -buildvcs is not false, as GOFLAGS on some machines and CI images set.
const noRevision = "no VCS revision: built outside a git clone (a git worktree counts as outside) or with -buildvcs=false; " +
	"build it with `go build -buildvcs=true -o bin/pave ./cmd/pave` in a clone"

func versionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of pave: module version, VCS revision, Go version",
		Long: `Print the version of pave from the Go build information: the module
version (a pseudo-version such as v0.0.0-20261203224616-e5e3a51d0f00 for a
build from a clone), the VCS revision and its time, and the Go version.
` + noRevision + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			return g.print(cmd.OutOrStdout(), info, func(w io.Writer) { fmt.Fprintln(w, versionLine(info)) })
		},
	}
}

// versionLine is "pave v0.0.0-…-e5e3a51d0f00 (e5e3a51d0f00), go1.26.10,
// committed 2026-12-03T22:46:16Z", or says why the revision is missing.
func versionLine(info buildinfo.Info) string {
	s := fmt.Sprintf("pave %s, %s", info, info.Go)
	switch {
	case info.Revision == "":
		s += "; " + noRevision
	case info.Time != "":
		s += ", committed " + info.Time
	}
	return s
}
