package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// TestWSSubscribeNoGapUnderConcurrency subscribes clients to job:,
// project: and user: channels while every job is being reported on, then
// finishes the jobs. Each client must see, per (channel, job), seqs that
// only go up, a first snapshot no older than the job was before it
// subscribed, and the terminal snapshot of every job its channel covers.
func TestWSSubscribeNoGapUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const (
		nJobs    = 8
		nClients = 24
	)
	ids := make([]string, nJobs)
	for i := range ids {
		ids[i] = e.createJob(t, "alice", "nogap").JobID
	}
	var subscribed atomic.Int32
	var reporters sync.WaitGroup
	errs := make(chan error, nJobs)
	for _, id := range ids {
		reporters.Go(func() {
			ctx := context.Background()
			// Report until every client has subscribed, and a little more.
			for k, extra := 1, 0; extra < 20; k++ {
				if subscribed.Load() == nClients {
					extra++
				}
				p := min(0.99, float64(k)/100_000)
				if _, err := e.svc.Report(ctx, id, progress.Report{Progress: &p}); err != nil {
					errs <- err
					return
				}
			}
			st := progress.Succeeded
			if _, err := e.svc.Report(ctx, id, progress.Report{State: &st}); err != nil {
				errs <- err
			}
		})
	}
	u := e.wsURL("token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour)))
	var clients sync.WaitGroup
	clientErrs := make(chan error, nClients)
	for i := range nClients {
		ch, covers := "project:nogap", ids
		switch i % 3 {
		case 1:
			ch = "user:alice"
		case 2:
			ch, covers = "job:"+ids[i%nJobs], ids[i%nJobs:i%nJobs+1]
		}
		clients.Go(func() {
			if err := checkNoGap(e, u, ch, covers, func() { subscribed.Add(1) }); err != nil {
				clientErrs <- fmt.Errorf("client %d on %s: %w", i, ch, err)
				subscribed.Add(1) // do not keep the reporters waiting
			}
		})
	}
	clients.Wait()
	close(clientErrs)
	for err := range clientErrs {
		t.Error(err)
	}
	reporters.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkNoGap is one client of TestWSSubscribeNoGapUnderConcurrency.
func checkNoGap(e *env, u, ch string, covers []string, subscribed func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	before := map[string]uint64{}
	for _, id := range covers {
		s, err := e.svc.Get(ctx, id)
		if err != nil {
			return err
		}
		before[id] = s.Seq
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"channel":"`+ch+`"}`)); err != nil {
		return err
	}
	replied := false
	last := map[string]uint64{}
	for done := 0; done < len(covers); {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		if f.Type == "reply" {
			if f.Error != nil {
				return f.Error
			}
			replied = true
			subscribed()
			continue
		}
		id, seq := f.Job.JobID, f.Job.Seq
		switch {
		case !replied:
			return fmt.Errorf("update of %s before the subscribe reply", id)
		case f.Channel != ch:
			return fmt.Errorf("update on %s", f.Channel)
		case last[id] == 0 && seq < before[id]:
			return fmt.Errorf("job %s: first snapshot seq %d is older than seq %d before subscribing", id, seq, before[id])
		case seq <= last[id]:
			return fmt.Errorf("job %s: seq %d after %d", id, seq, last[id])
		}
		last[id] = seq
		if f.Job.State.Terminal() {
			done++
		}
	}
	return ws.Close(websocket.StatusNormalClosure, "")
}

// watchJob connects as a goroutine-safe client (no t.Fatal), subscribes to
// ch and signals ready; then it reads until the terminal snapshot of job.
func watchJob(ctx context.Context, wsURL, ch, job string, ready func()) error {
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"channel":"`+ch+`"}`)); err != nil {
		return err
	}
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		switch {
		case f.Type == "reply" && f.Error != nil:
			return f.Error
		case f.Type == "reply":
			ready()
		case f.Job.JobID == job && f.Job.State.Terminal():
			return ws.Close(websocket.StatusNormalClosure, "")
		}
	}
}

