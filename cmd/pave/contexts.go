package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func init() { register(configCommand) }

// cliConfig is the client's config file, ~/.config/pave/config.yaml: named
// contexts, one per control plane, as kubeconfig has.
type cliConfig struct {
	CurrentContext string       `json:"current-context,omitempty"`
	Contexts       []cliContext `json:"contexts,omitempty"`
}

// cliContext is how to reach one control plane.
type cliContext struct {
	Name   string `json:"name"`
	Server string `json:"server,omitempty"`
	Token  string `json:"token,omitempty"`
	CAFile string `json:"ca-file,omitempty"`
}

func (c *cliConfig) find(name string) (cliContext, bool) {
	i := slices.IndexFunc(c.Contexts, func(x cliContext) bool { return x.Name == name })
	if i < 0 {
		return cliContext{}, false
	}
	return c.Contexts[i], true
}

func (c *cliConfig) names() []string {
	out := make([]string, len(c.Contexts))
	for i, x := range c.Contexts {
		out[i] = x.Name
	}
	return out
}

// cliConfigPath is $XDG_CONFIG_HOME/pave/config.yaml, else
// ~/.config/pave/config.yaml; PAVE_CONFIG names another file.
func cliConfigPath() (string, error) {
	if p := os.Getenv("PAVE_CONFIG"); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("find the config file: %w (set XDG_CONFIG_HOME or PAVE_CONFIG)", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "pave", "config.yaml"), nil
}

// loadCLIConfig reads the config file; a missing file is an empty config.
func loadCLIConfig() (cliConfig, string, error) {
	path, err := cliConfigPath()
	if err != nil {
		return cliConfig{}, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cliConfig{}, path, nil
	}
	if err != nil {
		return cliConfig{}, path, fmt.Errorf("read the config file: %w", err)
	}
	var c cliConfig
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return cliConfig{}, path, fmt.Errorf("config file %s: %w (keys: current-context, contexts[].name/server/token/ca-file)", path, err)
	}
	return c, path, nil
}

// save writes the file readable by its owner only: it holds tokens.
func (c *cliConfig) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write the config file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write the config file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the config file: %w", err)
	}
	return nil
}

func configCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Name control planes (contexts) and choose the current one",
		Long: `Contexts name control planes: a server address, a token and a CA file.
They live in $XDG_CONFIG_HOME/pave/config.yaml (default ~/.config/pave/config.yaml,
or the file PAVE_CONFIG names). --server and PAVE_SERVER still win over the
current context; --context or PAVE_CONTEXT pick another one for one command.`,
		Example: `  pave config set-context prod --server pave.prod.example:7070 --token $TOKEN --ca-file ./ca.pem
  pave config set-context local --server 127.0.0.1:7070
  pave config use-context prod
  pave config get-contexts`,
		Annotations: map[string]string{annotationLocal: "true"},
	}
	get := &cobra.Command{
		Use:   "get-contexts",
		Short: "List the contexts; * marks the current one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := loadCLIConfig()
			if err != nil {
				return err
			}
			shown := make([]cliContext, len(c.Contexts))
			for i, x := range c.Contexts {
				if x.Token != "" {
					x.Token = "(set)" // never printed
				}
				shown[i] = x
			}
			return g.print(cmd.OutOrStdout(), shown, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tTOKEN\tCA-FILE")
				for _, x := range shown {
					cur := ""
					if x.Name == c.CurrentContext {
						cur = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, x.Name, orDash(x.Server), orDash(x.Token), orDash(x.CAFile))
				}
				tw.Flush()
			})
		},
	}
	current := &cobra.Command{
		Use:   "current-context",
		Short: "Print the current context's name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, path, err := loadCLIConfig()
			if err != nil {
				return err
			}
			if c.CurrentContext == "" {
				return fmt.Errorf("no current context in %s; choose one with `pave config use-context NAME`", path)
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.CurrentContext)
			return nil
		},
	}
	use := &cobra.Command{
		Use:               "use-context NAME",
		Short:             "Make NAME the current context",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := loadCLIConfig()
			if err != nil {
				return err
			}
			if _, ok := c.find(args[0]); !ok {
				return fmt.Errorf("no context %q in %s%s; add it with `pave config set-context %s --server ADDRESS`",
					args[0], path, didYouMean(args[0], c.names()), args[0])
			}
			c.CurrentContext = args[0]
			if err := c.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "switched to context %q\n", args[0])
			return nil
		},
	}
	var set cliContext
	var makeCurrent bool
	setCtx := &cobra.Command{
		Use:   "set-context NAME [--server ADDRESS] [--token TOKEN] [--ca-file FILE] [--current]",
		Short: "Add a context or change the fields given of an existing one",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := loadCLIConfig()
			if err != nil {
				return err
			}
			fl := cmd.Flags()
			x, existed := c.find(args[0])
			x.Name = args[0]
			if fl.Changed("server") {
				if x.Server, err = normaliseServer(set.Server); err != nil {
					return err
				}
			}
			if fl.Changed("token") {
				x.Token = set.Token
			}
			if fl.Changed("ca-file") {
				x.CAFile = ""
				if set.CAFile != "" {
					if x.CAFile, err = filepath.Abs(set.CAFile); err != nil {
						return err
					}
					if _, err := apiclient.HTTPClientWithCA(x.CAFile); err != nil {
						return err
					}
				}
			}
			if x.Server == "" {
				return fmt.Errorf("context %q needs a server: add --server ADDRESS, e.g. --server 127.0.0.1:7070", x.Name)
			}
			if existed {
				c.Contexts[slices.IndexFunc(c.Contexts, func(y cliContext) bool { return y.Name == x.Name })] = x
			} else {
				c.Contexts = append(c.Contexts, x)
			}
			if makeCurrent || c.CurrentContext == "" {
				c.CurrentContext = x.Name
			}
			if err := c.save(path); err != nil {
				return err
			}
			verb := "added"
			if existed {
				verb = "changed"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q %s in %s (current: %s)\n", x.Name, verb, path, c.CurrentContext)
			return nil
		},
	}
	// These flags shadow the global --server and --token on purpose: here
	// they are stored, not used.
	setCtx.Flags().StringVar(&set.Server, "server", "", "the control plane's address, e.g. pave.example.com:7070")
	setCtx.Flags().StringVar(&set.Token, "token", "", "the API token to send it")
	setCtx.Flags().StringVar(&set.CAFile, "ca-file", "", "a PEM file of CA certificates to trust for it")
	setCtx.Flags().BoolVar(&makeCurrent, "current", false, "also make it the current context")
	del := &cobra.Command{
		Use:               "delete-context NAME",
		Short:             "Remove a context",
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := loadCLIConfig()
			if err != nil {
				return err
			}
			before := len(c.Contexts)
			c.Contexts = slices.DeleteFunc(c.Contexts, func(x cliContext) bool { return x.Name == args[0] })
			if len(c.Contexts) == before {
				return fmt.Errorf("no context %q in %s%s", args[0], path, didYouMean(args[0], c.names()))
			}
			if c.CurrentContext == args[0] {
				c.CurrentContext = ""
			}
			if err := c.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "context %q deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(get, current, use, setCtx, del)
	return cmd
}

func completeContexts(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, _, err := loadCLIConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	return c.names(), cobra.ShellCompDirectiveNoFileComp
}
