package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/server"
)

func init() { register(tokenCommand) }

func tokenCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (roles: viewer, deployer, admin; ingest for OTLP from other machines)"}
	var role, name, dataDir, stateStore string
	create := &cobra.Command{
		Use:   "create --role ROLE [--name NAME]",
		Short: "Create a token; its secret is printed once",
		Long: `Create an API token. Through the API this needs an admin token.
To bootstrap the first admin token of a control plane that requires tokens,
write it straight into the control plane's state store: --data-dir names
its data directory (its state.db, or the state store that pave.yaml or
PAVE_STATE_STORE set there), --state-store names the store itself, e.g.
--state-store 'postgres://pave@db:5432/pave?sslmode=verify-full'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			var resp server.TokenResponse
			if dataDir != "" || stateStore != "" {
				store, err := openTokenStore(cmd, dataDir, stateStore)
				if err != nil {
					return err
				}
				defer store.Close()
				tok, secret, err := auth.Tokens{Store: store}.Create(cmd.Context(), name, r)
				if err != nil {
					return err
				}
				resp = server.TokenResponse{Token: tok, Secret: secret}
			} else if err := g.client().Do(cmd.Context(), http.MethodPost, "/api/v1/tokens", server.TokenRequest{Name: name, Role: r.String()}, &resp); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w io.Writer) {
				fmt.Fprintf(w, "token %s (role %s) created; it is shown only now:\n%s\n", resp.ID, resp.Role, resp.Secret)
			})
		},
	}
	create.Flags().StringVar(&role, "role", "", "viewer, deployer, admin or ingest (required)")
	create.Flags().StringVar(&name, "name", "", "a label for the token, e.g. ci-orders")
	create.Flags().StringVar(&dataDir, "data-dir", "", "write directly into a control plane's data directory (bootstrap)")
	create.Flags().StringVar(&stateStore, "state-store", "", "write directly into this state store: sqlite (with --data-dir) or postgres://… (bootstrap; env PAVE_STATE_STORE with --data-dir)")
	_ = create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var toks []auth.Token
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/tokens", nil, &toks); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), toks, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED")
				for _, t := range toks {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.Created.Format("2006-01-02 15:04"))
				}
				tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.client().Do(context.WithoutCancel(cmd.Context()), http.MethodDelete, "/api/v1/tokens/"+args[0], nil, nil)
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
