package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The Logs scenario (issue 13): Clients jobs, each followed by one client
// on its logs: channel, each appended LineRate lines a second for
// Duration. Via http sends each line alone, POST /api/v1/jobs/{id}/logs,
// as a plain worker printing a line would; via batch sends, every
// LogTick, one POST /api/v1/reports per publisher holding a report with
// "log" for each of its jobs with lines due, as the SDKs batch. Every
// line carries its send time ("t=<unix ns> …"), so each line a follower
// receives gives the lag from send to arrival.

// logLines is what Logs counts per job and per follower.
type logLines struct {
	sent atomic.Int64 // lines the server accepted for the job
}

// onLog takes a {"type":"log"} frame: each line newer than the last
// counts once, and its stamp gives a latency sample.
func (r *run) onLog(c *client, b []byte, now int64) {
	if bytes.Contains(b[:min(len(b), 200)], truncatedKey) {
		c.truncated++
	}
	for rest := b; ; {
		i := bytes.Index(rest, lineKey)
		if i < 0 {
			return
		}
		rest = rest[i+len(lineKey):]
		n, err := leadingInt(rest)
		if err != nil {
			continue
		}
		if n <= c.lastLine {
			c.stale++
			continue
		}
		c.lastLine = n
		c.lines.Add(1)
		if j := bytes.Index(rest, textStampKey); j >= 0 {
			if at, err := leadingInt(rest[j+len(textStampKey):]); err == nil {
				r.latency.record(c.id, time.Duration(now-at))
			}
		}
	}
}

var (
	logPrefix    = []byte(`{"type":"log",`)
	lineKey      = []byte(`{"n":`) // a line object starts with its n (LogLine.AppendJSON)
	textStampKey = []byte(`"text":"t=`)
	truncatedKey = []byte(`"truncated":true`)
)

// publishLogs sends every job LineRate lines a second for Duration:
// line k of job i is due at start + (k·jobs + i)/(LineRate·jobs), so the
// load is even. Publisher w owns the jobs i ≡ w (mod publishers).
func (r *run) publishLogs(pub publishing) {
	jobs := len(r.jobs)
	perJob := r.cfg.LogLinesPerJob()
	slot := float64(time.Second) / (r.cfg.LineRate * float64(jobs))
	workers := min(r.cfg.Publishers, jobs)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := r.newPublisher()
			defer p.stop()
			if r.cfg.Via == ViaBatch {
				r.publishLogBatches(pub, p, w, workers, perJob, slot)
				return
			}
			for k := range perJob {
				for i := w; i < jobs; i += workers {
					due := pub.start.Add(time.Duration(float64(k*jobs+i) * slot))
					if !p.sleepUntil(pub.progress, due) {
						r.skipped.Add(1)
						continue
					}
					r.sendLogLine(pub.progress, p, r.jobs[i], k, due)
				}
			}
		})
	}
	wg.Wait()
}

// sendLogLine sends line k of j alone.
func (r *run) sendLogLine(ctx context.Context, p *publisher, j *job, k int, due time.Time) {
	now := time.Now()
	atomicMax(&r.maxLag, int64(now.Sub(due)))
	p.body = append(p.body[:0], `{"lines":["`...)
	p.body = appendLogText(p.body, now.UnixNano(), j, k)
	p.body = append(p.body, `"]}`...)
	path := "/api/v1/jobs/" + url.PathEscape(j.id) + "/logs"
	r.requests.Add(1)
	status, buf, err := r.pub.do(ctx, "POST", path, p.body, p.buf)
	p.buf = buf
	if err == nil && status != 200 {
		err = newHTTPError("POST", path, status, buf)
	}
	r.logAccepted(ctx, j, 1, err)
}

// logAccepted counts n lines of j sent in one request or report.
func (r *run) logAccepted(ctx context.Context, j *job, n int, err error) {
	switch {
	case err == nil:
		j.logs.sent.Add(int64(n))
		r.reportsOK.Add(int64(n))
		atomicMax(&r.lastReply, time.Now().UnixNano())
	case ctx.Err() != nil:
		r.skipped.Add(int64(n))
	default:
		r.reportErrs.Add(int64(n))
		r.errs.add("log lines", err)
	}
}

// appendLogText appends the text of line k of j, stamped with sentAt.
func appendLogText(b []byte, sentAt int64, j *job, k int) []byte {
	b = appendStamp(b, sentAt)
	b = append(b, " line "...)
	b = strconv.AppendInt(b, int64(k+1), 10)
	b = append(b, " of job "...)
	return append(b, j.id...)
}

// publishLogBatches is publisher w's part of Logs via batch: every
// LogTick, the lines of its jobs due by then, one report per job in
// POST /api/v1/reports (at most MaxBatch reports a request).
func (r *run) publishLogBatches(pub publishing, p *publisher, w, workers, perJob int, slot float64) {
	var mine []int
	for i := w; i < len(r.jobs); i += workers {
		mine = append(mine, i)
	}
	next := make([]int, len(mine)) // the next line of each job
	var parts []logPart
	for tick := pub.start; ; {
		tick = tick.Add(r.cfg.LogTick)
		last := !tick.Before(pub.start.Add(r.cfg.Duration))
		if !p.sleepUntil(pub.progress, tick) {
			for x := range mine {
				r.skipped.Add(int64(perJob - next[x]))
			}
			return
		}
		now := time.Now()
		atomicMax(&r.maxLag, int64(now.Sub(tick)))
		p.body = append(p.body[:0], `{"reports":[`...)
		parts = parts[:0]
		for x, i := range mine {
			// Lines of job i due by now: k with (k·jobs + i)·slot ≤ elapsed.
			due := perJob
			if !last {
				due = min(perJob, int((float64(now.Sub(pub.start))/slot-float64(i))/float64(len(r.jobs)))+1)
			}
			if due <= next[x] {
				continue
			}
			if len(parts) == MaxBatch {
				r.sendLogBatch(pub.progress, p, parts)
				p.body = append(p.body[:0], `{"reports":[`...)
				parts = parts[:0]
			}
			if len(parts) > 0 {
				p.body = append(p.body, ',')
			}
			j := r.jobs[i]
			p.body = append(p.body, `{"job_id":"`...)
			p.body = append(p.body, j.id...)
			p.body = append(p.body, `","log":[`...)
			for k := next[x]; k < due; k++ {
				if k > next[x] {
					p.body = append(p.body, ',')
				}
				p.body = append(p.body, '"')
				p.body = appendLogText(p.body, now.UnixNano(), j, k)
				p.body = append(p.body, '"')
			}
			p.body = append(p.body, "]}"...)
			parts = append(parts, logPart{j, due - next[x]})
			next[x] = due
		}
		if len(parts) > 0 {
			r.sendLogBatch(pub.progress, p, parts)
		}
		if last {
			return
		}
	}
}

// logPart is one job's report in a batch: how many lines it carries.
type logPart struct {
	j     *job
	lines int
}

// sendLogBatch sends p.body (the reports of parts, without the closing
// "]}") and counts each report's lines by its result.
func (r *run) sendLogBatch(ctx context.Context, p *publisher, parts []logPart) {
	const path = "/api/v1/reports"
	p.body = append(p.body, "]}"...)
	r.requests.Add(1)
	status, buf, err := r.pub.do(ctx, "POST", path, p.body, p.buf)
	p.buf = buf
	if err == nil && status != 200 {
		err = newHTTPError("POST", path, status, buf)
	}
	var reply batchReply
	if err == nil {
		if jerr := json.Unmarshal(buf, &reply); jerr != nil || len(reply.Results) != len(parts) {
			err = newHTTPError("POST", path, status, buf)
		}
	}
	for x, pt := range parts {
		e := err
		if e == nil && reply.Results[x].Error != nil {
			e = &httpError{method: "POST", path: path, status: status, code: reply.Results[x].Error.Code, msg: reply.Results[x].Error.Message}
		}
		r.logAccepted(ctx, pt.j, pt.lines, e)
	}
}

// drainLogs waits until every connected follower has every line its job
// was sent, or DrainTimeout.
func (r *run) drainLogs(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.followersBehind() > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	if n := r.followersBehind(); n > 0 {
		r.log.Warn("followers still without every line at the end of the drain", "clients", n, "drain_timeout", r.cfg.DrainTimeout)
	}
}

func (r *run) followersBehind() int {
	n := 0
	for _, c := range r.clients {
		if c.connected && !c.exited.Load() && c.lines.Load() < uint64(c.job.logs.sent.Load()) {
			n++
		}
	}
	return n
}

// tallyLogs fills res from the followers: every line a job was sent is
// expected once by its follower.
func (r *run) tallyLogs(res *Result) {
	for _, c := range r.clients {
		if !c.connected {
			continue
		}
		r.tallyConnection(res, c)
		sent, got := uint64(c.job.logs.sent.Load()), c.lines.Load()
		res.Expected += sent
		res.Delivered += min(got, sent)
		res.Lost += sent - min(got, sent)
		res.Unexpected += got - min(got, sent)
		res.Stale += c.stale
		res.Truncated += c.truncated
	}
	res.Requests = r.requests.Load()
}
