package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/spelling"
)

// annotationLocal marks a command that does not talk to a control plane, so
// a broken context in the config file does not stop it.
const annotationLocal = "pave/local"

// localCommands are the top-level commands that need no control plane.
var localCommands = map[string]bool{"up": true, "new": true, "demo": true, "version": true, "completion": true, "help": true, "upgrade": true}

func isLocal(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[annotationLocal] == "true" {
			return true
		}
		if c.HasParent() && !c.Parent().HasParent() && localCommands[c.Name()] {
			return true
		}
	}
	return false
}

// exactArgs is cobra.ExactArgs with an error that names what is missing
// and shows the usage line.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		if len(args) < n {
			return usageError(cmd, fmt.Errorf("missing %s", what))
		}
		return usageError(cmd, fmt.Errorf("too many arguments: want %s, got %q", what, args))
	}
}

// minArgs is cobra.MinimumNArgs with an error that names what is missing.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return usageError(cmd, fmt.Errorf("missing %s", what))
	}
}

// usageError adds the command's usage line and where to read more.
func usageError(cmd *cobra.Command, err error) error {
	return fmt.Errorf("%w\nusage: %s\nsee `%s --help` for examples", err, cmd.UseLine(), cmd.CommandPath())
}

func flagErrorWithUsage(cmd *cobra.Command, err error) error {
	return usageError(cmd, err)
}

// addArgumentHints gives every group command (one with subcommands and no
// action of its own) an error with "did you mean" for an unknown
// subcommand, as cobra gives only the root; and every cobra argument-count
// error the usage line.
func addArgumentHints(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case c.HasSubCommands() && c.Run == nil && c.RunE == nil && c != root:
			c.Args = unknownSubcommand
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		case c.Args != nil:
			inner := c.Args
			c.Args = func(cmd *cobra.Command, args []string) error {
				if err := inner(cmd, args); err != nil {
					if strings.Contains(err.Error(), "\nusage: ") {
						return err
					}
					return usageError(cmd, err)
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, s := range cmd.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	hint := didYouMean(args[0], names)
	return fmt.Errorf("unknown command %q for %q%s\nusage: %s COMMAND, where COMMAND is one of: %s", args[0], cmd.CommandPath(), hint,
		cmd.CommandPath(), strings.Join(names, ", "))
}

// didYouMean suggests the closest of names to s (Levenshtein distance at
// most 2, or a prefix), or "".
func didYouMean(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		d := spelling.Distance(strings.ToLower(s), strings.ToLower(n))
		if d < bestD || (best == "" && strings.HasPrefix(strings.ToLower(n), strings.ToLower(s))) {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// subcommandHint is "; did you mean `pave release status`?" when word is
// close to a subcommand of cmd, for commands that also take a free name.
func subcommandHint(cmd *cobra.Command, word string) string {
	var names []string
	for _, s := range cmd.Commands() {
		names = append(names, s.Name())
	}
	for _, n := range names {
		if n != word && spelling.Distance(n, word) <= 2 {
			return fmt.Sprintf("; did you mean `%s %s`?", cmd.CommandPath(), n)
		}
	}
	return ""
}
