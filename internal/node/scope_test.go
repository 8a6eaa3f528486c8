package node

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// TestJobScopedTokenOverHTTP: the token a pipeline stage gets may read and
// report on its own job, and is refused with 403 forbidden for everything
// else its owner could do: another job, creating, listing, cancelling,
// and the owner's project: and user: channels.
func TestJobScopedTokenOverHTTP(t *testing.T) {
	t.Parallel()
	const secret = "scope-test-secret"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}
	mine := create(t, alice, `{"project":"p","stages":[{"name":"a"},{"name":"b"}]}`)
	other := create(t, alice, `{"project":"p"}`)
	tok, err := auth.MintForJob(secret, "alice", mine.JobID, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stage := client{t: t, base: n.URL(), token: tok}

	if s := report(t, stage, mine.JobID, `{"stage":"b","progress":0.5}`); !near(s.Progress, 0.75) {
		t.Fatalf("report with the job's token: %+v", s)
	}
	if g := get(t, stage, mine.JobID); !near(g.Progress, 0.75) {
		t.Fatalf("get with the job's token: %+v", g)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/jobs/" + other.JobID, ""},
		{"POST", "/api/v1/jobs/" + other.JobID + "/progress", `{"progress":0.5}`},
		{"GET", "/api/v1/jobs/no-such-job", ""},
		{"POST", "/api/v1/jobs", `{"project":"p"}`},
		{"POST", "/api/v1/jobs", `{"project":"p","pipeline":"no-such-pipeline"}`}, // refused before the body is looked at
		{"GET", "/api/v1/jobs", ""},
		{"GET", "/api/v1/jobs?project=p", ""},
		{"POST", "/api/v1/jobs/" + mine.JobID + "/cancel", ""},
		{"POST", "/api/v1/jobs/" + other.JobID + "/cancel", ""},
		{"GET", "/api/v1/jobs/" + other.JobID + "/events", ""},
		{"GET", "/api/v1/events?channel=project:p", ""},
		{"GET", "/api/v1/events?channel=user:alice", ""},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		r := stage.do(tc.method, tc.path, body)
		if r.status != http.StatusForbidden || r.errCode() != "forbidden" || !strings.Contains(string(r.body), mine.JobID) {
			t.Errorf("%s %s with a token scoped to job %s: %d %s, want 403 forbidden naming the job", tc.method, tc.path, mine.JobID, r.status, r.body)
		}
	}
	if g := get(t, alice, other.JobID); g.Seq != other.Seq {
		t.Fatalf("the refused report changed the other job: %+v", g)
	}

	// A token scoped to alice's job but of another user sees nothing.
	bobs, err := auth.MintForJob(secret, "bob", mine.JobID, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := (client{t: t, base: n.URL(), token: bobs}).do("GET", "/api/v1/jobs/"+mine.JobID, nil); r.status != http.StatusNotFound {
		t.Fatalf("bob's token scoped to alice's job: %d %s, want 404", r.status, r.body)
	}

	// Over WebSocket: its job, and none of the owner's wider channels.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.URL(), "http")+"/ws?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for i, tc := range []struct{ channel, wantErr string }{
		{"project:p", `"code":"forbidden"`},
		{"user:alice", `"code":"forbidden"`},
		{"job:" + other.JobID, `"code":"forbidden"`},
		{"job:" + mine.JobID, ""},
	} {
		frame := fmt.Sprintf(`{"op":"subscribe","id":%d,"channel":%q}`, i+1, tc.channel)
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		_, reply, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tc.wantErr == "" && strings.Contains(string(reply), `"error"`) || !strings.Contains(string(reply), tc.wantErr) {
			t.Errorf("subscribe %s: %s, want an error %q", tc.channel, reply, tc.wantErr)
		}
	}
}

// TestStageReportsWithItsTokenWhenAuthIsOn runs a pipeline on a node with
// an auth secret whose stage calls the real `progressd report` with no
// flags: it finds the job, the server and its token (PROGRESSD_TOKEN) in
// its environment. Without the token the node mints for the stage, the
// report is refused with 401 and the stage, and so the job, fails. The
// second stage checks the token is scoped: creating a job with it is
// refused as forbidden (an unscoped token would get unknown_pipeline).
func TestStageReportsWithItsTokenWhenAuthIsOn(t *testing.T) {
	t.Parallel()
	const secret = "stage-token-test-secret"
	bin := progressdBinary(t)
	pipelines := filepath.Join(t.TempDir(), "pipelines.yaml")
	if err := os.WriteFile(pipelines, fmt.Appendf(nil, `
pipelines:
  reporting:
    stages:
      - name: work
        run: [%q, "report", "--progress", "0.5", "--message", "reported by progressd report"]
        timeout: 1m
      - name: scoped
        run: ["sh", "-c", "\"$0\" submit --project p --pipeline no-such-pipeline 2>&1 | grep forbidden", %q]
`, bin, bin), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, "", func(c *Config) {
		c.AuthSecret = secret
		c.Pipelines = pipelines
	})

	var (
		mu       sync.Mutex
		reported []progress.Snapshot
	)
	stop := n.broker.Subscribe(func(u broker.Update) {
		if u.Snapshot.Message == "reported by progressd report" {
			mu.Lock()
			reported = append(reported, u.Snapshot)
			mu.Unlock()
		}
	})
	defer stop()

	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}
	job := create(t, alice, `{"project":"p","pipeline":"reporting"}`)
	var last progress.Snapshot
	testsvc.Eventually(t, 60*time.Second, "the job to finish", func() bool {
		last = get(t, alice, job.JobID)
		return last.State.Terminal()
	})
	if last.State != progress.Succeeded {
		errText := ""
		if last.Error != nil {
			errText = *last.Error
		}
		t.Fatalf("job %s: %s", last.State, errText)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) == 0 || reported[0].Stage != "work" || !near(reported[0].Progress, 0.25) {
		t.Fatalf("the stage's report did not arrive as work at 50%% (job at 25%%): %+v", reported)
	}
}

