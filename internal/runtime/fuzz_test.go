package runtime

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidate checks the gate every deployment passes: whatever names,
// paths and environment it accepts, the directories derived from them stay
// inside the data directory and no reserved variable is overridden. The
// seeds run as a normal test; `go test -fuzz FuzzValidate` explores.
func FuzzValidate(f *testing.F) {
	seeds := []struct {
		service, version, path, envKey, readiness string
		replicas                                  int
	}{
		{"orders", "v1", "/src/orders", "GREETING", "/readyz", 2},
		{"../etc", "v1", "/src", "A", "", 1},
		{"orders", "v1/../../x", "/src", "A", "", 1},
		{"a..b", "..", "relative", "PORT", "readyz", -1},
		{"orders", "v1", "/src\x00x", "A=B", "/r y", 65},
		{"x", "1.2.3", "/", "_OK", "/health?x=1", 0},
		{".hidden", "v1.", "/a", "PAVE_SERVICE", "/", 64},
	}
	for _, s := range seeds {
		f.Add(s.service, s.version, s.path, s.envKey, s.readiness, s.replicas)
	}
	const base = "/data/runtime/instances"
	f.Fuzz(func(t *testing.T, service, version, path, envKey, readiness string, replicas int) {
		d := Deployment{Service: service, Version: version, Source: path, Replicas: replicas,
			Env: map[string]string{envKey: "x"}, ReadinessPath: readiness}
		if err := d.Validate(); err != nil {
			if !strings.Contains(err.Error(), "invalid deployment") {
				t.Fatalf("error %q does not say it is an invalid deployment", err)
			}
			return
		}
		dir := filepath.Join(base, service, version, "0")
		if !strings.HasPrefix(dir, base+"/") || strings.Count(dir[len(base):], "/") != 3 {
			t.Fatalf("accepted %q %q escapes or nests: %s", service, version, dir)
		}
		if strings.HasPrefix(service, ".") || strings.HasPrefix(version, ".") {
			t.Fatalf("accepted a hidden name %q %q", service, version)
		}
		if reservedEnv[envKey] || strings.ContainsAny(envKey, "=\x00") {
			t.Fatalf("accepted env key %q", envKey)
		}
		if replicas < 0 || replicas > MaxReplicas {
			t.Fatalf("accepted %d replicas", replicas)
		}
		if !filepath.IsAbs(path) {
			t.Fatalf("accepted relative source %q", path)
		}
		if !strings.HasPrefix(d.readinessPath(), "/") {
			t.Fatalf("accepted readiness path %q", readiness)
		}
	})
}
