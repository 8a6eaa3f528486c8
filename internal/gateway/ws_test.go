package gateway

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

func TestWSSubscribeSendsReplyThenSnapshotThenChanges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p1")
	c := e.dialAs(t, "alice")
	c.subscribe("job:" + job.JobID)
	if len(c.early) != 0 {
		t.Fatalf("updates arrived before the subscribe reply: %+v", c.early)
	}
	if f := c.next(); f.Channel != "job:"+job.JobID || f.Job.Seq != job.Seq || f.Job.State != progress.Queued {
		t.Fatalf("first update %+v, want the current snapshot seq %d", f, job.Seq)
	}
	r := e.report(t, job.JobID, 0.5, "")
	if f := c.next(); f.Job.Seq != r.Seq || f.Job.Progress != 0.5 {
		t.Fatalf("live update %+v, want seq %d progress 0.5", f.Job, r.Seq)
	}
	done := e.report(t, job.JobID, 0, progress.Succeeded)
	if f := c.untilTerminal(job.JobID); f.Job.Seq != done.Seq {
		t.Fatalf("terminal seq %d, want %d", f.Job.Seq, done.Seq)
	}
}

func TestWSProjectAndUserChannels(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mine := e.createJob(t, "alice", "shared")
	theirs := e.createJob(t, "bob", "shared")
	c := e.dialAs(t, "alice")
	c.subscribe("project:shared")
	if f := c.next(); f.Job.JobID != mine.JobID || f.Channel != "project:shared" {
		t.Fatalf("project snapshot %+v, want only alice's job", f)
	}
	c.subscribe("user:alice")
	if f := c.next(); f.Job.JobID != mine.JobID || f.Channel != "user:alice" {
		t.Fatalf("user snapshot %+v", f)
	}
	e.report(t, theirs.JobID, 0.3, "") // invisible to alice
	e.report(t, mine.JobID, 0.4, "")
	got := map[string]bool{}
	for range 2 {
		f := c.next()
		if f.Job.JobID != mine.JobID {
			t.Fatalf("alice got bob's job on %s", f.Channel)
		}
		got[f.Channel] = true
	}
	if !got["project:shared"] || !got["user:alice"] {
		t.Fatalf("want the update once per channel, got %v", got)
	}

	// An admin sees every job of the project.
	admin := e.dial(t, "token="+url.QueryEscape(e.token(t, "root", true, time.Hour)), nil)
	admin.subscribe("project:shared")
	seen := map[string]bool{admin.next().Job.JobID: true, admin.next().Job.JobID: true}
	if !seen[mine.JobID] || !seen[theirs.JobID] {
		t.Fatalf("admin saw %v, want both jobs", seen)
	}

	// After unsubscribe, nothing more of the channel arrives.
	if r := c.call("unsubscribe", map[string]any{"channel": "project:shared"}); r.Error != nil {
		t.Fatalf("unsubscribe: %v", r.Error)
	}
	e.report(t, mine.JobID, 0.6, "")
	if f := c.next(); f.Channel != "user:alice" {
		t.Fatalf("update on %s after unsubscribing from it", f.Channel)
	}
}