// TestScopedTokensOverHTTP: an end user's scoped token (SPEC.md part two,
// "Scoped tokens") reads the jobs its scope names — by children:, tag: and
// job: — lists only with a filter its scope names, and never creates,
// cancels or lists beyond it; read-only, it cannot report either. A job
// the scope does not name is 404, as another user's. An empty scope opens
// nothing; a wildcard scope is not a token at all (401).
func TestScopedTokensOverHTTP(t *testing.T) {
	t.Parallel()
	const secret = "scope-test-secret"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}
	parent := create(t, alice, `{"project":"p"}`)
	child := create(t, alice, `{"parent_id":"`+parent.JobID+`"}`)
	blue := create(t, alice, `{"project":"p","tags":["blue"]}`)
	plain := create(t, alice, `{"project":"p"}`)
	scoped := func(readOnly bool, scope ...string) client {
		tok, err := auth.MintWith(secret, "alice", auth.Options{Scope: scope, ReadOnly: readOnly}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return client{t: t, base: n.URL(), token: tok}
	}
	ro := scoped(true, "children:"+parent.JobID, "tag:blue")
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/v1/jobs/" + child.JobID, "", 200},
		{"GET", "/api/v1/jobs/" + blue.JobID, "", 200},
		{"GET", "/api/v1/jobs/" + parent.JobID, "", 404}, // children: does not name the parent
		{"GET", "/api/v1/jobs/" + plain.JobID, "", 404},
		{"GET", "/api/v1/jobs?parent=" + parent.JobID, "", 200},
		{"GET", "/api/v1/jobs?tag=blue", "", 200},
		{"GET", "/api/v1/jobs?tag=red", "", 403},
		{"GET", "/api/v1/jobs?project=p", "", 403},
		{"GET", "/api/v1/jobs", "", 403},
		{"POST", "/api/v1/jobs/" + child.JobID + "/progress", `{"progress":0.5}`, 403}, // read-only
		{"POST", "/api/v1/jobs/" + child.JobID + "/cancel", "", 403},
		{"POST", "/api/v1/jobs", `{"project":"p"}`, 403},
		{"GET", "/api/v1/projects", "", 403},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		if r := ro.do(tc.method, tc.path, body); r.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
		}
	}
	if r := ro.do("GET", "/api/v1/jobs?parent="+parent.JobID, nil); !strings.Contains(string(r.body), child.JobID) {
		t.Errorf("list of the children: %s", r.body)
	}
	if r := ro.do("POST", "/api/v1/jobs/"+child.JobID+"/progress", `{"progress":0.5}`); !strings.Contains(string(r.body), "read-only") {
		t.Errorf("a read-only report's refusal does not say why: %s", r.body)
	}

	// Without read_only: reports on what it names, not on the rest.
	rw := scoped(false, "tag:blue")
	if s := report(t, rw, blue.JobID, `{"progress":0.4}`); !near(s.Progress, 0.4) {
		t.Fatalf("report with a tag: scope: %+v", s)
	}
	if r := rw.do("POST", "/api/v1/jobs/"+plain.JobID+"/progress", `{"progress":0.5}`); r.status != 404 {
		t.Errorf("report outside the scope: %d %s, want 404", r.status, r.body)
	}
	if g := get(t, alice, plain.JobID); g.Seq != plain.Seq {
		t.Fatalf("a refused report changed the job: %+v", g)
	}

	// logs:<id> opens the job's lines, not the job; job:<id> opens both.
	logsOnly := scoped(true, "logs:"+blue.JobID)
	for _, tc := range []struct {
		c            client
		method, path string
		body         any
		status       int
	}{
		{logsOnly, "GET", "/api/v1/jobs/" + blue.JobID + "/logs", nil, 200},
		{logsOnly, "GET", "/api/v1/jobs/" + blue.JobID, nil, 404},
		{logsOnly, "GET", "/api/v1/jobs/" + plain.JobID + "/logs", nil, 403},
		{logsOnly, "POST", "/api/v1/jobs/" + blue.JobID + "/logs", `{"lines":["x"]}`, 403},
		{rw, "POST", "/api/v1/jobs/" + blue.JobID + "/logs", `{"lines":["x"]}`, 200},
		{rw, "GET", "/api/v1/jobs/" + blue.JobID + "/logs", nil, 200},
		{rw, "POST", "/api/v1/jobs/" + plain.JobID + "/logs", `{"lines":["x"]}`, 404},
	} {
		if r := tc.c.do(tc.method, tc.path, tc.body); r.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
		}
	}

	// An empty scope opens nothing; a wildcard is refused outright.
	for name, claims := range map[string]string{
		"empty scope": `{"sub":"alice","scope":[]}`,
		"project:*":   `{"sub":"alice","scope":["project:*"]}`,
	} {
		tok := mintClaims(t, secret, claims)
		c := client{t: t, base: n.URL(), token: tok}
		want := map[string]int{"empty scope": 403, "project:*": 401}[name]
		for _, path := range []string{"/api/v1/jobs/" + blue.JobID, "/api/v1/jobs?project=p"} {
			if r := c.do("GET", path, nil); r.status != want {
				t.Errorf("%s: GET %s: %d %s, want %d", name, path, r.status, r.body, want)
			}
		}
	}
}