// TestWS1000ClientsOnOneJob: every one of 1,000 clients on one job gets
// its terminal snapshot. (2,000 sockets in all, under the 20,000 limit.)
func TestWS1000ClientsOnOneJob(t *testing.T) {
	t.Parallel()
	const n = 1000
	e := setup(t)
	job := e.createJob(t, "alice", "crowd")
	u := e.wsURL("token=" + url.QueryEscape(e.token(t, "alice", true, time.Hour)))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var (
		wg    sync.WaitGroup
		fails atomic.Int32
		first atomic.Value
	)
	const wave = 100 // dial in waves, not 1,000 at once into the listen backlog
	for w := 0; w < n; w += wave {
		var ready sync.WaitGroup
		ready.Add(wave)
		for i := w; i < w+wave; i++ {
			wg.Go(func() {
				once := sync.OnceFunc(ready.Done)
				defer once() // a client that failed early must not block the test
				if err := watchJob(ctx, u, "job:"+job.JobID, job.JobID, once); err != nil {
					fails.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("client %d: %v", i, err))
				}
			})
		}
		ready.Wait()
	}
	for k := 1; k <= 10; k++ {
		e.report(t, job.JobID, float64(k)/100, "")
	}
	e.report(t, job.JobID, 0, progress.Succeeded)
	wg.Wait()
	if fails.Load() > 0 {
		t.Fatalf("%d of %d clients did not get the terminal snapshot; first: %v", fails.Load(), n, first.Load())
	}
}