func TestWSCloseCodes(t *testing.T) {
	t.Parallel()
	expired, err := auth.Mint(testSecret, "alice", false, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []option
		run  func(t *testing.T, e *env)
		want websocket.StatusCode
	}{
		{"4001 no auth frame in time", []option{func(c *Config) { c.AuthTimeout = 100 * time.Millisecond }},
			func(t *testing.T, e *env) {
				c := e.dial(t, "", nil)
				c.expectClose(StatusUnauthorized)
			}, StatusUnauthorized},
		{"4001 bad token in URL", nil, func(t *testing.T, e *env) {
			e.dial(t, "token=garbage", nil).expectClose(StatusUnauthorized)
		}, StatusUnauthorized},
		{"4001 bad bearer header", nil, func(t *testing.T, e *env) {
			e.dial(t, "", http.Header{"Authorization": {"Bearer garbage"}}).expectClose(StatusUnauthorized)
		}, StatusUnauthorized},
		{"4001 expired token", nil, func(t *testing.T, e *env) {
			e.dial(t, "token="+expired, nil).expectClose(StatusUnauthorized)
		}, StatusUnauthorized},
		{"4001 bad token in auth frame", nil, func(t *testing.T, e *env) {
			c := e.dial(t, "", nil)
			c.send(map[string]any{"op": "auth", "id": 1, "token": "garbage"})
			c.expectClose(StatusUnauthorized)
		}, StatusUnauthorized},
		{"4001 token expires on an open connection", nil, func(t *testing.T, e *env) {
			c := e.dial(t, "token="+e.token(t, "alice", false, 1500*time.Millisecond), nil)
			c.subscribe("user:alice")
			c.expectClose(StatusUnauthorized)
			testsvc.Eventually(t, 15*time.Second, "the expiry counted", func() bool { return value(e.gw.m.expired) == 1 })
		}, StatusUnauthorized},
		{"4029 too many connections", []option{func(c *Config) { c.MaxConnsPerUser = 2 }}, func(t *testing.T, e *env) {
			for range 2 {
				e.dialAs(t, "alice").call("ping", nil)
			}
			e.dialAs(t, "alice").expectClose(StatusTooManyConnections)
			// The limit is per user, and admins are exempt.
			e.dialAs(t, "bob").call("ping", nil)
			for range 3 {
				e.dial(t, "token="+e.token(t, "root", true, time.Hour), nil).call("ping", nil)
			}
		}, StatusTooManyConnections},
		{"4029 counts auth-frame connections too", []option{func(c *Config) { c.MaxConnsPerUser = 1 }}, func(t *testing.T, e *env) {
			e.dialAs(t, "alice").call("ping", nil)
			c := e.dial(t, "", nil)
			c.send(map[string]any{"op": "auth", "id": 1, "token": e.token(t, "alice", false, time.Hour)})
			c.expectClose(StatusTooManyConnections)
		}, StatusTooManyConnections},
		{"1009 frame too large", []option{func(c *Config) { c.MaxFrameBytes = 1024 }}, func(t *testing.T, e *env) {
			c := e.dialAs(t, "alice")
			c.sendRaw([]byte(`{"op":"ping","id":1,"pad":"` + strings.Repeat("x", 4096) + `"}`))
			c.expectClose(websocket.StatusMessageTooBig)
		}, websocket.StatusMessageTooBig},
		{"1001 shutdown", nil, func(t *testing.T, e *env) {
			c := e.dialAs(t, "alice")
			c.subscribe("user:alice")
			errc := make(chan error, 1)
			go func() { errc <- e.gw.Shutdown(context.Background()) }()
			c.expectClose(websocket.StatusGoingAway)
			if err := <-errc; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			// Refused from now on, with a JSON 503.
			if _, err := e.tryDial(t, "token="+e.token(t, "alice", false, time.Hour), nil); err == nil ||
				!strings.Contains(err.Error(), "503") {
				t.Fatalf("dial after Shutdown: %v, want HTTP 503", err)
			}
		}, websocket.StatusGoingAway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, setup(t, tt.opts...))
		})
	}
}

func TestWSFreshAuthFrameKeepsConnectionOpen(t *testing.T) {
	t.Parallel()
	e := setup(t)
	short := e.token(t, "alice", false, 1500*time.Millisecond)
	p, err := e.auth.Verify(short)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, "token="+short, nil)
	if r := c.call("auth", map[string]any{"token": e.token(t, "alice", false, time.Hour)}); r.Error != nil {
		t.Fatalf("refresh: %v", r.Error)
	}
	testsvc.Eventually(t, 15*time.Second, "the first token to expire", func() bool { return time.Now().After(p.Expires.Add(300 * time.Millisecond)) })
	if r := c.call("ping", nil); r.Error != nil {
		t.Fatalf("ping after the first token expired: %v", r.Error)
	}
}

// failingJobs makes the job store fail for one job id and one project.
type failingJobs struct {
	Jobs
	job, project string
}

func (f failingJobs) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	if id == f.job {
		return progress.Snapshot{}, errAny
	}
	return f.Jobs.Get(ctx, id)
}

func (f failingJobs) Recent(ctx context.Context, flt progress.Filter, limit int) ([]progress.Snapshot, error) {
	if flt.Project == f.project {
		return nil, errAny
	}
	return f.Jobs.Recent(ctx, flt, limit)
}

