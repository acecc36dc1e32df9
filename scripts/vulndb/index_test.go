package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestSemverCompare(t *testing.T) {
	ordered := []string{ // SemVer 2.0.0 §11 precedence, and Go pseudo-versions
		"",
		"0.0.0-20190125002852-4b62a64f59f7",
		"0.0.0-20200131131040-063a3fb69896",
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
		"1.0.4-0.20180125103619-43913f2f4fbd", "1.0.4",
		"1.9.0", "1.10.0", "1.10.1", "2.0.0", "10.0.0",
	}
	for i := range ordered {
		for j := range ordered {
			want := compareInt(i, j)
			if ordered[i] == "" && ordered[j] == "" {
				want = 0
			}
			if got := semverCompare(ordered[i], ordered[j]); got != want {
				t.Errorf("semverCompare(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if semverCompare("1.2.3+build.5", "1.2.3") != 0 {
		t.Error("build metadata takes part in precedence")
	}
	for _, bad := range []string{"1.2", "01.2.3", "1.2.3-", "1.2.3-01", "x.y.z"} {
		if _, ok := parseSemver(bad); ok {
			t.Errorf("parseSemver(%q) accepted an invalid version", bad)
		}
	}
}

func TestNonSupersededFix(t *testing.T) {
	r := func(events ...[2]string) osvRange {
		var o osvRange
		o.Type = "SEMVER"
		for _, e := range events {
			o.Events = append(o.Events, struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			}{e[0], e[1]})
		}
		return o
	}
	for _, c := range []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"one fix", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.2.3"})}, "1.2.3"},
		{"latest of two fixes", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.2.3"}, [2]string{"1.3.0", ""}, [2]string{"", "1.3.5"})}, "1.3.5"},
		{"reintroduced after the fix", []osvRange{r([2]string{"0", ""}, [2]string{"", "1.2.3"}, [2]string{"2.0.0", ""})}, ""},
		{"no fix", []osvRange{r([2]string{"0", ""})}, ""},
		{"not SEMVER", []osvRange{{Type: "GIT"}}, ""},
	} {
		if got := nonSupersededFix(c.ranges); got != c.want {
			t.Errorf("%s: nonSupersededFix = %q, want %q", c.name, got, c.want)
		}
	}
}

// A synthetic advisory against the standard library's strings.ToUpper, with
// no fixed version, so every Go toolchain is affected.
const fakeAdvisory = `{
  "schema_version": "1.3.1",
  "id": "GO-2099-0001",
  "modified": "2099-01-02T00:00:00Z",
  "published": "2099-01-01T00:00:00Z",
  "aliases": ["CVE-2099-0001"],
  "summary": "Test advisory: strings.ToUpper is vulnerable",
  "details": "Made up for scripts/vulndb's test.",
  "affected": [{
    "package": {"name": "stdlib", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
    "ecosystem_specific": {"imports": [{"path": "strings", "symbols": ["ToUpper"]}]}
  }, {
    "package": {"name": "example.com/other", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.4.0"}]}]
  }],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2099-0001"}
}`

func writeOSV(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "GO-2099-0001.json"), []byte(fakeAdvisory), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildLayout(t *testing.T) {
	out := filepath.Join(t.TempDir(), "db")
	n, err := build(writeOSV(t), out)
	if err != nil || n != 1 {
		t.Fatalf("build = %d, %v; want 1 entry", n, err)
	}
	read := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var db dbMeta
	read("index/db.json", &db)
	if db.Modified.Year() != 2099 {
		t.Errorf("db.json modified = %v, want the entry's 2099-01-02", db.Modified)
	}
	var mods []moduleMeta
	read("index/modules.json", &mods)
	if len(mods) != 2 || mods[0].Path != "example.com/other" || mods[0].Vulns[0].Fixed != "1.4.0" ||
		mods[1].Path != "stdlib" || mods[1].Vulns[0].ID != "GO-2099-0001" || mods[1].Vulns[0].Fixed != "" {
		t.Errorf("modules.json = %+v, want example.com/other fixed in 1.4.0 then stdlib unfixed", mods)
	}
	var vulns []vulnMeta
	read("index/vulns.json", &vulns)
	if len(vulns) != 1 || vulns[0].Aliases[0] != "CVE-2099-0001" {
		t.Errorf("vulns.json = %+v", vulns)
	}
	var e entry
	read("ID/GO-2099-0001.json", &e)
	if e.ID != "GO-2099-0001" {
		t.Errorf("ID/GO-2099-0001.json holds %q", e.ID)
	}
	if _, err := build(writeOSV(t), out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("building over an existing database: err = %v, want 'already exists'", err)
	}
}

func TestBuildBadInput(t *testing.T) {
	empty := t.TempDir()
	if _, err := build(empty, filepath.Join(t.TempDir(), "db")); err == nil || !strings.Contains(err.Error(), "data/osv") {
		t.Errorf("empty -osv: err = %v, want a hint at data/osv", err)
	}
	misnamed := t.TempDir()
	os.WriteFile(filepath.Join(misnamed, "GO-2099-9999.json"), []byte(fakeAdvisory), 0o644)
	if _, err := build(misnamed, filepath.Join(t.TempDir(), "db")); err == nil || !strings.Contains(err.Error(), "<ID>.json") {
		t.Errorf("misnamed entry: err = %v, want the naming rule", err)
	}
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "GO-2099-0001.json"), []byte("{"), 0o644)
	out := filepath.Join(t.TempDir(), "db")
	if _, err := build(broken, out); err == nil || !strings.Contains(err.Error(), "not an OSV entry") {
		t.Errorf("broken JSON: err = %v, want 'not an OSV entry'", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed build left %s behind", out)
	}
}

// TestGovulncheckReadsDatabase runs the real govulncheck that deps.sh
// installs on a database built here: a program calling the advised function
// must fail with exit code 3 naming the advisory, one not calling it pass.
func TestGovulncheckReadsDatabase(t *testing.T) {
	govulncheck, err := exec.LookPath("govulncheck")
	if err != nil {
		tools := os.Getenv("PAVE_TOOLS")
		if tools == "" {
			home, _ := os.UserCacheDir()
			tools = filepath.Join(home, "pave-tools")
		}
		govulncheck = filepath.Join(tools, "bin", "govulncheck")
		if _, err := os.Stat(govulncheck); err != nil {
			t.Fatalf("govulncheck is neither on PATH nor at %s: run scripts/deps.sh", govulncheck)
		}
	}
	db := filepath.Join(t.TempDir(), "db")
	if _, err := build(writeOSV(t), db); err != nil {
		t.Fatal(err)
	}
	run := func(call string) (string, int) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/app\n\ngo 1.22\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"strings\"\n\nfunc main() { println("+call+"(\"x\")) }\n"), 0o644)
		cmd := exec.Command(govulncheck, "-db", "file://"+db, "./...")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run("strings.ToUpper")
	if code != 3 || !strings.Contains(out, "GO-2099-0001") {
		t.Errorf("calling strings.ToUpper: exit %d, want 3 naming GO-2099-0001:\n%s", code, out)
	}
	out, code = run("strings.ToLower")
	if code != 0 || !strings.Contains(out, "No vulnerabilities found") {
		t.Errorf("not calling strings.ToUpper: exit %d, want 0 and 'No vulnerabilities found':\n%s", code, out)
	}
}
