package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

func init() { register(tokenCommand) }

func tokenCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens (roles: viewer, deployer, admin; ingest for OTLP from other machines)"}
	var role, name, dataDir string
	create := &cobra.Command{
		Use:   "create --role ROLE [--name NAME]",
		Short: "Create a token; its secret is printed once",
		Long: `Create an API token. Through the API this needs an admin token.
To bootstrap the first admin token of a control plane that requires tokens,
run it on the control plane's machine with --data-dir pointing at its data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			var resp server.TokenResponse
			if dataDir != "" {
				store, err := state.OpenSQLite(filepath.Join(dataDir, "state.db"))
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
