// Package buildinfo carries the version stamped into the pave binary.
package buildinfo

import "runtime/debug"

// Version is set at link time (-X github.com/pave-platform/pave/internal/buildinfo.Version=v1.2.3).
var Version = "dev"

// Commit returns the VCS revision the binary was built from, when known.
func Commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}
