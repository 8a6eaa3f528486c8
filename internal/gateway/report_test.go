package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

// TestWSReport: a report frame is applied as an HTTP report would be and
// answered with the seq it produced; subscribers see the change. Each bad
// report gets its error reply, changes nothing, and the connection stays.
func TestWSReport(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	c := e.dialAs(t, "alice")
	c.subscribe("job:" + job.JobID)
	if f := c.next(); f.Job.Seq != job.Seq {
		t.Fatalf("first update %+v, want the snapshot at seq %d", f.Job, job.Seq)
	}

	r := c.call("report", map[string]any{"job_id": job.JobID, "progress": 0.5, "message": "half"})
	if r.Error != nil || r.Seq != job.Seq+1 {
		t.Fatalf("report reply %+v, want seq %d", r, job.Seq+1)
	}
	if f := c.next(); f.Job.Seq != r.Seq || f.Job.Progress != 0.5 || f.Job.Message != "half" {
		t.Fatalf("update after the report: %+v", f.Job)
	}

	for _, tc := range []struct {
		name  string
		extra map[string]any
		code  string
	}{
		{"no job id", map[string]any{"progress": 0.6}, CodeBadRequest},
		{"unknown job", map[string]any{"job_id": "no-such-job", "progress": 0.6}, CodeNotFound},
		{"above one", map[string]any{"job_id": job.JobID, "progress": 1.5}, CodeBadRequest},
		{"unknown stage", map[string]any{"job_id": job.JobID, "stage": "zzz"}, CodeBadRequest},
		{"wrong type", map[string]any{"job_id": job.JobID, "progress": "half"}, CodeBadRequest},
		{"unknown field", map[string]any{"job_id": job.JobID, "progres": 0.6}, CodeBadRequest},
		{"long message", map[string]any{"job_id": job.JobID, "message": strings.Repeat("m", 2000)}, CodeBadRequest},
	} {
		if r := c.call("report", tc.extra); r.Error == nil || r.Error.Code != tc.code || r.Seq != 0 {
			t.Errorf("%s: reply %+v, want error %s", tc.name, r, tc.code)
		}
	}
	// NaN is not JSON: the frame is malformed, and the reply still comes.
	c.sendRaw([]byte(`{"op":"report","id":99,"job_id":"` + job.JobID + `","progress":NaN}`))
	if f := c.awaitReply("null"); f.Error == nil || f.Error.Code != CodeBadRequest {
		t.Fatalf("NaN: %+v, want bad_request", f)
	}

	r = c.call("report", map[string]any{"job_id": job.JobID, "state": "succeeded"})
	if r.Error != nil || r.Seq != job.Seq+2 {
		t.Fatalf("terminal report reply %+v, want seq %d: the refused reports changed the job", r, job.Seq+2)
	}
	if f := c.untilTerminal(job.JobID); f.Job.State != progress.Succeeded {
		t.Fatalf("terminal update %+v", f.Job)
	}
	c.expectError(CodeConflict, "report", map[string]any{"job_id": job.JobID, "progress": 0.9})
	if s, err := e.svc.Get(context.Background(), job.JobID); err != nil || s.Seq != job.Seq+2 {
		t.Fatalf("after the refused reports: seq %d (%v), want %d", s.Seq, err, job.Seq+2)
	}
}