func TestWSErrorCodes(t *testing.T) {
	t.Parallel()
	e := setup(t,
		func(c *Config) { c.MaxSubscriptions = 2 },
		func(c *Config) { c.Jobs = failingJobs{Jobs: c.Jobs, job: "broken-job", project: "broken"} })
	bobsJob := e.createJob(t, "bob", "p")
	alicesJob := e.createJob(t, "alice", "p")
	c := e.dialAs(t, "alice")

	ch := func(s string) map[string]any { return map[string]any{"channel": s} }
	// bad_request: malformed frames keep the connection.
	for _, raw := range []string{`not json`, `{"op":"dance","id":1}`, `{"id":2}`, `{"op":"ping","id":"x"}`} {
		c.sendRaw([]byte(raw))
		if r := c.awaitReplyAny(); r.Error == nil || r.Error.Code != CodeBadRequest {
			t.Fatalf("%s: reply %+v, want bad_request", raw, r)
		}
	}
	if err := c.ws.Write(context.Background(), websocket.MessageBinary, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if r := c.awaitReplyAny(); r.Error == nil || r.Error.Code != CodeBadRequest {
		t.Fatalf("binary frame: reply %+v, want bad_request", r)
	}
	for _, bad := range []string{"", "job:", "nope:x", "project", "project:has space"} {
		c.expectError(CodeBadRequest, "subscribe", ch(bad))
	}
	c.expectError(CodeBadRequest, "unsubscribe", ch("x"))
	// forbidden and not_found.
	c.expectError(CodeForbidden, "subscribe", ch("job:"+bobsJob.JobID))
	c.expectError(CodeForbidden, "subscribe", ch("user:bob"))
	c.expectError(CodeForbidden, "auth", map[string]any{"token": e.token(t, "bob", false, time.Hour)})
	c.expectError(CodeNotFound, "subscribe", ch("job:no-such-job"))
	// unauthorized: a bad refresh token keeps the connection and its user.
	c.expectError(CodeUnauthorized, "auth", map[string]any{"token": "garbage"})
	// internal: the job store fails.
	c.expectError(CodeInternal, "subscribe", ch("job:broken-job"))
	c.expectError(CodeInternal, "subscribe", ch("project:broken"))
	if c.call("ping", nil).Error != nil {
		t.Fatal("ping failed")
	}
	// limit_exceeded; subscribing again to a held channel is not a new one.
	c.subscribe("project:p")
	c.subscribe("job:" + alicesJob.JobID)
	c.subscribe("project:p")
	c.expectError(CodeLimitExceeded, "subscribe", ch("project:other"))
	if r := c.call("unsubscribe", ch("project:p")); r.Error != nil {
		t.Fatal(r.Error)
	}
	c.subscribe("project:other")

	// unauthorized: anything but auth and ping before authenticating.
	anon := e.dial(t, "", nil)
	anon.expectError(CodeUnauthorized, "subscribe", ch("project:p"))
	if r := anon.call("ping", nil); r.Error != nil {
		t.Fatalf("ping before auth: %v", r.Error)
	}
	if r := anon.call("auth", map[string]any{"token": e.token(t, "alice", false, time.Hour)}); r.Error != nil {
		t.Fatalf("auth frame: %v", r.Error)
	}
	anon.subscribe("project:p")
}

// awaitReplyAny returns the next reply, whatever its id.
func (c *client) awaitReplyAny() frame {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if f.Type == "reply" {
			return f
		}
		c.early = append(c.early, f)
	}
}

func TestWSOrigins(t *testing.T) {
	t.Parallel()
	e := setup(t, allowOrigins("https://app.example.com", "*.trusted.test"))
	tok := "token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour))
	host := strings.TrimPrefix(e.srv.URL, "http://")
	_, port, _ := net.SplitHostPort(host)
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"", true},                                // not a browser
		{"http://" + host, true},                  // the server's own origin
		{"http://localhost:" + port, true},        // the same, by name
		{"http://rebound.example:" + port, false}, // DNS rebinding: Host is this name too
		{"https://app.example.com", true},         // listed
		{"https://a.trusted.test", true},          // pattern
		{"http://app.example.com", false},         // scheme differs
		{"https://evil.example", false},           // cross-site
		{"null", false},                           // opaque origin
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		if u, err := url.Parse(tt.origin); err == nil && u.Host != "" {
			h.Set("Host", u.Host) // as a browser sends it
		}
		c, err := e.tryDial(t, tok, h)
		if tt.ok != (err == nil) {
			t.Errorf("origin %q: err %v, want allowed %v", tt.origin, err, tt.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "403") {
			t.Errorf("origin %q: %v, want HTTP 403", tt.origin, err)
		}
		if c != nil {
			c.ws.Close(websocket.StatusNormalClosure, "")
		}
	}
	if got := value(e.gw.m.refused.WithLabelValues(refusedOrigin)); got != 4 {
		t.Errorf("refused{origin} = %v, want 4", got)
	}

	// By default only the server's own origin may connect.
	d := setup(t)
	if _, err := d.tryDial(t, tok, http.Header{"Origin": {"https://app.example.com"}}); err == nil {
		t.Error("default config accepted a foreign origin")
	}
}

