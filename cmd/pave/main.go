// Command pave is the Pave release platform: `pave up` runs the control
// plane; every other command is a client of its API.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/pave-platform/pave/internal/apiclient"
)

func main() {
	err := rootCommand().Execute()
	if err == nil {
		return
	}
	code, msg := processExit(err)
	if msg != "" {
		fmt.Fprintln(os.Stderr, "pave:", msg)
	}
	os.Exit(code)
}

// The exit statuses of pave, documented in docs/cli.md: a CI job can tell a
// rollback from a timeout from a control plane that is down.
const (
	exitOK          = 0
	exitError       = 1 // bad input, a refusal by the API, anything else
	exitRolledBack  = 2 // a judge objected and traffic went back to stable
	exitFailed      = 3 // the release failed (never ready, crashed) or was aborted
	exitTimeout     = 4 // --timeout passed; what was waited for goes on
	exitUnreachable = 5 // no control plane answered
)

// exitCode ends the process with a specific status, e.g. `upgrade --check`
// exits 1 when behind and `release --wait` exits non-zero unless promoted.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

// processExit maps an error to the process's exit status and message.
func processExit(err error) (int, string) {
	var ec exitCode
	if errors.As(err, &ec) {
		return ec.code, ec.msg
	}
	var un *apiclient.UnreachableError
	if errors.As(err, &un) {
		return exitUnreachable, err.Error()
	}
	return exitError, err.Error()
}
