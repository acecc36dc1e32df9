package main

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(statusCommand) }

func statusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the control plane: its state store and which replica leads",
		Long: `Show the control plane the CLI talks to: its version, its state store, the
replica that answered and the replica that leads (runs the release engine and
the fleet controller). With several replicas on one PostgreSQL, any replica
answers; the leader is the same for all.

  pave status
  pave status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st controlPlaneStatus
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/control-plane", nil, &st); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(w io.Writer) { printStatus(w, st, time.Now()) })
		},
	}
}

func printStatus(w io.Writer, st controlPlaneStatus, now time.Time) {
	role := "standby"
	if st.Replica.Leading {
		role = "leader"
	}
	fmt.Fprintf(w, "version      %s\n", st.Version)
	fmt.Fprintf(w, "state store  %s\n", st.StateStore)
	fmt.Fprintf(w, "this replica %s at %s (%s)\n", st.Replica.ID, st.Replica.Address, role)
	l := st.Leader
	switch {
	case l == nil:
		fmt.Fprintln(w, "leader       none elected yet")
	case !l.Live:
		fmt.Fprintf(w, "leader       none: the lease of %s (token %d) expired %s ago; a standby takes over within the leader-lease\n",
			l.ID, l.Token, now.Sub(l.Expires).Round(time.Second))
	default:
		fmt.Fprintf(w, "leader       %s at %s, token %d, leading for %s\n", l.ID, l.Address, l.Token, l.Age)
	}
}
