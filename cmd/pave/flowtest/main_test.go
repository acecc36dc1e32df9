// Package flowtest holds the longest end-to-end tests of the pave binary,
// the README's main job (pave demo) and its tour: each takes minutes,
// mostly waiting on releases. In their own package `go test` runs them
// beside cmd/pave's tests (packages run at once, -p) rather than after
// them, which shortens scripts/test.sh by about their length.
package flowtest

import (
	"os"
	"testing"

	"github.com/pave-platform/pave/internal/testproc"
)

// paveBuild is the real pave binary, built once for these tests.
var paveBuild *testproc.Binary

// paveBin is its path; asking for it declares the binary's sources as
// inputs of the test (testproc.Binary.Path).
func paveBin() string { return paveBuild.Path() }

func TestMain(m *testing.M) {
	// As cmd/pave's TestMain builds it, so the go command's cache serves
	// one build to both packages.
	bin, cleanup, err := testproc.BuildPave("..")
	if err != nil {
		panic(err)
	}
	paveBuild = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// The helpers every process-starting test here uses (package testproc).
var (
	freeAddr = testproc.FreeAddr
	between  = testproc.Between
)

type lockedBuffer = testproc.LockedBuffer
