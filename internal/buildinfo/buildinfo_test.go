package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestFrom(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/pave-platform/pave", Version: "v0.9.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-12-03T18:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	cases := []struct {
		name     string
		bi       *debug.BuildInfo
		ver, rev string
		want     Info
		str      string
	}{
		{"module version and VCS", stamped, "dev", "", Info{Version: "v0.9.0", Revision: "0123456789abcdef0123", Time: "2026-12-03T18:00:00Z", Modified: true,
			Module: "github.com/pave-platform/pave", Go: "go1.26.8"}, "v0.9.0 (0123456789ab, modified)"},
		{"linker version wins", stamped, "v1.0.0", "", Info{Version: "v1.0.0", Revision: "0123456789abcdef0123", Time: "2026-12-03T18:00:00Z", Modified: true,
			Module: "github.com/pave-platform/pave", Go: "go1.26.8"}, "v1.0.0 (0123456789ab, modified)"},
		{"devel build, revision from the linker", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "(devel)"}}, "dev", "abc",
			Info{Version: "dev", Revision: "abc", Module: "m", Go: "go1.26.8"}, "dev (abc)"},
	}
	for _, c := range cases {
		got := From(c.bi, c.ver, c.rev)
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("%s: String %q, want %q", c.name, got.String(), c.str)
		}
	}
	if From(nil, "dev", "").Version != "dev" {
		t.Error("no build info: want dev")
	}
}
