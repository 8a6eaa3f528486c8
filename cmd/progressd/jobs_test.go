package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// TestCreateGetListCancel drives a job through the job commands a shell
// script would use, in both output formats.
func TestCreateGetListCancel(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})

	out, errOut, code := run(t, "create", "--server", s.URL, "--project", "cli-p", "--stage", "fetch", "--stage", "load:3")
	id := strings.TrimSuffix(out, "\n")
	if code != 0 || uuid.Validate(id) != nil {
		t.Fatalf("create: exit %d, stdout %q, stderr %q; want the id alone", code, out, errOut)
	}
	if _, errOut, code := run(t, "report", id, "--server", s.URL, "--stage", "load", "--progress", "0.5", "--message", "half \x1b[2J"); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}

	out, _, code = run(t, "get", id, "--server", s.URL)
	for _, want := range []string{`job\s+` + id, `state\s+running 62%`, `stages\s+fetch succeeded 100%, load running 50%`, `message\s+half \\u001b\[2J`} {
		if code != 0 || !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("get: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("get printed a raw escape:\n%q", out)
	}
	out, _, code = run(t, "get", id, "--server", s.URL, "--output", "json")
	var snap client.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); code != 0 || err != nil || snap.JobID != id || snap.Progress != 0.625 {
		t.Fatalf("get -o json: exit %d, %v, %+v", code, err, snap)
	}

	other, _, _ := run(t, "create", "--server", s.URL, "--project", "cli-p", "-o", "json")
	var otherSnap client.Snapshot
	if err := json.Unmarshal([]byte(other), &otherSnap); err != nil || otherSnap.State != client.Queued {
		t.Fatalf("create -o json: %v, %q", err, other)
	}

	out, errOut, code = run(t, "list", "--server", s.URL, "--project", "cli-p", "--limit", "1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.HasPrefix(lines[1], otherSnap.JobID) {
		t.Fatalf("list --limit 1: exit %d, stdout:\n%s", code, out)
	}
	if !strings.Contains(errOut, "more: add --cursor ") {
		t.Errorf("list did not say how to get the next page: %q", errOut)
	}
	out, _, code = run(t, "list", "--server", s.URL, "--project", "cli-p", "--limit", "1", "--all")
	if n := strings.Count(out, "\n"); code != 0 || n != 3 || !strings.Contains(out, id) || !strings.Contains(out, "load") {
		t.Fatalf("list --all: exit %d, %d lines:\n%s", code, n, out)
	}
	out, _, code = run(t, "list", "--server", s.URL, "--project", "cli-p", "--state", "running", "-o", "json")
	var page client.Page
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != id || page.NextCursor != nil {
		t.Fatalf("list --state running -o json: exit %d, %v, %s", code, err, out)
	}

	out, errOut, code = run(t, "cancel", id, "--server", s.URL)
	if code != 0 || out != "job "+id+" canceled at 62%\n" {
		t.Fatalf("cancel: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := run(t, "cancel", id, "--server", s.URL); code != 2 || !strings.Contains(errOut, "job_finished") {
		t.Fatalf("cancel twice: exit %d, %q; want job_finished", code, errOut)
	}
	if got, _ := s.Jobs.Get(t.Context(), id); got.State != client.Canceled {
		t.Fatalf("after cancel: %s", got.State)
	}
}

// TestCreateWithNameAndTags: create --name and repeated --tag reach the
// job; get shows them, list --tag finds the job by either tag and no other.
func TestCreateWithNameAndTags(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})

	out, errOut, code := run(t, "create", "--server", s.URL, "--project", "cli-tags", "--name", "November invoices",
		"--tag", "customer-42", "--tag", "invoice:2026-11", "-o", "json")
	var snap client.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); code != 0 || err != nil {
		t.Fatalf("create: exit %d, %v, stdout %q, stderr %q", code, err, out, errOut)
	}
	if snap.Name != "November invoices" || strings.Join(snap.Tags, ",") != "customer-42,invoice:2026-11" {
		t.Fatalf("create: name %q, tags %v", snap.Name, snap.Tags)
	}
	untagged, _, _ := run(t, "create", "--server", s.URL, "--project", "cli-tags")

	out, _, code = run(t, "get", snap.JobID, "--server", s.URL)
	for _, want := range []string{`name\s+November invoices`, `tags\s+customer-42, invoice:2026-11`} {
		if code != 0 || !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("get: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
	for _, tag := range []string{"customer-42", "invoice:2026-11"} {
		out, _, code = run(t, "list", "--server", s.URL, "--tag", tag, "-o", "json")
		var page client.Page
		if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != snap.JobID {
			t.Errorf("list --tag %s: exit %d, %v, %s", tag, code, err, out)
		}
	}
	out, _, code = run(t, "list", "--server", s.URL, "--tag", "customer-7", "-o", "json")
	if code != 0 || strings.TrimSpace(out) != `{"jobs":[],"next_cursor":null}` || strings.TrimSpace(untagged) == "" {
		t.Errorf("list --tag customer-7: exit %d, %s", code, out)
	}
}

// TestJobCommandsRefuseBadInput: every refusal says what to do and
// creates nothing.
func TestJobCommandsRefuseBadInput(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--stage", "a"}, `"project" not set`},
		{[]string{"create", "--project", "p", "--stage", "a:0"}, "must be a number > 0"},
		{[]string{"create", "--project", "p", "--stage", "a:x"}, "must be a number > 0"},
		{[]string{"create", "--project", "p", "--stage", ":2"}, "needs a name"},
		{[]string{"create", "--project", "p", "--stage", "a", "--stage", "a"}, "invalid_job"},
		{[]string{"create", "--project", "has space"}, "may not contain spaces"},
		{[]string{"create", "--project", "p", "--tag", "has space"}, "invalid_tag"},
		{[]string{"create", "--project", "p", "--tag", "a", "--tag", "a"}, "is given twice"},
		{[]string{"create", "--project", "p", "--name", strings.Repeat("n", 201)}, "invalid_name"},
		{[]string{"create", "--project", "p", "-o", "yaml"}, `--output "yaml": use text or json`},
		{[]string{"list", "-o", "text"}, "use table or json"},
		{[]string{"list", "--state", "done"}, "not one of"},
		{[]string{"get", "no-such-job"}, "not_found"},
		{[]string{"cancel", "no-such-job"}, "not_found"},
		{[]string{"get"}, "accepts 1 arg"},
	} {
		out, errOut, code := run(t, append(tc.args, "--server", s.URL)...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and an error saying %q", tc.args, code, out, errOut, tc.want)
		}
	}
	out, _, _ := run(t, "list", "--server", s.URL, "-o", "json")
	if strings.TrimSpace(out) != `{"jobs":[],"next_cursor":null}` {
		t.Errorf("the refused creates made jobs: %s", out)
	}
	if _, errOut, code := run(t, "get", "x", "--server", "http://127.0.0.1:1"); code != 2 || !strings.Contains(errOut, "is progressd running") {
		t.Errorf("server down: exit %d, %q", code, errOut)
	}
}

