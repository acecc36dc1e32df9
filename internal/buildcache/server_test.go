package buildcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newTestServer(t *testing.T, max int64, authz Authorizer) (*Server, *httptest.Server) {
	t.Helper()
	disk, err := tier.OpenDisk(t.TempDir(), tier.DiskOptions{MaxBytes: max, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(&Store{Disk: disk}, authz)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func do(t *testing.T, method, url, token string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestServerBazelRemoteAPI(t *testing.T) {
	_, ts := newTestServer(t, 1<<20, nil)
	blob := []byte("the output of an action")
	key := sum(blob)
	if code, _ := do(t, "GET", ts.URL+"/cas/"+key, "", nil); code != 404 {
		t.Fatalf("GET of a missing blob: %d, want 404", code)
	}
	if code, msg := do(t, "PUT", ts.URL+"/cas/"+key, "", blob); code != 200 {
		t.Fatalf("PUT /cas: %d %s", code, msg)
	}
	if code, got := do(t, "GET", ts.URL+"/cas/"+key, "", nil); code != 200 || got != string(blob) {
		t.Fatalf("GET /cas: %d %q", code, got)
	}
	if code, got := do(t, "HEAD", ts.URL+"/cas/"+key, "", nil); code != 200 || got != "" {
		t.Fatalf("HEAD /cas: %d %q", code, got)
	}
	ac := strings.Repeat("ab", 32)
	if code, _ := do(t, "PUT", ts.URL+"/ac/"+ac, "", []byte("any action result")); code != 200 {
		t.Fatalf("PUT /ac: %d", code)
	}
	if code, got := do(t, "GET", ts.URL+"/ac/"+ac, "", nil); code != 200 || got != "any action result" {
		t.Fatalf("GET /ac: %d %q", code, got)
	}
	// A Go entry in one round trip.
	if code, msg := do(t, "PUT", ts.URL+"/go/"+strings.Repeat("cd", 32), "", blob, tier.GoOutputHeader, key); code != 200 {
		t.Fatalf("PUT /go: %d %s", code, msg)
	}
	res, err := http.Get(ts.URL + "/go/" + strings.Repeat("cd", 32))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(got) != string(blob) || res.Header.Get(tier.GoOutputHeader) != key {
		t.Fatalf("GET /go: %d %q %q", res.StatusCode, got, res.Header)
	}
	code, metrics := do(t, "GET", ts.URL+"/metrics", "", nil)
	for _, want := range []string{`pave_buildcache_hits_total{kind="cas"} 2`, `pave_buildcache_misses_total{kind="cas"} 1`,
		`pave_buildcache_hits_total{kind="go"} 1`, "pave_buildcache_request_duration_seconds_bucket"} {
		if code != 200 || !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestServerRefusesHostileInput(t *testing.T) {
	s, ts := newTestServer(t, 1<<20, nil)
	s.MaxObjectBytes = 1000
	blob := []byte("honest bytes")
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		hdr                []string
		code               int
		msg                string
	}{
		{"CAS body under another hash", "PUT", "/cas/" + sum([]byte("other")), blob, nil, 400, "does not match its SHA-256 key"},
		{"upper-case key", "PUT", "/cas/" + strings.ToUpper(sum(blob)), blob, nil, 400, "64 lowercase hex"},
		{"short key", "GET", "/ac/abc", nil, nil, 400, "64 lowercase hex"},
		{"dot-dot key", "GET", "/ac/..%2f..%2fetc%2fpasswd", nil, nil, 400, "64 lowercase hex"},
		{"long key", "PUT", "/ac/" + strings.Repeat("a", 65), blob, nil, 400, "64 lowercase hex"},
		{"oversize", "PUT", "/cas/" + sum(make([]byte, 2000)), make([]byte, 2000), nil, 413, "larger than"},
		{"go output under a false OutputID", "PUT", "/go/" + strings.Repeat("1", 64), blob, []string{tier.GoOutputHeader, sum([]byte("x"))}, 400, "does not match"},
		{"go put without OutputID", "PUT", "/go/" + strings.Repeat("1", 64), blob, nil, 400, "64 lowercase hex"},
		{"batch of a bad action", "POST", "/go/batch", []byte(strings.Repeat("2", 64) + "\n../x\n"), nil, 400, "line 2: key"},
	} {
		code, msg := do(t, tc.method, ts.URL+tc.path, "", tc.body, tc.hdr...)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, msg, tc.code, tc.msg)
		}
	}
	// Nothing was stored by any of them.
	if n := s.Store.Disk.Size(); n != 0 {
		t.Fatalf("refused writes left %d bytes", n)
	}
	if code, _ := do(t, "GET", ts.URL+"/go/"+strings.Repeat("1", 64), "", nil); code != 404 {
		t.Fatalf("an action whose output was refused is served: %d", code)
	}
}

func TestServerTokensAndRoles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	writer, reader := "writer-token-0123456789", "reader-token-0123456789"
	os.WriteFile(file, []byte("# CI on main\nwriter "+writer+"\nreader sha256:"+sum([]byte(reader))+"\n"), 0o600)
	authz, err := LoadTokens(file)
	if err != nil {
		t.Fatal(err)
	}
	_, ts := newTestServer(t, 1<<20, authz)
	blob := []byte("b")
	url := ts.URL + "/cas/" + sum(blob)
	if code, msg := do(t, "GET", url, "", nil); code != 401 || !strings.Contains(msg, "Bearer") {
		t.Fatalf("no token: %d %q", code, msg)
	}
	if code, _ := do(t, "GET", url, "wrong-token-0123456789", nil); code != 401 {
		t.Fatalf("unknown token: %d", code)
	}
	if code, msg := do(t, "PUT", url, reader, blob); code != 403 || !strings.Contains(msg, "writer token") {
		t.Fatalf("reader writing: %d %q", code, msg)
	}
	if code, _ := do(t, "GET", url, reader, nil); code != 404 {
		t.Fatalf("reader writing stored something: %d", code)
	}
	if code, _ := do(t, "PUT", url, writer, blob); code != 200 {
		t.Fatalf("writer: %d", code)
	}
	if code, got := do(t, "GET", url, reader, nil); code != 200 || got != "b" {
		t.Fatalf("reader reading: %d %q", code, got)
	}
	// bazel-remote clients send the token as the basic-auth password.
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("ci", reader)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("basic auth: %v %v", err, res.Status)
	}
	res.Body.Close()
}

func TestLoadTokensNamesTheBadLine(t *testing.T) {
	for content, want := range map[string]string{
		"admin some-long-token-value\n": "tokens:1: role \"admin\": want reader or writer",
		"# c\nwriter\n":                 "tokens:2: want \"ROLE TOKEN\"",
		"reader short\n":                "token too short",
		"reader sha256:nothex\n":        "want 64 hex digits",
		"# only comments\n":             "no tokens",
	} {
		file := filepath.Join(t.TempDir(), "tokens")
		os.WriteFile(file, []byte(content), 0o600)
		if _, err := LoadTokens(file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
}

func TestServerWithoutTokensServesLoopbackOnly(t *testing.T) {
	s, _ := newTestServer(t, 1<<20, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/cas/"+sum(nil), nil)
	req.RemoteAddr = "192.0.2.7:40000"
	s.ServeHTTP(rec, req)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "--tokens") {
		t.Fatalf("remote client without tokens: %d %q", rec.Code, rec.Body.String())
	}
}

func TestDiskLRUBound(t *testing.T) {
	s, ts := newTestServer(t, 3000, nil)
	var keys []string
	for i := range 5 {
		b := bytes.Repeat([]byte{byte(i)}, 1000)
		keys = append(keys, sum(b))
		if code, msg := do(t, "PUT", ts.URL+"/cas/"+keys[i], "", b); code != 200 {
			t.Fatal(code, msg)
		}
		if i == 2 {
			do(t, "GET", ts.URL+"/cas/"+keys[0], "", nil) // keys[0] is now recently used
		}
	}
	if n := s.Store.Disk.Size(); n > 3000 {
		t.Fatalf("disk tier holds %d bytes, bound 3000", n)
	}
	want := map[string]int{keys[0]: 200, keys[1]: 404, keys[2]: 404, keys[3]: 200, keys[4]: 200}
	for k, code := range want {
		if got, _ := do(t, "GET", ts.URL+"/cas/"+k, "", nil); got != code {
			t.Errorf("key %s…: %d, want %d", k[:8], got, code)
		}
	}
	// The bound survives a restart: the index is rebuilt from the files.
	d2, err := tier.OpenDisk(s.Store.Disk.Root(), tier.DiskOptions{MaxBytes: 3000})
	if err != nil || d2.Size() != 3000 {
		t.Fatalf("reopened: %v, %d bytes", err, d2.Size())
	}
	_, metrics := do(t, "GET", ts.URL+"/metrics", "", nil)
	if !strings.Contains(metrics, `pave_buildcache_evictions_total{kind="cas"} 2`) {
		t.Errorf("metrics lack 2 evictions:\n%s", metrics)
	}
}

// fullTemp fails every write with ENOSPC after storing half, as a full
// disk does.
type fullTemp struct{ *os.File }

func (f fullTemp) Write(b []byte) (int, error) {
	n, _ := f.File.Write(b[:len(b)/2])
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func TestDiskFullRefusesWritesServesReadsAndMakesRoom(t *testing.T) {
	s, ts := newTestServer(t, 1<<20, nil)
	var keys []string
	for i := range 10 {
		b := bytes.Repeat([]byte{byte(i)}, 1000)
		keys = append(keys, sum(b))
		do(t, "PUT", ts.URL+"/cas/"+keys[i], "", b)
	}
	normal := s.Store.Disk.CreateTemp
	s.Store.Disk.CreateTemp = func(dir string) (tier.TempFile, error) {
		f, err := os.CreateTemp(dir, "put-*")
		return fullTemp{f}, err
	}
	b := bytes.Repeat([]byte{99}, 1000)
	code, msg := do(t, "PUT", ts.URL+"/cas/"+sum(b), "", b)
	if code != http.StatusInsufficientStorage || !strings.Contains(msg, "no space") {
		t.Fatalf("write on a full disk: %d %q", code, msg)
	}
	if code, _ := do(t, "GET", ts.URL+"/cas/"+sum(b), "", nil); code != 404 {
		t.Fatalf("the refused write is served: %d", code)
	}
	if code, got := do(t, "GET", ts.URL+"/cas/"+keys[9], "", nil); code != 200 || len(got) != 1000 {
		t.Fatalf("read on a full disk: %d", code)
	}
	if n := s.Store.Disk.Size(); n > 9000 {
		t.Fatalf("a full disk made no room: %d bytes held", n)
	}
	tmps, _ := os.ReadDir(filepath.Join(s.Store.Disk.Root(), "tmp"))
	if len(tmps) != 0 {
		t.Fatalf("the failed write left %d temporary files", len(tmps))
	}
	s.Store.Disk.CreateTemp = normal
	if code, _ := do(t, "PUT", ts.URL+"/cas/"+sum(b), "", b); code != 200 {
		t.Fatalf("write after room was made: %d", code)
	}
}

func TestOpenDiskDropsPartialUploads(t *testing.T) {
	root := t.TempDir()
	d, err := tier.OpenDisk(root, tier.DiskOptions{MaxBytes: 1 << 20, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	// What a crash mid-upload leaves: a temporary file, never a key.
	os.WriteFile(filepath.Join(root, "tmp", "put-123"), []byte("half"), 0o644)
	d2, err := tier.OpenDisk(root, tier.DiskOptions{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if tmps, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmps) != 0 || d2.Size() != 0 || d.Size() != 0 {
		t.Fatalf("leftovers: %d temporary files, %d bytes indexed", len(tmps), d2.Size())
	}
}
