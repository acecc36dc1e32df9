package runners

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGitHub replays recorded responses of the GitHub REST API
// (testdata/github, in the shapes of docs.github.com's "Workflow runs"
// and "Workflow jobs" endpoints), checking the token, and records the
// paths asked.
type fakeGitHub struct {
	t     *testing.T
	token string
	mu    sync.Mutex
	asked []string
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.asked = append(f.asked, r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token || r.Header.Get("X-GitHub-Api-Version") == "" {
		w.WriteHeader(http.StatusUnauthorized)
		f.file(w, "unauthorized.json")
		return
	}
	q := r.URL.Query()
	if q.Get("per_page") != "100" && !strings.Contains(r.URL.Path, "/actions/jobs/") { // lists only
		http.Error(w, "want per_page=100", http.StatusBadRequest)
		return
	}
	switch {
	case r.URL.Path == "/repos/acme/app/actions/runs" && q.Get("status") == "queued" && q.Get("page") == "":
		w.Header().Set("Link", `<http://`+r.Host+`/repos/acme/app/actions/runs?status=queued&per_page=100&page=2>; rel="next", <http://`+r.Host+`/repos/acme/app/actions/runs?status=queued&per_page=100&page=2>; rel="last"`)
		f.file(w, "runs-queued-page1.json")
	case r.URL.Path == "/repos/acme/app/actions/runs" && q.Get("status") == "queued" && q.Get("page") == "2":
		f.file(w, "runs-queued-page2.json")
	case r.URL.Path == "/repos/acme/app/actions/runs" && q.Get("status") == "in_progress":
		f.file(w, "runs-in-progress.json")
	case r.URL.Path == "/repos/tools/ci/actions/runs":
		f.file(w, "runs-empty.json")
	case r.URL.Path == "/orgs/tools/repos":
		f.file(w, "org-repos.json")
	case strings.HasPrefix(r.URL.Path, "/repos/acme/app/actions/runs/") && strings.HasSuffix(r.URL.Path, "/jobs") && q.Get("filter") == "latest":
		f.file(w, "jobs-"+strings.Split(r.URL.Path, "/")[6]+".json")
	case r.URL.Path == "/repos/acme/app/actions/jobs/101":
		f.file(w, "job-101.json")
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`))
	}
}

func (f *fakeGitHub) file(w http.ResponseWriter, name string) {
	b, err := os.ReadFile(filepath.Join("testdata", "github", name))
	if err != nil {
		f.t.Errorf("recorded response %s: %v", name, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(b)
}

// TestReconcileGitHubRecordsMissedEvents: the webhook delivered job 101
// queued and 102 in progress, and missed the rest. One pass records 101
// finished (its run is no longer listed; looked up by id), 103 and 106
// queued, 104 running, leaves 102 alone and ignores 105 (finished, never
// tracked); a second pass changes nothing; archived repositories of an
// organisation are not listed; a bad token changes nothing and says so.
func TestReconcileGitHubRecordsMissedEvents(t *testing.T) {
	fake := &fakeGitHub{t: t, token: "ghp_test"}
	ts := httptest.NewServer(fake)
	defer ts.Close()
	q := newQueue(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 4, 1, 2, 0, 0, time.UTC)
	now := func() time.Time { return at }
	h := q.WebhookHandler(func() string { return secret }, now)
	for _, d := range []struct {
		id, action string
		job        int64
	}{{"w1", "queued", 101}, {"w2", "queued", 102}, {"w3", "in_progress", 102}} {
		if w := deliveryIn(t, h, d.id, d.action, d.job, "acme/app"); w.Code != http.StatusAccepted {
			t.Fatalf("delivery %s: %d", d.id, w.Code)
		}
	}
	api := GitHubAPI{URL: ts.URL, Token: func() string { return "ghp_test" }, Repos: []string{"acme/app", "tools/*"}}
	st := q.ReconcileGitHub(ctx, api, now)
	if st.Error != "" || st.Changes != 4 || st.Seen != 4 {
		t.Fatalf("first pass: want 4 changes (101 done, 103 and 106 queued, 104 running), 4 seen, no error: %+v", st)
	}
	labels := []string{"self-hosted", "linux"}
	jobs := q.Jobs(labels)
	state := map[int64]string{}
	for _, j := range jobs {
		state[j.ID] = "queued"
		if !j.Started.IsZero() {
			state[j.ID] = "running"
		}
	}
	want := map[int64]string{102: "running", 103: "queued", 104: "running", 106: "queued"}
	if len(state) != len(want) {
		t.Fatalf("jobs after the pass: %v, want %v", state, want)
	}
	for id, s := range want {
		if state[id] != s {
			t.Fatalf("jobs after the pass: %v, want %v", state, want)
		}
	}
	if hist := q.History(labels, time.Time{}); len(hist) != 1 || hist[0].Duration != 8*time.Minute {
		t.Fatalf("job 101's completion, from the API (8 min run): %+v", hist)
	}
	for _, p := range fake.asked {
		if strings.Contains(p, "tools/old") {
			t.Fatalf("an archived repository was listed: %v", fake.asked)
		}
	}
	if !strings.Contains(strings.Join(fake.asked, " "), "page=2") {
		t.Fatalf("the second page of queued runs was not read: %v", fake.asked)
	}

	if st := q.ReconcileGitHub(ctx, api, now); st.Error != "" || st.Changes != 0 {
		t.Fatalf("second pass: want nothing changed: %+v", st)
	}
	// A webhook arriving after the API told the same changes nothing.
	if w := deliveryIn(t, h, "w4", "in_progress", 104, "acme/app"); w.Code != http.StatusAccepted {
		t.Fatalf("late webhook: %d", w.Code)
	}
	if got := len(q.Jobs(labels)); got != 4 {
		t.Fatalf("late webhook changed the queue: %d jobs", got)
	}

	bad := api
	bad.Token = func() string { return "wrong" }
	st = q.ReconcileGitHub(ctx, bad, now)
	if !strings.Contains(st.Error, "401") || !strings.Contains(st.Error, "github-token") || st.Changes != 0 {
		t.Fatalf("bad token: want a 401 naming github-token and nothing changed: %+v", st)
	}
	if strings.Contains(st.Error, "wrong") {
		t.Fatalf("the token leaked into the error: %s", st.Error)
	}
	if got := len(q.Jobs(labels)); got != 4 {
		t.Fatalf("a failed pass changed the queue: %d jobs", got)
	}
	if s := q.Stats(); !s.GitHub.Enabled || s.GitHub.Error == "" {
		t.Fatalf("stats: want the last pass and its error: %+v", s.GitHub)
	}
}

// TestReconcileGitHubRefusesForeignNextLinks: a Link header pointing
// elsewhere would carry the token off the API's host.
func TestReconcileGitHubRefusesForeignNextLinks(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<https://evil.example/steal?page=2>; rel="next"`)
		w.Write([]byte(`{"total_count":0,"workflow_runs":[]}`))
	}))
	defer ts.Close()
	q := newQueue(t)
	st := q.ReconcileGitHub(context.Background(), GitHubAPI{URL: ts.URL, Token: func() string { return "t" }, Repos: []string{"acme/app"}}, time.Now)
	if !strings.Contains(st.Error, "not on") {
		t.Fatalf("want the foreign link refused: %+v", st)
	}
}

func TestCheckRepos(t *testing.T) {
	if err := CheckRepos([]string{"acme/app", "acme/*", "a-b/c.d_e"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"acme", "acme/", "/app", "acme/app/x", "acme/*x", "ac me/app"} {
		if err := CheckRepos([]string{bad}); err == nil {
			t.Errorf("%q: want refused", bad)
		}
	}
}
