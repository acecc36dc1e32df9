package runners

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// GitHubAPI is the GitHub REST API the queue is reconciled against, for
// the workflow_job events the webhook missed (Pave was down, GitHub
// gave up on a delivery, a webhook was misconfigured for a while).
type GitHubAPI struct {
	// URL is the API's base, https://api.github.com or
	// https://HOST/api/v3 for GitHub Enterprise Server.
	URL string
	// Token returns the token (a fine-grained token with Actions: read,
	// or a classic one with repo); it is sent only to URL.
	Token func() string
	// Repos are owner/name, or owner/* for every repository of an
	// organisation.
	Repos  []string
	Client *http.Client
}

// GitHubStatus is the last reconciliation, shown in the status.
type GitHubStatus struct {
	Enabled bool      `json:"enabled"`
	Last    time.Time `json:"last,omitzero"`
	// Changes is how many transitions the last pass found that the
	// webhook had not delivered (queued, started or finished jobs).
	Changes int    `json:"changes"`
	Seen    int    `json:"seen"` // queued and running jobs the API listed
	Error   string `json:"error,omitempty"`
}

var repoRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/(?:\*|[A-Za-z0-9._-]{1,100})$`)

// CheckRepos checks the github-repositories setting's entries.
func CheckRepos(repos []string) error {
	for _, r := range repos {
		if !repoRE.MatchString(r) {
			return fmt.Errorf("%q: want OWNER/NAME or OWNER/* (every repository of an organisation)", r)
		}
	}
	return nil
}

// apiRun and apiJob are the parts of GitHub's workflow run and workflow
// job objects the reconciliation reads.
type apiRun struct {
	ID int64 `json:"id"`
}

type apiJob struct {
	ID          int64      `json:"id"`
	RunID       int64      `json:"run_id"`
	Status      string     `json:"status"` // queued, in_progress, completed, waiting, requested, pending
	Labels      []string   `json:"labels"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
}

func (j apiJob) change(repo string) jobChange {
	c := jobChange{ID: j.ID, Labels: j.Labels, Repo: repo, Created: j.CreatedAt}
	switch j.Status {
	case "in_progress":
		c.Action = "in_progress"
	case "completed":
		c.Action = "completed"
	default: // queued, waiting, requested, pending: not yet on a runner
		c.Action = "queued"
	}
	// GitHub sets started_at when a job is created, before a runner
	// takes it; only a running or finished job's start is a start.
	if j.StartedAt != nil && c.Action != "queued" {
		c.Started = *j.StartedAt
	}
	if j.CompletedAt != nil {
		c.Completed = *j.CompletedAt
	}
	return c
}

// ReconcileGitHub lists the queued and running workflow runs of every
// repository, and their jobs, and records what the webhook missed: a job
// queued or started that the queue does not know, and a job the queue
// holds that GitHub says is finished (looked up one by one when its run
// is no longer listed). It goes through the same idempotent path as the
// webhook, so a job both delivered and listed counts once.
func (q *Queue) ReconcileGitHub(ctx context.Context, api GitHubAPI, now func() time.Time) GitHubStatus {
	st := GitHubStatus{Enabled: true}
	err := q.reconcileGitHub(ctx, api, now, &st)
	st.Last = now()
	if err != nil {
		st.Error = err.Error()
	}
	q.mu.Lock()
	q.github = st
	q.mu.Unlock()
	return st
}

func (q *Queue) reconcileGitHub(ctx context.Context, api GitHubAPI, now func() time.Time, st *GitHubStatus) error {
	repos, err := api.repos(ctx)
	if err != nil {
		return err
	}
	listed := map[int64]bool{}
	var errs []error
	record := func(c jobChange) {
		changed, err := q.apply(ctx, c, now())
		if err != nil {
			errs = append(errs, err)
		} else if changed {
			st.Changes++
		}
	}
	done := map[string]bool{} // repos fully listed
	for _, repo := range repos {
		ok := true
		for _, status := range []string{"queued", "in_progress"} {
			var runs []apiRun
			err := api.pages(ctx, "/repos/"+repo+"/actions/runs?status="+status, "workflow_runs", func(raw json.RawMessage) error {
				var r []apiRun
				err := json.Unmarshal(raw, &r)
				runs = append(runs, r...)
				return err
			})
			if err != nil {
				errs, ok = append(errs, err), false
				continue
			}
			for _, run := range runs {
				err := api.pages(ctx, fmt.Sprintf("/repos/%s/actions/runs/%d/jobs?filter=latest", repo, run.ID), "jobs", func(raw json.RawMessage) error {
					var jobs []apiJob
					if err := json.Unmarshal(raw, &jobs); err != nil {
						return err
					}
					for _, j := range jobs {
						if j.Status != "completed" {
							listed[j.ID] = true
							st.Seen++
						}
						record(j.change(repo))
					}
					return nil
				})
				if err != nil {
					errs, ok = append(errs, err), false
				}
			}
		}
		done[strings.ToLower(repo)] = ok
	}
	// Jobs the queue holds that the listing no longer shows: finished
	// (their completed delivery was missed) or gone.
	q.mu.Lock()
	var stale []QueuedJob
	for id, j := range q.jobs {
		if !listed[id] && j.Repo != "" && done[strings.ToLower(j.Repo)] {
			stale = append(stale, QueuedJob{ID: id, Repo: j.Repo})
		}
	}
	q.mu.Unlock()
	for _, j := range stale {
		var aj apiJob
		err := api.get(ctx, fmt.Sprintf("/repos/%s/actions/jobs/%d", j.Repo, j.ID), &aj)
		var he *httpError
		switch {
		case errors.As(err, &he) && he.status == http.StatusNotFound:
			// Deleted with its run: finished, when, unknown.
			record(jobChange{ID: j.ID, Action: "completed"})
		case err != nil:
			errs = append(errs, err)
		default:
			record(aj.change(j.Repo))
		}
	}
	return errors.Join(errs...)
}