// TestWSReportAuth: reports need a principal; a token scoped to one job
// may report on it only (forbidden for another), a read-only one on
// nothing; another user's job is
// not_found, as over HTTP.
func TestWSReportAuth(t *testing.T) {
	t.Parallel()
	e := setup(t)
	mine := e.createJob(t, "alice", "p")
	other := e.createJob(t, "alice", "p")
	bobs := e.createJob(t, "bob", "p")

	anon := e.dial(t, "", nil)
	anon.expectError(CodeUnauthorized, "report", map[string]any{"job_id": mine.JobID, "progress": 0.1})

	stage := e.dial(t, "token="+url.QueryEscape(scopedToken(t, mine.JobID)), nil)
	if r := stage.call("report", map[string]any{"job_id": mine.JobID, "progress": 0.2}); r.Error != nil || r.Seq == 0 {
		t.Fatalf("report on its own job: %+v", r)
	}
	stage.expectError(CodeForbidden, "report", map[string]any{"job_id": other.JobID, "progress": 0.2})

	ro, err := auth.MintWith(testSecret, "alice", auth.Options{Scope: []string{"job:" + mine.JobID}, ReadOnly: true}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reader := e.dial(t, "token="+url.QueryEscape(ro), nil)
	reader.expectError(CodeForbidden, "report", map[string]any{"job_id": mine.JobID, "progress": 0.9})

	alice := e.dialAs(t, "alice")
	alice.expectError(CodeNotFound, "report", map[string]any{"job_id": bobs.JobID, "progress": 0.2})

	if s, err := e.svc.Get(context.Background(), mine.JobID); err != nil || s.Progress != 0.2 {
		t.Fatalf("the read-only token's report changed its job: progress %v (%v)", s.Progress, err)
	}
	for _, j := range []progress.Snapshot{other, bobs} {
		if s, err := e.svc.Get(context.Background(), j.JobID); err != nil || s.Seq != j.Seq {
			t.Fatalf("job %s changed by a refused report: seq %d → %d (%v)", j.JobID, j.Seq, s.Seq, err)
		}
	}
}

// TestWSReportBurst: report frames that arrive together are applied
// together (one publish per job for the burst), each still answered in
// the order sent with the seq it produced or its own error, and a frame
// of another kind in the middle is answered after the reports before it.
// Subscribers see seqs only rise and end on the terminal snapshot.
func TestWSReportBurst(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	var (
		mu        sync.Mutex
		published []uint64
	)
	stop := e.broker.Subscribe(func(u broker.Update) {
		if u.Snapshot.JobID == job.JobID && !u.Log {
			mu.Lock()
			published = append(published, u.Snapshot.Seq)
			mu.Unlock()
		}
	})
	defer stop()
	watcher := e.dialAs(t, "alice")
	watcher.subscribe("job:" + job.JobID)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, e.wsURL("token="+url.QueryEscape(e.token(t, "alice", false, time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if br != nil {
		t.Fatal("the server wrote before the client did")
	}
	const n = 60
	var burst bytes.Buffer
	for i := 1; i <= n; i++ {
		var f string
		switch i {
		case 20:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"progress":1.5}`, i, job.JobID) // refused
		case 30:
			f = fmt.Sprintf(`{"op":"ping","id":%d}`, i)
		case n:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"state":"succeeded"}`, i, job.JobID)
		default:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"progress":%g}`, i, job.JobID, float64(i)/100)
		}
		if err := ws.WriteFrame(&burst, ws.MaskFrame(ws.NewTextFrame([]byte(f)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(burst.Bytes()); err != nil { // one write: the frames arrive together
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	seq := job.Seq
	for i := 1; i <= n; i++ {
		r, b := readServerFrame(t, conn, i)
		if r.Type != "reply" || string(r.ID) != strconv.Itoa(i) {
			t.Fatalf("frame %d: %s, want the reply to frame %d (replies come in the order sent)", i, b, i)
		}
		switch i {
		case 20:
			if r.Error == nil || r.Error.Code != CodeBadRequest || r.Seq != 0 {
				t.Fatalf("the bad report: %s, want bad_request", b)
			}
		case 30:
			if r.Error != nil {
				t.Fatalf("ping: %s", b)
			}
		default:
			if r.Error != nil || r.Seq != seq+1 {
				t.Fatalf("report %d: %s, want seq %d", i, b, seq+1)
			}
			seq = r.Seq
		}
	}
	if f := watcher.untilTerminal(job.JobID); f.Job.Seq != seq || f.Job.State != progress.Succeeded {
		t.Fatalf("the watcher ended on %+v, want succeeded at seq %d", f.Job, seq)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.IsSorted(published) || published[len(published)-1] != seq {
		t.Fatalf("published seqs %v: want rising, ending at %d", published, seq)
	}
	// Without bursts every report is published: n-2 of them.
	if len(published) > n/2 {
		t.Fatalf("%d publishes for %d reports that arrived together: the burst was applied report by report", len(published), n-2)
	}
}

// TestWSReportBigBurst: more report frames arrive at once than a burst
// applies (maxReportBurst) and than the read buffer holds, with refused
// reports among them; the reader takes in whatever the socket already
// holds (prefixReader.more), so its bursts are as large as they may be.
// Every frame still gets its own reply, in the order sent: the refused
// ones their error, the others the next seq of their job.
func TestWSReportBigBurst(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	done := e.createJob(t, "alice", "p")
	succeeded := progress.Succeeded
	if _, err := e.svc.Report(context.Background(), done.JobID, progress.Report{State: &succeeded}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, e.wsURL("token="+url.QueryEscape(e.token(t, "alice", false, time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 2*maxReportBurst + 500
	refused := map[int]string{ // frame → the reply's error code
		1:                  CodeBadRequest,
		700:                CodeNotFound,
		maxReportBurst:     CodeConflict,
		maxReportBurst + 1: CodeBadRequest,
		n - 1:              CodeNotFound,
	}
	var burst bytes.Buffer
	for i := 1; i <= n; i++ {
		var f string
		switch {
		case refused[i] == CodeBadRequest:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"progress":-1}`, i, job.JobID)
		case refused[i] == CodeNotFound:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":"no-such-job","progress":0.5}`, i)
		case refused[i] == CodeConflict:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"progress":0.5}`, i, done.JobID)
		case i == n:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"state":"succeeded"}`, i, job.JobID)
		default:
			f = fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"progress":%g}`, i, job.JobID, float64(i)/(2*n))
		}
		if err := ws.WriteFrame(&burst, ws.MaskFrame(ws.NewTextFrame([]byte(f)))); err != nil {
			t.Fatal(err)
		}
	}
	if burst.Len() <= 2*readBuffer {
		t.Fatalf("the burst is %d bytes: want more than the read buffer holds", burst.Len())
	}
	written := make(chan error, 1)
	go func() { // the replies are read while the frames are written
		_, err := conn.Write(burst.Bytes())
		written <- err
	}()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	seq := job.Seq
	for i := 1; i <= n; i++ {
		r, b := readServerFrame(t, conn, i)
		if r.Type != "reply" || string(r.ID) != strconv.Itoa(i) {
			t.Fatalf("frame %d: %s, want the reply to frame %d (replies come in the order sent)", i, b, i)
		}
		if code, bad := refused[i]; bad {
			if r.Error == nil || r.Error.Code != code || r.Seq != 0 {
				t.Fatalf("frame %d: %s, want %s", i, b, code)
			}
			continue
		}
		if r.Error != nil || r.Seq != seq+1 {
			t.Fatalf("frame %d: %s, want seq %d", i, b, seq+1)
		}
		seq = r.Seq
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if s, err := e.svc.Get(context.Background(), job.JobID); err != nil || s.Seq != seq || s.State != progress.Succeeded {
		t.Fatalf("the job: %+v (%v), want succeeded at seq %d", s, err, seq)
	}
}

// TestWSReportRepliesToAFullSocket: the reader writes a burst's replies
// itself (writeHere) without waiting for room; what the socket does not
// take goes to a writer goroutine. A worker that sends many reports and
// reads its replies only later still gets every reply, in order: the
// replies are far more than the server's send buffer and the worker's
// receive buffer together, and more than one write (flushAt).
func TestWSReportRepliesToAFullSocket(t *testing.T) {
	t.Parallel()
	e := setup(t)
	job := e.createJob(t, "alice", "p")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	conn, _, _, err := d.Dial(ctx, e.wsURL("token="+url.QueryEscape(e.token(t, "alice", false, time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 800 // ~50 KB of replies; fewer than the queue's bound
	for start := 1; start <= n; start += 100 {
		var burst bytes.Buffer
		for i := start; i < start+100; i++ {
			f := fmt.Sprintf(`{"op":"report","id":%d,"job_id":%q,"progress":%g,"message":"a message that makes the reply no longer"}`, i, job.JobID, float64(i)/1000)
			if err := ws.WriteFrame(&burst, ws.MaskFrame(ws.NewTextFrame([]byte(f)))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Write(burst.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // read nothing meanwhile: the socket fills
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	seq := job.Seq
	for i := 1; i <= n; i++ {
		r, b := readServerFrame(t, conn, i)
		if r.Type != "reply" || string(r.ID) != strconv.Itoa(i) || r.Error != nil || r.Seq != seq+1 {
			t.Fatalf("frame %d: %s, want the reply to report %d with seq %d", i, b, i, seq+1)
		}
		seq = r.Seq
	}
}

// readServerFrame reads the server's next text frame from conn, the
// reply to frame i.
func readServerFrame(t *testing.T, conn net.Conn, i int) (frame, []byte) {
	t.Helper()
	b, err := wsutil.ReadServerText(conn)
	if err != nil {
		t.Fatalf("reply %d: %v", i, err)
	}
	var r frame
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, b
}
