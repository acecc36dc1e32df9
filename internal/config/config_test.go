package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env map[string]string, file string) (Config, error) {
	t.Helper()
	dir := t.TempDir()
	if file != "" {
		if err := os.WriteFile(filepath.Join(dir, "pave.yaml"), []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", filepath.Join(dir, "pave.yaml"))
	} else {
		t.Chdir(dir) // no ./pave.yaml here
	}
	fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
	l := Bind(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return l.Load(func(k string) string { return env[k] })
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./.pave" || c.HTTPAddr != "127.0.0.1:7070" || c.OTLPAddr != "127.0.0.1:4318" || c.GatewayAddr != "127.0.0.1:8080" || c.OTLPGRPCAddr != "" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPrecedenceFlagOverEnvOverFile(t *testing.T) {
	file := "http-addr: 127.0.0.1:1111\notlp-addr: 127.0.0.1:2222\ngateway-addr: 127.0.0.1:3333\nclusters: [a, b]\n"
	env := map[string]string{"PAVE_OTLP_ADDR": "127.0.0.1:4444", "PAVE_GATEWAY_ADDR": "127.0.0.1:5555"}
	c, err := load(t, []string{"--gateway-addr", "127.0.0.1:6666"}, env, file)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:1111" || c.OTLPAddr != "127.0.0.1:4444" || c.GatewayAddr != "127.0.0.1:6666" {
		t.Fatalf("precedence: %+v", c)
	}
	if strings.Join(c.Clusters, ",") != "a,b" {
		t.Fatalf("clusters from file: %v", c.Clusters)
	}
}

func TestInvalidValuesNameSettingSourceAndAllowed(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string
	}{
		{"flag addr", []string{"--http-addr", "nonsense"}, nil, "", []string{"http-addr", "--http-addr", `"nonsense"`, "host:port"}},
		{"env port", nil, map[string]string{"PAVE_GATEWAY_ADDR": "127.0.0.1:99999"}, "", []string{"gateway-addr", "PAVE_GATEWAY_ADDR", "0 to 65535"}},
		{"file level", nil, nil, "log-level: loud\n", []string{"log-level", "pave.yaml", "debug, info, warn, error"}},
		{"file unknown key", nil, nil, "http_addr: x\n", []string{"unknown setting", "http_addr", "http-addr"}},
		{"bad duration", nil, map[string]string{"PAVE_SHUTDOWN_TIMEOUT": "soon"}, "", []string{"shutdown-timeout", "PAVE_SHUTDOWN_TIMEOUT", "duration"}},
		{"bad cluster", []string{"--clusters", "a,B_2"}, nil, "", []string{"clusters", "DNS-1123"}},
		{"dup cluster", []string{"--clusters", "a,a"}, nil, "", []string{"clusters", "twice"}},
		{"grpc addr no port", []string{"--otlp-grpc-addr", "127.0.0.1"}, nil, "", []string{"otlp-grpc-addr", "--otlp-grpc-addr", `"127.0.0.1"`, "host:port"}},
		{"grpc addr host", nil, map[string]string{"PAVE_OTLP_GRPC_ADDR": "example.com:4317"}, "", []string{"otlp-grpc-addr", "PAVE_OTLP_GRPC_ADDR", "IP address or localhost"}},
		{"bad yaml", nil, nil, "http-addr: [\n", []string{"settings file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env, tc.file)
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestOTLPGRPCAddrFromEachSource(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		file string
		want string
	}{
		"file": {nil, nil, "otlp-grpc-addr: 127.0.0.1:4317\n", "127.0.0.1:4317"},
		"env":  {nil, map[string]string{"PAVE_OTLP_GRPC_ADDR": "0.0.0.0:4317"}, "", "0.0.0.0:4317"},
		"flag": {[]string{"--otlp-grpc-addr", "[::1]:4317"}, map[string]string{"PAVE_OTLP_GRPC_ADDR": "0.0.0.0:4317"}, "", "[::1]:4317"},
		// An empty flag turns off what the file turned on.
		"flag off": {[]string{"--otlp-grpc-addr", ""}, nil, "otlp-grpc-addr: 127.0.0.1:4317\n", ""},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := load(t, tc.args, tc.env, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if c.OTLPGRPCAddr != tc.want {
				t.Fatalf("otlp-grpc-addr = %q, want %q", c.OTLPGRPCAddr, tc.want)
			}
		})
	}
}

func TestMissingExplicitConfigFile(t *testing.T) {
	fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
	l := Bind(fs)
	_ = fs.Parse([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml")})
	if _, err := l.Load(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("want an error naming the missing file, got %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "0.0.0.0:1": false, ":1": false, "10.0.0.1:1": false} {
		if IsLoopback(addr) != want {
			t.Errorf("IsLoopback(%q) != %v", addr, want)
		}
	}
}

func TestEdgeSetting(t *testing.T) {
	for _, ok := range []string{"", "none", "istio:mesh-a", "webhook:https://gslb.example/pave"} {
		fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
		l := Bind(fs)
		if err := fs.Parse([]string{"--edge", ok}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(func(string) string { return "" }); err != nil {
			t.Errorf("--edge %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"istio", "istio:Mesh_A", "webhook:ftp://x", "dns"} {
		fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
		l := Bind(fs)
		if err := fs.Parse([]string{"--edge", bad}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Load(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "edge") {
			t.Errorf("--edge %q: %v, want an error naming the setting", bad, err)
		}
	}
}

func TestGatewayNoEventLoopSetting(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		file string
		want bool
	}{
		"default": {nil, nil, "", false},
		"file":    {nil, nil, "gateway-no-event-loop: true\n", true},
		"env":     {nil, map[string]string{"PAVE_GATEWAY_NO_EVENT_LOOP": "true"}, "", true},
		"flag":    {[]string{"--gateway-no-event-loop"}, nil, "", true},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := load(t, tc.args, tc.env, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if c.GatewayNoEventLoop != tc.want {
				t.Fatalf("gateway-no-event-loop = %v, want %v", c.GatewayNoEventLoop, tc.want)
			}
		})
	}
	if _, err := load(t, nil, map[string]string{"PAVE_GATEWAY_NO_EVENT_LOOP": "sometimes"}, ""); err == nil ||
		!strings.Contains(err.Error(), "gateway-no-event-loop") {
		t.Fatalf("a value that is not a boolean: %v", err)
	}
}