// repos expands owner/* into the organisation's repositories.
func (api GitHubAPI) repos(ctx context.Context) ([]string, error) {
	var out []string
	for _, r := range api.Repos {
		owner, name, _ := strings.Cut(r, "/")
		if name != "*" {
			out = append(out, r)
			continue
		}
		err := api.pages(ctx, "/orgs/"+owner+"/repos?type=all", "", func(raw json.RawMessage) error {
			var repos []struct {
				FullName string `json:"full_name"`
				Archived bool   `json:"archived"`
			}
			if err := json.Unmarshal(raw, &repos); err != nil {
				return err
			}
			for _, rp := range repos {
				if !rp.Archived {
					out = append(out, rp.FullName)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// maxPages bounds one listing (100 a page): a runaway listing must not
// hold the reconciliation for ever.
const maxPages = 50

// pages GETs path page by page (per_page=100, following GitHub's Link
// rel="next"), handing each page's field (or the whole body when
// field is "") to each.
func (api GitHubAPI) pages(ctx context.Context, path, field string, each func(json.RawMessage) error) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := strings.TrimRight(api.URL, "/") + path + sep + "per_page=100"
	for i := 0; next != "" && i < maxPages; i++ {
		body, link, err := api.do(ctx, next)
		if err != nil {
			return err
		}
		raw := json.RawMessage(body)
		if field != "" {
			var page map[string]json.RawMessage
			if err := json.Unmarshal(body, &page); err != nil {
				return fmt.Errorf("GitHub API %s: %w", path, err)
			}
			raw = page[field]
		}
		if len(raw) > 0 && string(raw) != "null" {
			if err := each(raw); err != nil {
				return fmt.Errorf("GitHub API %s: %w", path, err)
			}
		}
		next = nextLink(link)
		// Only follow links on the API's own host: the token goes along.
		if u, err := url.Parse(next); next != "" && (err != nil || !sameHost(u, api.URL)) {
			return fmt.Errorf("GitHub API %s: next page %q is not on %s", path, next, api.URL)
		}
	}
	return nil
}

func sameHost(u *url.URL, base string) bool {
	b, err := url.Parse(base)
	return err == nil && u.Scheme == b.Scheme && u.Host == b.Host
}

func (api GitHubAPI) get(ctx context.Context, path string, v any) error {
	body, _, err := api.do(ctx, strings.TrimRight(api.URL, "/")+path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GitHub API %s: %w", path, err)
	}
	return nil
}

type httpError struct {
	url    string
	status int
	msg    string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("GitHub API %s: %d %s", e.url, e.status, e.msg)
}

func (api GitHubAPI) do(ctx context.Context, u string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	if api.Token != nil {
		if tok := api.Token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	client := api.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("GitHub API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, "", fmt.Errorf("GitHub API %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var m struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &m)
		msg := m.Message
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			msg += " (check the github-token setting)"
		case http.StatusForbidden, http.StatusTooManyRequests:
			if resp.Header.Get("X-RateLimit-Remaining") == "0" {
				msg += " (rate limited until " + resp.Header.Get("X-RateLimit-Reset") + "; raise github-reconcile-interval)"
			} else {
				msg += " (the token needs Actions: read on the repository)"
			}
		}
		return nil, "", &httpError{url: req.URL.Path, status: resp.StatusCode, msg: msg}
	}
	return body, resp.Header.Get("Link"), nil
}

var nextRE = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

func nextLink(link string) string {
	if m := nextRE.FindStringSubmatch(link); m != nil {
		return m[1]
	}
	return ""
}
