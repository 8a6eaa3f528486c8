//go:build linux

package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/progressd/progressd/internal/progress"
)

// slowClientRcvBuf is the receive buffer of the slow test clients: a
// small one, so that what they have not read piles up on the server's
// side of the connection, where the server can bound it.
const slowClientRcvBuf = 4096

// slowNetDialer dials with a small receive buffer, set before connecting
// so that the window the client advertises is small too.
func slowNetDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowClientRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// slowDial connects a raw WebSocket client with a small receive buffer
// (set before connecting, so the window it advertises is small too) and
// subscribes it to ch. It returns once the subscribe reply came.
func (e *env) slowDial(t *testing.T, sub, ch string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := slowNetDialer()
	u := e.wsURL("token=" + url.QueryEscape(e.token(t, sub, false, time.Hour)))
	conn, br, _, err := ws.Dialer{NetDial: d.DialContext}.Dial(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	c.write(maskedFrame(ws.OpText, true, fmt.Appendf(nil, `{"op":"subscribe","id":1,"channel":%q}`, ch)))
	for {
		_, p := c.mustRead()
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			t.Fatal(err)
		}
		if f.Type == "reply" {
			if f.Error != nil {
				t.Fatalf("subscribe %s: %v", ch, f.Error)
			}
			return c
		}
	}
}

// readSlowly makes c read at most chunk bytes per tick from now on: a
// client that reads a few KB per 100 ms, sped up.
func (c *rawClient) readSlowly(chunk int, tick time.Duration) (stop func()) {
	tk := time.NewTicker(tick)
	c.r = bufio.NewReaderSize(&pacedReader{r: c.r, chunk: chunk, tick: tk.C}, chunk)
	return tk.Stop
}

// pacedReader reads at most chunk bytes per tick.
type pacedReader struct {
	r     io.Reader
	chunk int
	tick  <-chan time.Time
}

func (p *pacedReader) Read(b []byte) (int, error) {
	<-p.tick // pacing a slow client, not waiting for a condition
	return p.r.Read(b[:min(len(b), p.chunk)])
}

// TestWSSlowReaderGetsTheNewestNotStaleOnes: a client with a small
// receive buffer stops reading while its job reports 2,000 times, about
// one report a millisecond, then reads slowly. What the server wrote
// ahead of the newest snapshot is bounded (SPEC.md part two, "Slow
// readers"), so the client gets the terminal snapshot after a few stale
// ones, not after every report the socket buffers could hold (issue 10
// item 9: 400 stale snapshots over 16.9 s). Counts, not times, are
// asserted: a slower machine reports more slowly, which only makes the
// server write more of the reports before the buffers fill.
func TestWSSlowReaderGetsTheNewestNotStaleOnes(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.WriteTimeout = time.Minute })
	job := e.createJob(t, "alice", "slow")
	c := e.slowDial(t, "alice", "job:"+job.JobID)
	done := reportSteadily(t, e, job.JobID)
	defer c.readSlowly(4096, 25*time.Millisecond)()

	before := 0 // snapshots read before the terminal one
	deadline := time.Now().Add(60 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no terminal snapshot after %d stale ones in 60 s", before)
		}
		_, p := c.mustRead()
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			t.Fatal(err)
		}
		if f.Job.Seq == done.Seq {
			break
		}
		before++
	}
	t.Logf("%d snapshots before the terminal one, of %d reports", before, steadyReports)
	if before > maxStale {
		t.Fatalf("%d snapshots came before the terminal one; want at most %d: the server must not write seconds of stale snapshots ahead of the newest", before, maxStale)
	}
}

// steadyReports is how many progress reports reportSteadily sends.
const steadyReports = 2000

// reportSteadily reports on job steadyReports times, about once a
// millisecond, then finishes it, and returns the terminal snapshot.
func reportSteadily(t *testing.T, e *env, job string) progress.Snapshot {
	pace := time.NewTicker(time.Millisecond)
	defer pace.Stop()
	for k := 1; k <= steadyReports; k++ {
		<-pace.C // a job reporting at a steady rate, not a wait for a condition
		e.report(t, job, float64(k)/(steadyReports+1), "")
	}
	return e.report(t, job, 0, progress.Succeeded)
}

