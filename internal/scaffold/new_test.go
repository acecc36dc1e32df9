package scaffold

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewBadInputWritesNothing(t *testing.T) {
	cases := []struct {
		name  string
		a     Answers
		field string
		want  string
	}{
		{"missing name", Answers{}, "name", "missing"},
		{"upper-case name", Answers{Name: "Orders"}, "name", "DNS-1123"},
		{"name with underscore", Answers{Name: "order_api"}, "name", "DNS-1123"},
		{"name starting with a digit", Answers{Name: "1orders"}, "name", "starting with a letter"},
		{"name too long", Answers{Name: strings.Repeat("a", 64)}, "name", "DNS-1123"},
		{"path in name", Answers{Name: "../etc"}, "name", "DNS-1123"},
		{"bad memory", Answers{Name: "orders", Memory: "512MB"}, "memory", "quantity"},
		{"tiny memory", Answers{Name: "orders", Memory: "1Mi"}, "memory", "below 16Mi"},
		{"negative cpu", Answers{Name: "orders", CPU: "-1"}, "cpu", "more than 0"},
		{"bad owner", Answers{Name: "orders", Owner: "Team A"}, "owner", "DNS-1123"},
		{"bad domain", Answers{Name: "orders", Domain: "exa mple.com"}, "domain", "DNS"},
		{"cluster escaping the overlays", Answers{Name: "orders", Clusters: []string{"dc1", "../../../tmp/x"}}, "clusters[1]", "DNS-1123"},
		{"duplicate cluster", Answers{Name: "orders", Clusters: []string{"dc1", "dc1"}}, "clusters[1]", "twice"},
		{"bad module", Answers{Name: "orders", Module: "not a module"}, "module", "module path"},
		{"bad objective", Answers{Name: "orders", AvailabilityObjective: "100"}, "availabilityObjective", "percentage"},
		{"threshold off the buckets", Answers{Name: "orders", LatencyThreshold: "300ms"}, "latencyThreshold", "250ms"},
		{"bad server", Answers{Name: "orders", PaveServer: "ftp://x"}, "paveServer", "URL"},
		{"max below min", Answers{Name: "orders", MinReplicas: 5, MaxReplicas: 3}, "maxReplicas", "below"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			_, err := New(context.Background(), NewOptions{Answers: tc.a, Dir: filepath.Join(parent, "svc")})
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a FieldError on %s containing %q", err, tc.field, tc.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("files written on bad input: %v", entries)
			}
		})
	}
}

func TestNewTargetDirectory(t *testing.T) {
	a := Answers{Name: "orders"}
	parent := t.TempDir()
	dir := filepath.Join(parent, "orders")
	res, err := New(context.Background(), NewOptions{Answers: a, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.TemplateVersion != CurrentVersion() || len(res.Files) < 20 {
		t.Errorf("result %+v", res)
	}
	for _, f := range res.Files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("listed file %s: %v", f, err)
		}
	}
	// No staging directory is left beside it.
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("parent holds %v, want only orders", entries)
	}
	rec, err := ParseRecord([]byte(read(t, dir, RecordFile)))
	if err != nil || rec.TemplateVersion != CurrentVersion() || rec.Answers.Name != "orders" || rec.Answers.Memory != DefaultMemory {
		t.Errorf(".pave.yaml: %+v %v", rec, err)
	}

	// Not empty: refused, nothing changed.
	write(t, dir, "main.go", "package main // the team's\n")
	_, err = New(context.Background(), NewOptions{Answers: a, Dir: dir})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "dir" || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("non-empty dir: %v", err)
	}
	if read(t, dir, "main.go") != "package main // the team's\n" {
		t.Error("a refused new overwrote main.go")
	}
	// --force writes the template into it.
	if _, err := New(context.Background(), NewOptions{Answers: a, Dir: dir, Force: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(read(t, dir, "main.go"), "kit.New(\"orders\")") {
		t.Error("--force did not write main.go")
	}

	// An existing empty directory is fine without --force.
	empty := filepath.Join(parent, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), NewOptions{Answers: a, Dir: empty}); err != nil {
		t.Fatalf("empty dir: %v", err)
	}
	// A file is not a directory.
	file := filepath.Join(parent, "file")
	write(t, parent, "file", "x")
	if _, err := New(context.Background(), NewOptions{Answers: a, Dir: file}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file as dir: %v", err)
	}
}

