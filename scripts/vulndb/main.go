// Command vulndb builds an offline Go vulnerability database that
// `govulncheck -db file://DIR` reads, from the OSV entries in the data/osv
// folder of the golang.org/x/vulndb module (served by the Go module proxy).
//
// It writes the v1 layout govulncheck's local client expects
// (golang.org/x/vuln/internal/client):
//
//	DIR/index/db.json       {"modified": newest entry's modified time}
//	DIR/index/modules.json  [{"path", "vulns": [{"id", "modified", "fixed"}]}], sorted by path, vulns by id
//	DIR/index/vulns.json    [{"id", "modified", "aliases"}], sorted by id
//	DIR/ID/<id>.json        each entry as it is in data/osv
//
// vulndb's own cmd/indexdb writes the same files, but building it pulls in
// about 65 modules (Cloud, gRPC, go-git); this program needs only the
// standard library, so a cold CI machine builds the database in seconds.
//
// Usage:
//
//	go run ./scripts/vulndb -osv $(go env GOMODCACHE)/golang.org/x/vulndb@VERSION/data/osv -out DIR
//	govulncheck -json ./... | go run ./scripts/vulndb -verdict
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	osvDir := flag.String("osv", "", "folder of OSV entries named <ID>.json (data/osv of golang.org/x/vulndb)")
	out := flag.String("out", "", "folder to write the database to; it must not exist yet")
	judge := flag.Bool("verdict", false, "instead: read `govulncheck -json` on standard input, report the advisories the code calls, and exit 3 if there is one")
	allowStdlib := flag.Bool("allow-stdlib", false, "with -verdict: emergency opt-out: report standard-library advisories under a warning instead of exiting 3 (scripts/vulncheck.sh sets it for PAVE_VULN_ALLOW_STDLIB=1)")
	flag.Parse()
	if *judge {
		ok, err := verdict(os.Stdin, os.Stdout, *allowStdlib)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vulndb: %v\n", err)
			os.Exit(1)
		}
		if !ok {
			os.Exit(3)
		}
		return
	}
	if *osvDir == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "vulndb: both -osv and -out are required\nusage: go run ./scripts/vulndb -osv DIR/data/osv -out DBDIR")
		os.Exit(2)
	}
	n, err := build(*osvDir, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulndb: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "vulndb: wrote %d entries to %s\n", n, *out)
}