// TestSSESlowReaderGetsTheNewestNotStaleOnes: the same over Server-Sent
// Events (GET /api/v1/jobs/{id}/events): the stream's socket has the
// small send buffer too.
func TestSSESlowReaderGetsTheNewestNotStaleOnes(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.WriteTimeout = time.Minute })
	job := e.createJob(t, "alice", "slow")
	conn, err := slowNetDialer().Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := http.NewRequest("GET", e.srv.URL+"/api/v1/jobs/"+job.JobID+"/events?token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	pr := &pacedReader{r: conn, chunk: 1 << 20, tick: closedTick}
	resp, err := http.ReadResponse(bufio.NewReaderSize(pr, 4096), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("events: %d %v, want 200 with Connection: close", resp.StatusCode, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data:") { // the current snapshot
	}
	done := reportSteadily(t, e, job.JobID)
	tk := time.NewTicker(25 * time.Millisecond)
	defer tk.Stop()
	pr.chunk, pr.tick = 4096, tk.C // read slowly from now on

	before, last := 0, fmt.Sprintf("id: %d", done.Seq)
	for sc.Scan() && sc.Text() != last {
		if strings.HasPrefix(sc.Text(), "id: ") {
			before++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d snapshots before the terminal one, of %d reports", before, steadyReports)
	if before > maxStale {
		t.Fatalf("%d snapshots came before the terminal one; want at most %d", before, maxStale)
	}
}

// closedTick never holds a pacedReader back.
var closedTick = func() <-chan time.Time {
	ch := make(chan time.Time)
	close(ch)
	return ch
}()

// maxStale bounds the stale snapshots a slow client may have in flight:
// the server's send buffer (SendBuffer) and the client's 4 KiB receive
// buffer hold about 40 small snapshots; the kernel's default held 1,915.
const maxStale = 150

// TestWSClientReadingNothingGets4008: a client that reads nothing for
// WriteTimeout while updates are due is closed with 4008, and the close
// frame reaches it — after everything written before it — once it reads
// again; the connection is not dropped bare.
func TestWSClientReadingNothingGets4008(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.WriteTimeout = 500 * time.Millisecond })
	job := bigJob(t, e, "alice", "stuck") // 14 KB snapshots fill the socket buffers soon
	c := e.slowDial(t, "alice", "job:"+job.JobID)
	timedOut := e.gw.m.slowCloses.WithLabelValues(transportWS, "write_timeout")
	deadline := time.Now().Add(30 * time.Second)
	for k := 1; value(timedOut) == 0; k++ {
		if k > 100_000 || time.Now().After(deadline) {
			t.Fatalf("the write to a client reading nothing did not time out after %d reports", k)
		}
		e.report(t, job.JobID, float64(k)/1e6, "")
	}
	c.expectClose(closeCode(StatusTooSlow))
}

// TestRestOfFrame: after a write that stopped at byte n of a batch, the
// rest of the frame n falls in is what must precede the close frame.
func TestRestOfFrame(t *testing.T) {
	t.Parallel()
	var b []byte
	var ends []int
	for _, size := range []int{10, 200, 70_000, 0} { // 7-bit, 16-bit and 64-bit lengths, empty
		b = appendFrame(b, ws.OpText, make([]byte, size))
		ends = append(ends, len(b))
	}
	for _, tc := range []struct{ n, want int }{
		{0, 0}, {1, ends[0] - 1}, {ends[0], 0}, {ends[0] + 3, ends[1] - ends[0] - 3},
		{ends[1] + 1, ends[2] - ends[1] - 1}, {ends[2] - 1, 1}, {ends[2], 0}, {ends[2] + 1, 1}, {ends[3], 0},
	} {
		if got := restOfFrame(b, tc.n); len(got) != tc.want {
			t.Errorf("restOfFrame(n=%d) has %d bytes, want %d", tc.n, len(got), tc.want)
		}
	}
}

// TestWSSpacedSlowReaderGetsWholeFrames: with the write spacing on, the
// flush clock writes a parked connection's batch itself without waiting
// for room (flushParked); a client that stops reading fills its socket,
// so those writes take part of a batch or none of it, and the writer
// goroutine sends the rest first. The client, reading slowly afterwards,
// must get whole frames, each job's seqs in order, and the terminal
// snapshot of every job.
func TestWSSpacedSlowReaderGetsWholeFrames(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) {
		c.MinWriteInterval, c.WriteTimeout, c.SendBuffer = 2*time.Millisecond, time.Minute, 8192
	})
	// Messages of 1,000 bytes make a few snapshots fill the socket's buffers.
	long := strings.Repeat("x", 990)
	const jobs, reports = 4, 300
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = e.createJob(t, "alice", "slow").JobID
	}
	c := e.slowDial(t, "alice", "project:slow")
	final := make(map[string]uint64, jobs)
	pace := time.NewTicker(time.Millisecond)
	for k := 1; k <= reports; k++ {
		<-pace.C // a job reporting at a steady rate, not a wait for a condition
		p, msg := float64(k)/(reports+1), long+fmt.Sprint(k)
		for _, id := range ids {
			if _, err := e.svc.Report(context.Background(), id, progress.Report{Progress: &p, Message: &msg}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pace.Stop()
	for _, id := range ids {
		final[id] = e.report(t, id, 0, progress.Succeeded).Seq
	}
	defer c.readSlowly(4096, 5*time.Millisecond)()
	last := make(map[string]uint64, jobs)
	deadline := time.Now().Add(60 * time.Second)
	for done := 0; done < jobs; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs ended on their terminal snapshot in 60 s", done, jobs)
		}
		h, p := c.mustRead()
		if h.OpCode != ws.OpText {
			t.Fatalf("frame of op %v, want text", h.OpCode)
		}
		var f frame
		if err := json.Unmarshal(p, &f); err != nil {
			t.Fatalf("a frame that is not whole JSON (%d bytes): %v", len(p), err)
		}
		id := f.Job.JobID
		if f.Job.Seq <= last[id] {
			t.Fatalf("job %s: seq %d after %d", id, f.Job.Seq, last[id])
		}
		last[id] = f.Job.Seq
		if f.Job.Seq == final[id] {
			done++
		}
	}
}
