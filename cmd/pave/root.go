package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/apiclient"
)

// commands is filled by each command file's init, one file per command
// group, so adding a command touches one file.
var commands []func(*globals) *cobra.Command

func register(f func(*globals) *cobra.Command) { commands = append(commands, f) }

// globals are the flags every client command shares.
type globals struct {
	server string
	token  string
	output string
}

func (g *globals) client() *apiclient.Client { return apiclient.New(g.server, g.token) }

// json reports whether the user asked for machine-readable output.
func (g *globals) json() bool { return g.output == "json" }

// print writes v as indented JSON when --output json, else calls text.
func (g *globals) print(w io.Writer, v any, text func(io.Writer)) error {
	if g.json() {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(w)
	return nil
}

func rootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "pave",
		Short:         "Pave ships many services fast, often, and without breaking production",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output %q: want text or json", g.output)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.server, "server", envOr("PAVE_SERVER", "http://127.0.0.1:7070"), "control plane address (env PAVE_SERVER)")
	root.PersistentFlags().StringVar(&g.token, "token", os.Getenv("PAVE_TOKEN"), "API token (env PAVE_TOKEN)")
	root.PersistentFlags().StringVar(&apiclient.CAFile, "ca-file", apiclient.CAFile, "CA certificate (PEM) the control plane's TLS certificate must chain to (env PAVE_CA_FILE)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	for _, f := range commands {
		root.AddCommand(f(g))
	}
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