// With --force into a directory holding a symlink that leaves it, New
// refuses to write through the symlink and removes what it had created.
func TestNewDoesNotWriteThroughSymlinks(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "deploy")); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), NewOptions{Answers: Answers{Name: "orders"}, Dir: dir, Force: true})
	if err == nil {
		t.Fatal("New wrote through a symlink leaving the target")
	}
	if entries, _ := os.ReadDir(outside); len(entries) > 0 {
		t.Fatalf("files written outside the target: %v", entries)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("after the failure the target holds %v, want only the symlink", entries)
	}
}

func TestCheckLocal(t *testing.T) {
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "", "a//b", "./a"} {
		if checkLocal(p) == nil {
			t.Errorf("%q accepted", p)
		}
	}
	for _, p := range []string{"a", "deploy/base/x.yaml", ".github/workflows/ci.yaml"} {
		if err := checkLocal(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func TestParseAnswers(t *testing.T) {
	a, err := ParseAnswers([]byte("name: orders\nmemory: 1Gi\nclusters: [a, b, c]\n"))
	if err != nil || a.Name != "orders" || a.Memory != "1Gi" || len(a.Clusters) != 3 {
		t.Fatalf("%+v %v", a, err)
	}
	for in, want := range map[string]string{
		"name: orders\nmemroy: 1Gi\n": "memroy",
		"":                            "empty",
		"name: [x\n":                  "answers",
		"name: orders\nclusters: 3\n": "clusters",
	} {
		if _, err := ParseAnswers([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", in, err, want)
		}
	}
}

func FuzzParseAnswers(f *testing.F) {
	f.Add([]byte("name: orders\nmemory: 512Mi\nclusters: [dc1, dc2]\n"))
	f.Add([]byte("{\"name\": \"x\", \"owner\": \"t\"}"))
	f.Add([]byte("name: ../../etc\nclusters: ['..']\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAnswers(data)
		if err != nil {
			return
		}
		a = a.WithDefaults()
		if a.Validate() != nil {
			return
		}
		// Valid answers always render, and every path stays inside.
		files, err := Render(a, CurrentVersion())
		if err != nil {
			t.Fatalf("valid answers %+v do not render: %v", a, err)
		}
		for p := range files {
			if checkLocal(p) != nil {
				t.Fatalf("path %q escapes", p)
			}
		}
	})
}

func TestBudget(t *testing.T) {
	for in, want := range map[string]string{"99.9": "0.001", "99": "0.01", "99.95": "0.0005", "90": "0.1", "99.999": "0.00001", "50.5": "0.495"} {
		if got := budget(in); got != want {
			t.Errorf("budget(%s) = %s, want %s", in, got, want)
		}
	}
	if camel("orders-api-v2") != "OrdersApiV2" {
		t.Error(camel("orders-api-v2"))
	}
}

func TestVersionsAreRenderable(t *testing.T) {
	if _, err := Render(testAnswers(), 0); err == nil {
		t.Error("version 0 rendered")
	}
	if _, err := Render(testAnswers(), CurrentVersion()+1); err == nil {
		t.Error("a future version rendered")
	}
	v1, _ := Render(testAnswers(), 1)
	v2, _ := Render(testAnswers(), 2)
	var changed, same int
	for p, b := range v1 {
		if string(v2[p]) == string(b) {
			same++
		} else {
			changed++
		}
	}
	if changed < 3 || same < 10 {
		t.Errorf("v1 and v2 share %d files and differ in %d", same, changed)
	}
	for p, b := range v2 {
		if strings.Contains(string(b), "[[") && !strings.HasSuffix(p, ".md") {
			t.Errorf("%s holds an unrendered [[ ]] action", p)
		}
	}
}

func BenchmarkRender(b *testing.B) {
	a := testAnswers()
	for b.Loop() {
		if _, err := Render(a, CurrentVersion()); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	rec, _ := Record{Template: TemplateName, TemplateVersion: 1, Answers: testAnswers()}.Marshal()
	f.Add(rec)
	f.Add([]byte("template: service\ntemplateVersion: 2\nanswers: {name: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		// A record that parses names a renderable version and valid answers.
		if _, err := Render(r.Answers, r.TemplateVersion); err != nil {
			t.Fatalf("record %+v parsed but does not render: %v", r, err)
		}
	})
}

func TestKitReplaceWithSpacesIsQuoted(t *testing.T) {
	a := testAnswers()
	a.KitReplace = "/home/ada/my code/pave/kit"
	files, err := Render(a, CurrentVersion())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(files["go.mod"]), `=> "/home/ada/my code/pave/kit"`) {
		t.Errorf("go.mod:\n%s", files["go.mod"])
	}
}
