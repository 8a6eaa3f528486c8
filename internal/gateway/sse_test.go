package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// sseStream is a test SSE client.
type sseStream struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

type sseEvent struct {
	event, id, data string
	comment         string
}

// get opens path (with query) on the test server, with header h.
func (e *env) get(t *testing.T, path string, h http.Header) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// stream opens an SSE stream and checks it started.
func (e *env) stream(t *testing.T, path string, h http.Header) *sseStream {
	t.Helper()
	resp := e.get(t, path, h)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body)}
}

// next returns the next event or comment.
func (s *sseStream) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			ev.data = strings.Join(data, "\n")
			return ev, nil
		case strings.HasPrefix(line, ":"):
			ev.comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			ev.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[len("data: "):])
		default:
			s.t.Fatalf("unexpected SSE line %q", line)
		}
	}
}

// update returns the next update event, skipping heartbeats.
func (s *sseStream) update() sseEvent {
	s.t.Helper()
	for {
		ev, err := s.next()
		if err != nil {
			s.t.Fatalf("read event: %v", err)
		}
		if ev.comment == "" {
			if ev.event != "update" {
				s.t.Fatalf("event %+v, want an update", ev)
			}
			return ev
		}
	}
}

func decodeSnapshot(t *testing.T, data string) progress.Snapshot {
	t.Helper()
	var s progress.Snapshot
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		t.Fatalf("data %q: %v", data, err)
	}
	return s
}

func TestSSEJobEvents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	for _, h := range []http.Header{
		{"Authorization": {"Bearer " + e.token(t, "alice", false, time.Hour)}},
		nil, // ?token=
	} {
		path := "/api/v1/jobs/" + job.JobID + "/events"
		if h == nil {
			path += "?token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour))
		}
		s := e.stream(t, path, h)
		first := s.update()
		cur, _ := e.svc.Get(context.Background(), job.JobID)
		if snap := decodeSnapshot(t, first.data); snap.JobID != job.JobID || first.id != itoa(snap.Seq) || snap.Seq != cur.Seq {
			t.Fatalf("first event %+v, want the current snapshot (seq %d) with its seq as id", first, cur.Seq)
		}
	}
	s := e.stream(t, "/api/v1/jobs/"+job.JobID+"/events?token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	s.update()
	r := e.report(t, job.JobID, 0.25, "")
	if ev := s.update(); ev.id != itoa(r.Seq) || decodeSnapshot(t, ev.data).Progress != 0.25 {
		t.Fatalf("live event %+v, want seq %d", ev, r.Seq)
	}
	done := e.report(t, job.JobID, 0, progress.Canceled)
	for {
		ev := s.update()
		if snap := decodeSnapshot(t, ev.data); snap.State.Terminal() {
			if snap.Seq != done.Seq {
				t.Fatalf("terminal seq %d, want %d", snap.Seq, done.Seq)
			}
			break
		}
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestSSEEventsChannelsAndHeartbeat(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.HeartbeatInterval = 20 * time.Millisecond })
	mine := e.createJob(t, "alice", "p")
	e.createJob(t, "bob", "p") // not visible to alice
	q := url.Values{"token": {e.token(t, "alice", false, time.Hour)}, "channel": {"project:p", "job:" + mine.JobID, "project:p"}}
	s := e.stream(t, "/api/v1/events?"+q.Encode(), nil)
	got := map[string]bool{}
	for range 2 {
		ev := s.update()
		var d struct {
			Channel string
			Job     progress.Snapshot
		}
		if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
			t.Fatalf("data %q: %v", ev.data, err)
		}
		if d.Job.JobID != mine.JobID || ev.id != "" {
			t.Fatalf("event %+v: want alice's job, no id", ev)
		}
		got[d.Channel] = true
	}
	if !got["project:p"] || !got["job:"+mine.JobID] {
		t.Fatalf("channels %v, want both (and the repeated one once)", got)
	}
	for {
		ev, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.comment == "ping" {
			break
		}
	}
}

func TestSSEErrors(t *testing.T) {
	t.Parallel()
	e := setup(t,
		func(c *Config) { c.MaxSubscriptions = 2 },
		func(c *Config) { c.Jobs = failingJobs{Jobs: c.Jobs, job: "broken-job", project: "broken"} })
	bobs := e.createJob(t, "bob", "p")
	tok := "token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour))
	events := func(chs ...string) string {
		return "/api/v1/events?" + tok + "&" + url.Values{"channel": chs}.Encode()
	}
	tests := []struct {
		path   string
		status int
		code   string
	}{
		{"/api/v1/jobs/" + bobs.JobID + "/events", 401, CodeUnauthorized},
		{"/api/v1/jobs/" + bobs.JobID + "/events?token=garbage", 401, CodeUnauthorized},
		{"/api/v1/jobs/no-such-job/events?" + tok, 404, CodeNotFound},
		{"/api/v1/jobs/" + bobs.JobID + "/events?" + tok, 404, CodeNotFound}, // not visible: as GET
		{"/api/v1/jobs/broken-job/events?" + tok, 500, CodeInternal},
		{"/api/v1/events?" + tok, 400, CodeBadRequest},
		{events("nope:x"), 400, CodeBadRequest},
		{events("job:" + bobs.JobID), 403, CodeForbidden},
		{events("user:bob"), 403, CodeForbidden},
		{events("job:no-such-job"), 404, CodeNotFound},
		{events("project:a", "project:b", "project:c"), 400, CodeLimitExceeded},
		{events("project:broken"), 500, CodeInternal},
	}
	for _, tt := range tests {
		resp := e.get(t, tt.path, nil)
		var body struct{ Error protoError }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Errorf("GET %s: body: %v", tt.path, err)
			continue
		}
		if resp.StatusCode != tt.status || body.Error.Code != tt.code || body.Error.Message == "" {
			t.Errorf("GET %s: %d %+v, want %d %s", tt.path, resp.StatusCode, body.Error, tt.status, tt.code)
		}
	}
}

func TestSSEConnectionLimit(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxConnsPerUser = 1 })
	tok := "token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour))
	e.stream(t, "/api/v1/events?channel=user:alice&"+tok, nil)
	resp := e.get(t, "/api/v1/events?channel=user:alice&"+tok, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second stream: %d, want 429", resp.StatusCode)
	}
	// A WebSocket counts against the same limit.
	e.dialAs(t, "alice").expectClose(StatusTooManyConnections)
}

func TestSSEShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.stream(t, "/api/v1/events?channel=user:alice&token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := e.gw.Shutdown(ctx); err != nil { // twice is fine
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := s.next(); err != io.EOF {
		t.Fatalf("stream after Shutdown: %v, want EOF", err)
	}
	resp := e.get(t, "/api/v1/events?channel=user:alice&token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream after Shutdown: %d, want 503", resp.StatusCode)
	}
}

func TestSSETokenExpiryEndsStream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.stream(t, "/api/v1/events?channel=user:alice&token="+url.QueryEscape(e.token(t, "alice", false, 1500*time.Millisecond)), nil)
	for {
		if _, err := s.next(); err != nil {
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want EOF", err)
			}
			break
		}
	}
	if value(e.gw.m.expired) != 1 {
		t.Fatal("expiry not counted")
	}
}