// TestWSConnectSubscribeDisconnectCycles: 1,000 cycles leave the
// goroutine count where it started. Not parallel: it counts goroutines.
func TestWSConnectSubscribeDisconnectCycles(t *testing.T) {
	e := setup(t)
	job := e.createJob(t, "alice", "cycles")
	u := e.wsURL("token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour)))
	cycle := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, u, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		defer ws.CloseNow()
		ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"channel":"job:`+job.JobID+`"}`))
		for range 2 { // the reply, then the snapshot
			if _, _, err := ws.Read(ctx); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
		}
		if i%2 == 0 {
			ws.Close(websocket.StatusNormalClosure, "") // polite
		} // else: dropped without a close handshake
	}
	cycle(-1) // warm up pools
	gauge := e.gw.m.connections.WithLabelValues(transportWS)
	testsvc.Eventually(t, 15*time.Second, "the warm-up connection to end", func() bool { return value(gauge) == 0 })
	base := runtime.NumGoroutine()
	for i := range 1000 {
		cycle(i)
	}
	testsvc.Eventually(t, 15*time.Second, "every connection to end", func() bool { return value(gauge) == 0 })
	testsvc.Eventually(t, 15*time.Second, fmt.Sprintf("goroutines back to %d", base), func() bool { return runtime.NumGoroutine() <= base })
	if s := value(e.gw.m.subscriptions); s != 0 {
		t.Fatalf("subscriptions gauge %v after every connection ended", s)
	}
}

// bigJob creates a job whose snapshots are about 14 KB: 64 stages with
// long names. Large frames fill socket buffers quickly.
func bigJob(t *testing.T, e *env, owner, project string) progress.Snapshot {
	t.Helper()
	specs := make([]progress.StageSpec, progress.MaxStages)
	for i := range specs {
		specs[i].Name = fmt.Sprintf("%03d-%s", i, strings.Repeat("s", progress.MaxNameBytes-4))
	}
	s, err := e.svc.Create(context.Background(), owner, jobsRequest(project, specs))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jobsRequest(project string, stages []progress.StageSpec) jobs.CreateRequest {
	return jobs.CreateRequest{Project: project, Stages: stages}
}

// TestWSSlowReaderStillGetsTerminal: a client that stops reading while
// thousands of updates flow gets them coalesced — the server keeps at
// most one unsent frame for the job — and ends with the terminal snapshot.
func TestWSSlowReaderStillGetsTerminal(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.WriteTimeout = time.Minute })
	job := bigJob(t, e, "alice", "slow")
	c := e.dialAs(t, "alice")
	c.subscribe("job:" + job.JobID)
	conn := e.serverConn(t)

	maxFrames := 0
	const n = 3000
	for k := 1; k <= n; k++ {
		e.report(t, job.JobID, float64(k)/(n+1), "") // the client reads nothing meanwhile
		conn.sub.mu.Lock()
		maxFrames = max(maxFrames, conn.sub.q.frames)
		conn.sub.mu.Unlock()
	}
	done := e.report(t, job.JobID, 0, progress.Succeeded)
	if maxFrames > 1 {
		t.Errorf("the server queued %d frames for one job; want at most 1 (coalesced)", maxFrames)
	}
	if value(e.gw.m.coalesced) == 0 {
		t.Error("no update was coalesced: the client was never behind")
	}
	if f := c.untilTerminal(job.JobID); f.Job.Seq != done.Seq {
		t.Fatalf("terminal seq %d, want %d", f.Job.Seq, done.Seq)
	}
}

// serverConn returns the server side of the only open connection.
func (e *env) serverConn(t *testing.T) *wsConn {
	t.Helper()
	e.gw.mu.Lock()
	defer e.gw.mu.Unlock()
	if len(e.gw.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(e.gw.conns))
	}
	for c := range e.gw.conns {
		return c
	}
	return nil
}

// TestWSTooSlowClientIsClosed4008: a client that stops reading while more
// distinct jobs change than its queue may hold is closed with 4008.
func TestWSTooSlowClientIsClosed4008(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxQueuedFrames = 8 })
	e.createJob(t, "alice", "flood")
	c := e.dialAs(t, "alice")
	c.subscribe("project:flood")
	c.next() // the existing job
	slow := e.gw.m.slowCloses.WithLabelValues(transportWS, "queue_full")
	pad := strings.Repeat("x", 32<<10)
	for i := 0; value(slow) == 0; i++ {
		if i == 10_000 {
			t.Fatal("10,000 distinct jobs did not overflow a queue of 8")
		}
		// Published straight to the broker: distinct jobs, 32 KB each.
		s := progress.Snapshot{JobID: fmt.Sprintf("flood-%05d", i), Project: "flood", Owner: "alice", Seq: 1, State: progress.Running}
		data := []byte(fmt.Sprintf(`{"job_id":%q,"project":"flood","owner":"alice","state":"running","seq":1,"message":%q}`, s.JobID, pad))
		if err := e.broker.Publish(context.Background(), broker.Update{Snapshot: s, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	c.expectClose(StatusTooSlow) // reading again lets the close frame through
}

// TestIdleConnectionHoldsOneGoroutine checks the memory model of doc.go:
// an idle, subscribed connection costs the server one goroutine.
func TestIdleConnectionHoldsOneGoroutine(t *testing.T) {
	e := setup(t)
	job := e.createJob(t, "alice", "idle")
	gauge := e.gw.m.connections.WithLabelValues(transportWS)
	const n = 200
	base := runtime.NumGoroutine()
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = e.dialAs(t, "alice")
		clients[i].subscribe("job:" + job.JobID)
		clients[i].next()
	}
	testsvc.Eventually(t, 15*time.Second, "the connections to open", func() bool { return value(gauge) == n })
	// Writers return once their queue is drained; poll until they have.
	testsvc.Eventually(t, 15*time.Second, "writers to go idle", func() bool { return runtime.NumGoroutine()-base <= n })
	if per := float64(runtime.NumGoroutine()-base) / n; per > 1 {
		t.Fatalf("%.2f goroutines per idle connection, want 1", per)
	}
}
