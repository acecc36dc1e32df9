// Package buildinfo says which pave this is: the version and VCS revision,
// from the linker flags of a release build or the Go build information.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version is set at link time (-X github.com/pave-platform/pave/internal/buildinfo.Version=v1.2.3).
var Version = "dev"

// revision may be set at link time (-X ...buildinfo.revision=$(git rev-parse HEAD))
// for builds without VCS stamping (go.work workspaces, copied sources).
var revision = ""

// Info describes a binary.
type Info struct {
	Version  string `json:"version"`            // v1.2.3, the module version, or "dev"
	Revision string `json:"revision,omitempty"` // VCS commit
	Time     string `json:"time,omitempty"`     // commit time, RFC 3339
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Module   string `json:"module,omitempty"`   // main module path
	Go       string `json:"go"`
}

// Read returns the running binary's Info.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return From(bi, Version, revision)
}

// From derives Info from build information and the link-time values: an
// explicit version wins over the module version, which wins over "dev";
// the stamped VCS revision wins over the link-time one.
func From(bi *debug.BuildInfo, version, rev string) Info {
	info := Info{Version: version, Revision: rev, Go: runtime.Version()}
	if bi == nil {
		return info
	}
	info.Module = bi.Main.Path
	if (info.Version == "" || info.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if bi.GoVersion != "" {
		info.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Commit returns the VCS revision the binary was built from, when known.
func Commit() string { return Read().Revision }

// String is "v1.2.3 (abc1234def56, modified)" or "dev".
func (i Info) String() string {
	s := i.Version
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if i.Modified {
			rev += ", modified"
		}
		s += " (" + rev + ")"
	}
	return s
}
