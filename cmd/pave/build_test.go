package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/image/imagetest"
	"github.com/pave-platform/pave/internal/release"
)

func writeHello(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pave build prints the digest reference alone on stdout (progress goes to
// stderr), so "$(pave build ...)" feeds pave release --image.
func TestBuildCommandPushesAndPrintsTheDigestReference(t *testing.T) {
	t.Parallel()
	reg := imagetest.StartRegistry(t, "", "")
	dir := writeHello(t)
	cmd := exec.Command(paveBin(), "build", dir, "--image", reg.Addr+"/acme/hello", "--tag", "v1", "--push")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	ref := strings.TrimSpace(stdout.String())
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(reg.Addr) + `/acme/hello@sha256:[0-9a-f]{64}$`).MatchString(ref) {
		t.Fatalf("stdout %q: want REGISTRY/NAME@sha256:DIGEST alone", ref)
	}
	out, err := pave(t, nil, "build", dir, "--image", reg.Addr+"/acme/hello", "--tag", "v1", "--push", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res struct {
		Reference string
		Pushed    bool
		Images    []struct{ Platform, SBOM string }
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if res.Reference != ref || !res.Pushed || len(res.Images) != 1 || res.Images[0].Platform != "linux/amd64" || res.Images[0].SBOM == "" {
		t.Fatalf("-o json: %+v; want the same reference %s, pushed, one linux/amd64 image with an SBOM", res, ref)
	}

	// The printed reference is what a Release takes.
	doc, err := specFromFlags("hello", "v1", "", "", ref, "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	r, err := release.Parse(doc)
	if err != nil {
		t.Fatalf("a Release with --image %s: %v", ref, err)
	}
	if r.Spec.Image != ref {
		t.Fatalf("spec.image %q, want %q", r.Spec.Image, ref)
	}
}

func TestBuildCommandRefusesBadInputBeforeBuilding(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"build", "/nonexistent", "--image", "hello"}, `--image "hello" names no registry`},
		{[]string{"build", "/nonexistent"}, `"image" not set`},
		{[]string{"build", "/nonexistent", "--image", "r.example/x", "--platform", "windows/amd64"}, "want linux/ARCH"},
		{[]string{"build", writeHello(t) + "/nope", "--image", "r.example/x"}, "/nope"},
	} {
		out, err := pave(t, nil, c.args...)
		var ee *exec.ExitError
		if err == nil || !errorsAs(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, c.say) {
			t.Errorf("pave %v: %v\n%s\nwant exit 1 saying %q", c.args, err, out, c.say)
		}
	}
}
