// Command pave is the Pave release platform: `pave up` runs the control
// plane; every other command is a client of its API.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			if ec.msg != "" {
				fmt.Fprintln(os.Stderr, "pave:", ec.msg)
			}
			os.Exit(ec.code)
		}
		fmt.Fprintln(os.Stderr, "pave:", err)
		os.Exit(1)
	}
}

// exitCode ends the process with a specific status, e.g. `upgrade --check`
// exits 1 when behind and `release --wait` exits non-zero unless promoted.
type exitCode struct {
	code int
	msg  string
}

func (e exitCode) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }
