package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Via is how the Ingest, Fanout and KeepCurrent scenarios send their
// reports, and Logs its lines.
type Via string

// The ways of reporting that Ingest compares (SPEC.md part two,
// "Reporting at high rates"). Fanout and KeepCurrent take http or ws.
const (
	// ViaHTTP is one report per request, POST /api/v1/jobs/{id}/progress.
	ViaHTTP Via = "http"
	// ViaBatch is up to BatchSize reports per POST /api/v1/reports.
	ViaBatch Via = "batch"
	// ViaWebSocket streams `report` frames over one WebSocket per
	// publisher, up to wsWindow of them awaiting their reply.
	ViaWebSocket Via = "ws"
)

// Vias lists every Via, in the order `bench --scenario ingest` runs them.
var Vias = []Via{ViaHTTP, ViaBatch, ViaWebSocket}

// MaxBatch is the most reports one POST /api/v1/reports takes.
const MaxBatch = 1000

// wsWindow is how many report frames a WebSocket publisher has sent
// without their reply: enough to keep the server's reader busy, few
// enough that a reply's wait says something.
const wsWindow = 256

// ingestItem is one report of a schedule: Ingest's, or Fanout's when it
// reports over a WebSocket.
type ingestItem struct {
	j        *job
	progress float64
	final    bool      // the `succeeded` report
	due      time.Time // zero: as soon as the server takes it
	id       int64     // a WebSocket frame's id
	sentAt   int64
}

// publishIngest sends every job Reports progress reports and then the
// final one, as fast as the server takes them, through cfg.Via. Publisher
// w owns the jobs i ≡ w (mod publishers) and sends the k-th report of all
// of them before any k+1-th, so a job's reports go in order.
func (r *run) publishIngest(pub publishing) {
	workers := min(r.cfg.Publishers, len(r.jobs))
	var wg sync.WaitGroup
	for w := range workers {
		var mine []*job
		for i := w; i < len(r.jobs); i += workers {
			mine = append(mine, r.jobs[i])
		}
		wg.Go(func() {
			next := r.ingestSchedule(mine)
			switch r.cfg.Via {
			case ViaBatch:
				r.ingestBatches(pub, next)
			case ViaWebSocket:
				r.ingestWebSocket(pub, next)
			default:
				p := r.newPublisher()
				defer p.stop()
				for it, ok := next(); ok; it, ok = next() {
					r.ingestOne(pub, p, it)
				}
			}
		})
	}
	wg.Wait()
}

// ingestSchedule returns the reports of jobs in the order they are sent.
func (r *run) ingestSchedule(jobs []*job) func() (ingestItem, bool) {
	k, i := 0, 0
	return func() (ingestItem, bool) {
		if i == len(jobs) {
			k, i = k+1, 0
		}
		if k > r.cfg.Reports || len(jobs) == 0 {
			return ingestItem{}, false
		}
		i++
		n := r.cfg.Reports
		return ingestItem{j: jobs[i-1], progress: float64(k+1) / float64(n+1), final: k == n}, true
	}
}

// ingestOne sends one report over HTTP: a progress report is skipped once
// the publishing deadline passed, a final one retried as in the other
// scenarios.
func (r *run) ingestOne(pub publishing, p *publisher, it ingestItem) {
	now := time.Now()
	switch {
	case it.final:
		p.sendFinal(pub.finals, it.j, now)
	case pub.progress.Err() != nil:
		r.skipped.Add(1)
	default:
		p.send(pub.progress, it.j, it.progress, now)
	}
}

// appendIngestReport appends it as a JSON object with its job id.
func (r *run) appendIngestReport(b []byte, it ingestItem, sentAt int64) []byte {
	b = append(b, `{"job_id":"`...)
	b = append(b, it.j.id...)
	b = append(b, `",`...)
	at := len(b)
	b = reportBody(b, it.progress, it.final, sentAt)
	copy(b[at:], b[at+1:]) // the report's fields, without its '{'
	return b[:len(b)-1]
}

// accept records the reply to it: seq, or an error.
func (r *run) accept(it ingestItem, seq uint64, err error) {
	if err != nil {
		r.reportErrs.Add(1)
		r.errs.add("report", err)
		return
	}
	it.j.addPublished(seq, it.sentAt)
	r.reportsOK.Add(1)
	atomicMax(&r.lastReply, time.Now().UnixNano())
	if it.final {
		it.j.final.Store(seq)
	}
}

// batchReply is the answer to POST /api/v1/reports.
type batchReply struct {
	Results []struct {
		Seq   uint64 `json:"seq"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

// ingestBatches sends next's reports BatchSize at a time. A batch that
// fails as a whole counts each of its reports as failed.
func (r *run) ingestBatches(pub publishing, next func() (ingestItem, bool)) {
	const path = "/api/v1/reports"
	var (
		items []ingestItem
		body  []byte
		buf   []byte
		reply batchReply
	)
	for done := false; !done; {
		items = items[:0]
		for len(items) < r.cfg.BatchSize {
			it, ok := next()
			if !ok {
				done = true
				break
			}
			items = append(items, it)
		}
		if len(items) == 0 {
			return
		}
		ctx := pub.progress
		if items[len(items)-1].final {
			ctx = pub.finals
		}
		if ctx.Err() != nil {
			r.skipped.Add(int64(len(items)))
			continue
		}
		now := time.Now().UnixNano()
		body = append(body[:0], `{"reports":[`...)
		for i := range items {
			if i > 0 {
				body = append(body, ',')
			}
			items[i].sentAt = now
			body = r.appendIngestReport(body, items[i], now)
		}
		body = append(body, "]}"...)
		var (
			status int
			err    error
		)
		status, buf, err = r.pub.do(ctx, "POST", path, body, buf)
		if err == nil && status != 200 {
			err = newHTTPError("POST", path, status, buf)
		}
		if err == nil {
			reply.Results = reply.Results[:0]
			if err = json.Unmarshal(buf, &reply); err == nil && len(reply.Results) != len(items) {
				err = fmt.Errorf("POST %s: %d results for %d reports", path, len(reply.Results), len(items))
			}
		}
		for i, it := range items {
			switch {
			case err != nil:
				r.accept(it, 0, err)
			case reply.Results[i].Error != nil:
				e := reply.Results[i].Error
				r.accept(it, 0, fmt.Errorf("POST %s: a report refused: %s: %s", path, e.Code, e.Message))
			default:
				r.accept(it, reply.Results[i].Seq, nil)
			}
		}
	}
}

// ingestWebSocket streams next's reports as `report` frames on a
// WebSocket of its own to the reporting server, with up to wsWindow
// awaiting their reply; replies come in the order the frames were sent.
// A report with a due time is sent when it falls due (Fanout's schedule).
func (r *run) ingestWebSocket(pub publishing, next func() (ingestItem, bool)) {
	ctx := pub.finals
	conn, resp, err := websocket.Dial(ctx, r.pubWSURL, r.dialOpts)
	if err != nil {
		err = handshakeError(resp, err)
		for it, ok := next(); ok; it, ok = next() {
			r.accept(it, 0, err)
		}
		return
	}
	conn.SetReadLimit(maxServerFrame)
	defer conn.CloseNow()
	waiting := make(chan ingestItem, wsWindow)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var buf []byte
		for it := range waiting {
			f, err := r.readReply(ctx, conn, &buf)
			switch {
			case err == nil && f.id != it.id:
				err = fmt.Errorf("websocket: reply %d out of order, want %d", f.id, it.id)
			case err == nil && f.errCode != "":
				err = fmt.Errorf("websocket: a report refused: %s: %s", f.errCode, f.errMsg)
			}
			r.accept(it, f.seq, err)
		}
	}()
	var frame []byte
	var id int64
	wait := r.newPublisher() // for its timer
	defer wait.stop()
	for it, ok := next(); ok; it, ok = next() {
		if !it.due.IsZero() {
			ctx := pub.progress
			if it.final {
				ctx = pub.finals
			}
			wait.sleepUntil(ctx, it.due)
		}
		if !it.final && pub.progress.Err() != nil {
			r.skipped.Add(1)
			continue
		}
		now := time.Now()
		if !it.due.IsZero() {
			atomicMax(&r.maxLag, int64(now.Sub(it.due)))
		}
		id++
		it.id, it.sentAt = id, now.UnixNano()
		frame = append(frame[:0], `{"op":"report","id":`...)
		frame = strconv.AppendInt(frame, id, 10)
		frame = append(frame, ',')
		at := len(frame)
		frame = r.appendIngestReport(frame, it, it.sentAt)
		copy(frame[at:], frame[at+1:]) // one object: the report's fields follow the id
		frame = frame[:len(frame)-1]
		waiting <- it
		if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
			r.errs.add("websocket report", err)
			conn.CloseNow() // the reader fails the rest
		}
	}
	close(waiting)
	<-readerDone
	_ = conn.Close(websocket.StatusNormalClosure, "bench done")
}

// readReply reads frames until a reply; updates (none are subscribed to)
// are skipped.
func (r *run) readReply(ctx context.Context, conn *websocket.Conn, buf *[]byte) (frame, error) {
	for {
		_, rd, err := conn.Reader(ctx)
		if err == nil {
			*buf, err = readInto(rd, (*buf)[:0], maxServerFrame)
		}
		if err != nil {
			return frame{}, fmt.Errorf("websocket: waiting for a reply: %w", err)
		}
		f, err := parseFrame(*buf)
		if err != nil || f.kind == frameReply {
			return f, err
		}
	}
}