// TestMissingTokenSaysWhatToDo is not parallel: it clears PROGRESSD_TOKEN.
func TestMissingTokenSaysWhatToDo(t *testing.T) {
	const secret = "cli-missing-token-secret-0123456789"
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines, AuthSecret: secret})
	t.Setenv("PROGRESSD_TOKEN", "")
	for _, args := range [][]string{
		{"create", "--project", "p"}, {"list"}, {"get", "j"}, {"cancel", "j"},
		{"report", "j", "--progress", "0.5"}, {"submit", "--project", "p", "--pipeline", "quick", "--param", "word=x"},
	} {
		_, errOut, code := run(t, append(args, "--server", s.URL)...)
		if code != 2 || !strings.Contains(errOut, "pass --token or set PROGRESSD_TOKEN") {
			t.Errorf("%v without a token: exit %d, %q", args, code, errOut)
		}
	}
	expired, err := auth.Mint(secret, "erin", false, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(t, "list", "--server", s.URL, "--token", expired); code != 2 || !strings.Contains(errOut, "pass a valid --token") {
		t.Errorf("expired token: exit %d, %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "progressd ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	out, _, code = run(t, "version", "-o", "json")
	var b buildInfo
	if err := json.Unmarshal([]byte(out), &b); code != 0 || err != nil || b.Version == "" || b.Go == "" || b.Platform == "" {
		t.Fatalf("version -o json: exit %d, %v, %q", code, err, out)
	}
}

// TestLogs prints a job's kept lines, escaped, from --after on, and says
// when lines asked for were already dropped.
func TestLogs(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: cliPipelines})
	c, err := client.New(s.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "cli-logs"})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1000, 499} { // two appends: the read pages at 1,000
		lines := make([]string, n)
		for i := range lines {
			lines[i] = "row " + strconv.Itoa(i)
		}
		body, _ := json.Marshal(map[string]any{"lines": lines})
		resp, err := http.Post(s.URL+"/api/v1/jobs/"+job.JobID+"/logs", "application/json", bytes.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("append: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	if _, err := c.Report(t.Context(), job.JobID, client.Report{Message: ptr("x")}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"lines": []string{"evil \x1b]0;title\x07"}})
	resp, err := http.Post(s.URL+"/api/v1/jobs/"+job.JobID+"/logs", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("append: %v %v", resp, err)
	}
	resp.Body.Close()

	// The server keeps the newest 1,000 (--log-lines): 501 to 1,500.
	out, errOut, code := run(t, "logs", job.JobID, "--server", s.URL)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 1000 || lines[0] != "501 log row 500" || lines[999] != `1500 log evil \u001b]0;title\u0007` || errOut != "" {
		t.Fatalf("logs: exit %d, %d lines (first %q, last %q), stderr %q", code, len(lines), lines[0], lines[len(lines)-1], errOut)
	}
	out, errOut, code = run(t, "logs", job.JobID, "--server", s.URL, "--after", "3")
	if code != 0 || strings.Count(out, "\n") != 1000 || !strings.Contains(errOut, "lines after 3 were already dropped; the first kept line is 501") {
		t.Fatalf("logs --after 3: exit %d, stderr %q", code, errOut)
	}
	out, _, code = run(t, "logs", job.JobID, "--server", s.URL, "--after", "1498", "-o", "json")
	var page client.LogPage
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Lines) != 2 || page.Lines[0].N != 1499 || page.Last != 1500 {
		t.Fatalf("logs --after 1498 -o json: exit %d, %v, %s", code, err, out)
	}
	if _, errOut, code := run(t, "logs", "no-such-job", "--server", s.URL); code != 2 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("unknown job: exit %d, %q", code, errOut)
	}
}

func ptr[T any](v T) *T { return &v }
