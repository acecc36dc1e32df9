// Command pave-gocacheprog is Pave's GOCACHEPROG client on its own, the
// same program as `pave cache gocacheprog` in a binary that starts in a few
// milliseconds instead of the pave binary's ~150 ms of package
// initialisation, which each go command waits for before it builds:
//
//	go install github.com/pave-platform/pave/cmd/pave-gocacheprog@latest
//	GOCACHEPROG=pave-gocacheprog PAVE_CACHE_URL=http://cache:7077 go build ./...
//
// Configuration is by environment; see docs/buildcache.md.
package main

import (
	"fmt"
	"os"

	"github.com/pave-platform/pave/internal/buildcache/gocacheprog"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "pave-gocacheprog takes no arguments: set it as GOCACHEPROG and configure it with PAVE_CACHE_URL, PAVE_CACHE_TOKEN and PAVE_CACHE_DIR (docs/buildcache.md)")
		os.Exit(2)
	}
	if err := gocacheprog.Run(os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pave-gocacheprog:", err)
		os.Exit(1)
	}
}
