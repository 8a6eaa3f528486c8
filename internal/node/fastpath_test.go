package node

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
)

// TestReportFastPathAnswersAsHuma: POST /api/v1/jobs/{id}/progress has a
// fast path (api.reportFast) for bodies of known length; a chunked body
// goes through huma's handler. Every request here is sent both ways, each
// to a job of its own made the same way, and must get the same status,
// headers and body (ids and times aside), the report applied or refused
// alike.
func TestReportFastPathAnswersAsHuma(t *testing.T) {
	t.Parallel()
	const secret = "fast-path-test-secret"
	n := startNode(t, "", func(c *Config) { c.AuthSecret = secret })
	mint := func(sub string, o auth.Options) string {
		s, err := auth.MintWith(secret, sub, o, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice, bob := mint("alice", auth.Options{}), mint("bob", auth.Options{})
	readOnly := mint("alice", auth.Options{ReadOnly: true})
	other, err := auth.MintForJob(secret, "alice", "0195522a-0000-7000-8000-000000000000", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 70_000)

	type req struct {
		name, body, token, query string
		header                   map[string]string
		before                   []string // reports sent first, the same way
	}
	for _, r := range []req{
		{name: "progress", body: `{"progress":0.1,"message":"hi"}`, token: alice},
		{name: "no content type", body: `{"progress":0.2}`, token: alice, header: map[string]string{"Content-Type": ""}},
		{name: "stage and state", body: `{"state":"running","message":"go","current":3,"total":10}`, token: alice},
		{name: "succeeded", body: `{"state":"succeeded","result":{"n":1}}`, token: alice},
		{name: "after succeeded", body: `{"progress":0.5}`, token: alice, before: []string{`{"state":"succeeded"}`}},
		{name: "out of range", body: `{"progress":2}`, token: alice},
		{name: "unknown field", body: `{"progres":0.4}`, token: alice},
		{name: "bad JSON", body: `{"progress":0.4`, token: alice},
		{name: "two values", body: `{"progress":0.4} {}`, token: alice},
		{name: "log lines", body: `{"log":["a","b"],"progress":0.5}`, token: alice},
		{name: "too large", body: `{"message":"` + long + `"}`, token: alice},
		{name: "Accept other", body: `{"progress":0.3}`, token: alice, header: map[string]string{"Accept": "text/html"}},
		{name: "Accept any", body: `{"progress":0.3}`, token: alice, header: map[string]string{"Accept": "*/*"}},
		{name: "traceparent", body: `{"progress":0.3}`, token: alice,
			header: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{name: "token in query", body: `{"progress":0.3}`, query: "?token=" + alice},
		{name: "no token", body: `{"progress":0.3}`},
		{name: "not bearer", body: `{"progress":0.3}`, header: map[string]string{"Authorization": "Basic eA=="}},
		{name: "bad token", body: `{"progress":0.3}`, token: "bad"},
		{name: "read-only token", body: `{"progress":0.3}`, token: readOnly},
		{name: "token for another job", body: `{"progress":0.3}`, token: other},
		{name: "another user's job", body: `{"progress":0.3}`, token: bob},
		{name: "no such job", body: `{"progress":0.3}`, token: alice, query: "nope"},
	} {
		t.Run(r.name, func(t *testing.T) {
			var answers [2]string
			for i, chunked := range []bool{false, true} {
				id := create(t, client{t: t, base: n.URL(), token: alice}, `{"project":"p1"}`).JobID
				path := "/api/v1/jobs/" + id + "/progress"
				if r.query == "nope" {
					path = "/api/v1/jobs/0195522a-0000-7000-8000-00000000ffff/progress"
				} else {
					path += r.query
				}
				for _, b := range r.before {
					send(t, n.URL()+path, b, r.token, r.header, chunked)
				}
				answers[i] = strings.ReplaceAll(send(t, n.URL()+path, r.body, r.token, r.header, chunked), id, "ID")
			}
			if answers[0] != answers[1] {
				t.Errorf("with a length (fast path):\n%s\nchunked (huma):\n%s", answers[0], answers[1])
			}
		})
	}
}

// varying are the parts of an answer that differ between two jobs made
// the same way: times and the estimate drawn from them.
var varying = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"|"eta_seconds":[0-9.e+-]+|Content-Length: \d+`)

// send posts body to url, with its length or chunked, and returns the
// answer as text: status, headers but Date, body.
func send(t *testing.T, url, body, token string, header map[string]string, chunked bool) string {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // no length known: sent chunked
	}
	req, err := http.NewRequest(http.MethodPost, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Del("Date")
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d\n", resp.StatusCode)
	_ = resp.Header.Write(&sb)
	sb.Write(b)
	return varying.ReplaceAllString(sb.String(), "X")
}