func TestWSSingleUserMode(t *testing.T) {
	t.Parallel()
	e := setup(t, singleUser, func(c *Config) { c.MaxConnsPerUser = 1 })
	job := e.createJob(t, auth.LocalUser, "p")
	for range 3 { // no per-user limit in single-user mode
		c := e.dial(t, "", nil)
		c.subscribe("job:" + job.JobID)
		if f := c.next(); f.Job.JobID != job.JobID {
			t.Fatalf("got %+v", f)
		}
	}
}

func TestWSDuplicateClientIDIsCountedNotRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tok := url.QueryEscape(e.token(t, "alice", false, time.Hour))
	a := e.dial(t, "token="+tok+"&client_id=tab-1", nil)
	a.call("ping", nil)
	b := e.dial(t, "token="+tok+"&client_id=tab-1", nil)
	b.call("ping", nil)
	other := e.dial(t, "", nil) // client id in the auth frame
	other.call("auth", map[string]any{"token": e.token(t, "alice", false, time.Hour), "client_id": "tab-1"})
	e.dial(t, "token="+tok+"&client_id=tab-2", nil).call("ping", nil)
	if got := value(e.gw.m.duplicates); got != 2 {
		t.Fatalf("duplicates = %v, want 2", got)
	}
}

func TestWSDeadPeerIsDropped(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 2 * time.Second // generous: -race on a loaded machine
	})
	e.dialAs(t, "alice") // never reads, so never answers a ping
	gauge := e.gw.m.connections.WithLabelValues(transportWS)
	testsvc.Eventually(t, 15*time.Second, "the connection to open", func() bool { return value(gauge) == 1 })
	testsvc.Eventually(t, 15*time.Second, "the dead peer to be dropped", func() bool { return value(gauge) == 0 })

	// A peer that reads answers pings and stays.
	var pings atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, e.wsURL("token="+url.QueryEscape(e.token(t, "alice", false, time.Hour))),
		&websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	readCtx := ws.CloseRead(context.Background()) // reads, so answers pings
	testsvc.Eventually(t, 15*time.Second, "five pings answered", func() bool {
		if readCtx.Err() != nil {
			t.Fatalf("the server dropped a peer that answers pings, after %d pings", pings.Load())
		}
		return pings.Load() >= 5
	})
	if readCtx.Err() != nil || value(gauge) != 1 {
		t.Fatalf("a peer answering pings was dropped (gauge %v)", value(gauge))
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

// TestShutdownOutOfTimeDropsConnections: a client that never answers the
// close handshake does not hold Shutdown past its context.
func TestShutdownOutOfTimeDropsConnections(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.dialAs(t, "alice")
	c.subscribe("user:alice") // then never reads again
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := e.gw.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v after its context ended", d)
	}
	if g := value(e.gw.m.connections.WithLabelValues(transportWS)); g != 0 {
		t.Fatalf("connections gauge %v after Shutdown", g)
	}
}

// TestWSLargeProjectDoesNotOverflowNewSubscriber: a project with more
// active jobs than the queue holds sends the newest and keeps the client.
func TestWSLargeProjectDoesNotOverflowNewSubscriber(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxQueuedFrames = 4 })
	var newest string
	for range 6 {
		newest = e.createJob(t, "alice", "big").JobID
	}
	c := e.dialAs(t, "alice")
	c.subscribe("project:big")
	if f := c.next(); f.Job.JobID != newest {
		t.Fatalf("first snapshot %s, want the newest job %s", f.Job.JobID, newest)
	}
	c.next()
	if r := c.call("ping", nil); r.Error != nil || len(c.early) != 0 {
		t.Fatalf("ping: %+v, early updates %d; want exactly 2 snapshots", r, len(c.early))
	}
}
