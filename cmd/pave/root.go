package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/apiclient"
)

// commands is filled by each command file's init, one file per command
// group, so adding a command touches one file.
var commands []func(*globals) *cobra.Command

func register(f func(*globals) *cobra.Command) { commands = append(commands, f) }

// defaultServer is the control plane of a local `pave up`.
const defaultServer = "http://127.0.0.1:7070"

// globals are the flags every client command shares.
type globals struct {
	server  string // --server
	token   string // --token
	output  string // -o as given
	context string // --context

	format     outputFormat // -o parsed
	httpClient *http.Client // trusts the context's CA file, when it has one
}

// client calls the control plane chosen by, in order: --server, PAVE_SERVER,
// the current context of the config file, the local default.
func (g *globals) client() *apiclient.Client {
	c := apiclient.New(g.server, g.token)
	if g.httpClient != nil {
		c.HTTP = g.httpClient
	}
	return c
}

// json reports whether the user asked for JSON.
func (g *globals) json() bool { return g.format.kind == outJSON }

// machine reports whether the output is for programs: json, yaml, name,
// jsonpath.
func (g *globals) machine() bool { return g.format.machine() }

// wide reports -o wide: the text view with more columns.
func (g *globals) wide() bool { return g.format.kind == outWide }

// print writes v in the -o format, or calls text for text and wide.
func (g *globals) print(w io.Writer, v any, text func(io.Writer)) error {
	if g.format.kind == "" {
		g.format.kind = outText
	}
	if g.format.kind == outRaw {
		return fmt.Errorf("-o raw is for `pave logs`; here use text, wide, json, yaml, name or jsonpath=TEMPLATE")
	}
	if g.machine() {
		return g.format.write(w, v)
	}
	text(w)
	return nil
}

func rootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "pave",
		Short: "Pave ships many services fast, often, and without breaking production",
		Long: `Pave ships many services fast, often, and without breaking production.

pave up runs the control plane; every other command is its client. Reads take
-o text|wide|json|yaml|name|jsonpath=TEMPLATE. The control plane is chosen by
--server, else PAVE_SERVER, else the current context (pave config), else
` + defaultServer + `. Exit statuses: 0 ok, 1 error, 2 rolled back, 3 failed or
aborted, 4 timed out, 5 control plane unreachable (see docs/cli.md).`,
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseOutput(g.output)
			if err != nil {
				return err
			}
			g.format = f
			if isLocal(cmd) {
				return nil
			}
			return g.resolveTarget(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "control plane address, e.g. 127.0.0.1:7070 (env PAVE_SERVER; default: the current context, else "+defaultServer+")")
	pf.StringVar(&g.token, "token", "", "API token (env PAVE_TOKEN; default: the current context's)")
	pf.StringVar(&g.context, "context", "", "use this context of the config file instead of the current one")
	pf.StringVarP(&g.output, "output", "o", outText, "output format: text, wide, json, yaml, name or jsonpath=TEMPLATE")
	pf.StringVar(&apiclient.CAFile, "ca-file", apiclient.CAFile, "CA certificate (PEM) the control plane's TLS certificate must chain to (env PAVE_CA_FILE; default: the current context's)")
	pf.StringVar(&apiclient.ClientCertFile, "client-certificate", apiclient.ClientCertFile, "client certificate (PEM) for a control plane started with --tls-client-ca (env PAVE_CLIENT_CERT)")
	pf.StringVar(&apiclient.ClientKeyFile, "client-key", apiclient.ClientKeyFile, "private key (PEM) of --client-certificate (env PAVE_CLIENT_KEY)")
	for _, f := range commands {
		root.AddCommand(f(g))
	}
	root.SetFlagErrorFunc(flagErrorWithUsage)
	addArgumentHints(root)
	return root
}

// resolveTarget fills server, token and CA file: flags first, then the
// environment, then the context (contract 9's order for the token).
func (g *globals) resolveTarget(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if !flags.Changed("token") {
		g.token = os.Getenv("PAVE_TOKEN")
	}
	serverSet := flags.Changed("server")
	if !serverSet {
		if env := os.Getenv("PAVE_SERVER"); env != "" {
			g.server, serverSet = env, true
		}
	}
	ctxName := g.context
	if ctxName == "" {
		ctxName = os.Getenv("PAVE_CONTEXT")
	}
	cfg, path, err := loadCLIConfig()
	if err != nil {
		return err
	}
	if ctxName == "" {
		ctxName = cfg.CurrentContext
	}
	if ctxName != "" {
		c, ok := cfg.find(ctxName)
		if !ok {
			if g.context != "" || !serverSet {
				return fmt.Errorf("context %q is not in %s; list them with `pave config get-contexts`", ctxName, path)
			}
		} else if !serverSet {
			// A context's token and CA belong to its server: they are
			// not sent to a server named by --server or PAVE_SERVER.
			g.server = c.Server
			if g.token == "" {
				g.token = c.Token
			}
			if c.CAFile != "" && apiclient.CAFile == "" {
				if g.httpClient, err = apiclient.HTTPClientWithCA(c.CAFile); err != nil {
					return fmt.Errorf("context %q: %w", ctxName, err)
				}
			}
		}
	}
	if g.server == "" {
		g.server = defaultServer
	}
	g.server, err = normaliseServer(g.server)
	return err
}

// normaliseServer accepts an address without a scheme: http for a loopback
// host (a local `pave up`), https otherwise.
func normaliseServer(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	if s == "" {
		return "", fmt.Errorf("--server / PAVE_SERVER is empty; give an address such as 127.0.0.1:7070")
	}
	if strings.Contains(s, "://") {
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			return "", fmt.Errorf("server address %q: the scheme must be http or https", s)
		}
		return s, nil
	}
	host := s
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return "http://" + s, nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return "http://" + s, nil
	}
	return "https://" + s, nil
}
