package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/scaffold"
)

func init() { register(newCommand) }

// answerFlags maps an answer to the flag that sets it, so errors name what
// the user typed.
var answerFlags = map[string]string{
	"name": "NAME", "domain": "--domain", "memory": "--memory", "owner": "--owner", "dir": "--dir",
	"module": "--module", "cpu": "--cpu", "clusters": "--clusters", "registry": "--registry",
	"paveServer": "--pave-server", "kitReplace": "--kit-replace",
}

func newCommand(g *globals) *cobra.Command {
	var (
		flags       scaffold.Answers
		dir         string
		answersFile string
		force       bool
		noTidy      bool
		noReplace   bool
		version     int
	)
	cmd := &cobra.Command{
		Use:   "new NAME [--domain DOMAIN] [--memory 512Mi] [--owner TEAM] [--dir PATH]",
		Short: "Create a service repository ready to ship (works without the control plane)",
		Long: `Create a service's repository from Pave's template: Go source on kit, go.mod,
Dockerfile, a CI workflow calling Pave's reusable workflow, kustomize manifests
with Istio and Gateway API routing, a Grafana dashboard, SLO alert rules, and
.pave.yaml recording the answers and the template version for pave upgrade.

Only NAME is required. Answers can also come from --answers FILE (YAML with
the keys name, module, domain, owner, memory, cpu, minReplicas, maxReplicas,
clusters, registry, paveServer, availabilityObjective, latencyObjective,
latencyThreshold, goVersion, kitVersion, kitReplace); flags override it.

When pave runs from a source checkout (or with --kit-replace DIR), go.mod
replaces kit with that checkout's kit so the service builds offline.`,
		Example: `  pave new orders --owner payments --memory 512Mi
  pave new orders --answers answers.yaml --dir ./services/orders
  pave new orders --output json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var a scaffold.Answers
			if answersFile != "" {
				data, err := os.ReadFile(answersFile)
				if err != nil {
					return fmt.Errorf("--answers: %w", err)
				}
				if a, err = scaffold.ParseAnswers(data); err != nil {
					return fmt.Errorf("--answers %s: %w", answersFile, err)
				}
			}
			if len(args) == 1 {
				a.Name = args[0]
			}
			set := func(flag string, dst *string, v string) {
				if cmd.Flags().Changed(flag) {
					*dst = v
				}
			}
			set("module", &a.Module, flags.Module)
			set("domain", &a.Domain, flags.Domain)
			set("owner", &a.Owner, flags.Owner)
			set("memory", &a.Memory, flags.Memory)
			set("cpu", &a.CPU, flags.CPU)
			set("registry", &a.Registry, flags.Registry)
			set("pave-server", &a.PaveServer, flags.PaveServer)
			if cmd.Flags().Changed("clusters") {
				a.Clusters = flags.Clusters
			}
			if a.Name == "" {
				return errors.New("NAME: missing: give the service's name, e.g. pave new orders")
			}
			switch {
			case noReplace:
				a.KitReplace = ""
			case cmd.Flags().Changed("kit-replace"):
				abs, err := filepath.Abs(flags.KitReplace)
				if err != nil || !scaffold.IsKitDir(abs) {
					return fmt.Errorf("--kit-replace %s: not a directory holding the module %s (pass Pave's kit/ directory)", flags.KitReplace, scaffold.KitModule)
				}
				a.KitReplace = abs
			case a.KitReplace == "":
				cwd, _ := os.Getwd()
				exe, _ := os.Executable()
				a.KitReplace = scaffold.FindKitCheckout(cwd, filepath.Dir(exe))
			}
			goCmd := ""
			if !noTidy {
				goCmd = scaffold.GoCommand()
			}
			res, err := scaffold.New(cmd.Context(), scaffold.NewOptions{Answers: a, Dir: dir, Force: force, Version: version, GoCommand: goCmd})
			if err != nil {
				return flagError(err)
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) {
				fmt.Fprintf(w, "Created %s in %s (template v%d, %d files in %.0f ms)\n", res.Name, res.Dir, res.TemplateVersion, len(res.Files), res.DurationMS)
				fmt.Fprintf(w, "  files:  %s\n", scaffold.DescribeFiles(res.Files))
				if res.KitReplace != "" {
					fmt.Fprintf(w, "  kit:    replaced by %s\n", res.KitReplace)
				}
				fmt.Fprintf(w, "  go.sum: %s\n", res.GoSum)
				rel := res.Dir
				if cwd, err := os.Getwd(); err == nil {
					if r, err := filepath.Rel(cwd, res.Dir); err == nil && !strings.HasPrefix(r, "..") {
						rel = r
					}
				}
				goEnv := ""
				if work := enclosingWorkspace(res.Dir); work != "" {
					// pave run builds it the same way.
					fmt.Fprintf(w, "  go.work: %s is outside the workspace of %s; build it on its own with GOWORK=off\n", res.Name, work)
					goEnv = "GOWORK=off "
				}
				// Port 8090: pave up's gateway has 8080.
				fmt.Fprintf(w, "Next:\n  cd %s && git init -q && git add -A && git commit -qm 'pave new %s'\n  %sgo test ./... && PORT=8090 %sgo run .\n", rel, res.Name, goEnv, goEnv)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.Domain, "domain", scaffold.DefaultDomain, "DNS domain; the service is reached as NAME.DOMAIN")
	f.StringVar(&flags.Memory, "memory", scaffold.DefaultMemory, "memory request and limit (Kubernetes quantity)")
	f.StringVar(&flags.CPU, "cpu", scaffold.DefaultCPU, "CPU request (Kubernetes quantity)")
	f.StringVar(&flags.Owner, "owner", scaffold.DefaultOwner, "owning team (DNS-1123 label; also the namespace)")
	f.StringVar(&flags.Module, "module", "", "Go module path (default example.com/OWNER/NAME)")
	f.StringSliceVar(&flags.Clusters, "clusters", scaffold.DefaultClusters, "clusters, one kustomize overlay each")
	f.StringVar(&flags.Registry, "registry", scaffold.DefaultRegistry, "image repository prefix CI pushes to")
	f.StringVar(&flags.PaveServer, "pave-server", scaffold.DefaultPaveServer, "Pave control plane URL CI releases through")
	f.StringVar(&flags.KitReplace, "kit-replace", "", "build against this local kit directory (default: the source checkout pave runs from, if any)")
	f.BoolVar(&noReplace, "no-kit-replace", false, "require the released kit even when running from a source checkout")
	f.StringVar(&dir, "dir", "", "directory to create (default ./NAME)")
	f.StringVar(&answersFile, "answers", "", "YAML file with the answers")
	f.BoolVar(&force, "force", false, "write into a directory that is not empty")
	f.BoolVar(&noTidy, "no-tidy", false, "do not run `go mod tidy` offline to write go.sum")
	f.IntVar(&version, "template-version", 0, "render an older template version (for testing upgrades)")
	_ = f.MarkHidden("template-version")
	return cmd
}

// flagError rewrites a scaffold field error to name the flag that sets it.
func flagError(err error) error {
	var fe *scaffold.FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if i := strings.IndexByte(field, '['); i > 0 {
			field = field[:i]
		}
		if flag, ok := answerFlags[field]; ok {
			return fmt.Errorf("%s (%s): %w", flag, fe.Field, fe.Err)
		}
	}
	return err
}

// enclosingWorkspace is the go.work the go command would use in a new
// service's directory, found as the go command finds it (GOWORK, else the
// nearest go.work above); "" when none. A new service is never one of its
// modules, so go build and go test there fail unless GOWORK=off.
func enclosingWorkspace(dir string) string {
	switch w := os.Getenv("GOWORK"); w {
	case "off":
		return ""
	case "":
	default:
		return w
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(filepath.Join(d, "go.work")); err == nil && !fi.IsDir() {
			return filepath.Join(d, "go.work")
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}
