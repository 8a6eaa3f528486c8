package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxReplyBytes bounds an HTTP reply the tool reads.
const maxReplyBytes = 1 << 20

// apiClient is the tool's side of the HTTP API: keep-alive connections,
// one per publisher.
type apiClient struct {
	base  string
	token string
	tr    *http.Transport
	hc    *http.Client
}

func newAPIClient(base, token string, conns int) *apiClient {
	tr := &http.Transport{
		Proxy:                 nil, // loopback only; never through a proxy
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns + 8,
		MaxIdleConnsPerHost:   conns + 8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, tr: tr, hc: &http.Client{Transport: tr}}
}

// close drops the idle keep-alive connections (and their goroutines).
func (a *apiClient) close() { a.tr.CloseIdleConnections() }

// do sends a request and reads the reply into buf.
func (a *apiClient) do(ctx context.Context, method, path string, body, buf []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, buf, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, buf, err
	}
	defer resp.Body.Close()
	buf, err = readInto(resp.Body, buf[:0], maxReplyBytes)
	if err != nil {
		return resp.StatusCode, buf, fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
	}
	return resp.StatusCode, buf, nil
}

// httpError is a reply with an unexpected status.
type httpError struct {
	method, path string
	status       int
	code, msg    string
}

func (e *httpError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, http.StatusText(e.status))
	if e.code != "" {
		s += ": " + e.code + ": " + e.msg
	}
	switch e.status {
	case http.StatusUnauthorized:
		s += " (the server has --auth-secret: pass --token)"
	case http.StatusNotFound:
		if e.path == "/api/v1/jobs" {
			s += " (is this a progressd server?)"
		}
	}
	return s
}

func newHTTPError(method, path string, status int, body []byte) *httpError {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return &httpError{method: method, path: path, status: status, code: e.Error.Code, msg: e.Error.Message}
}

// healthy checks that something answers /healthz.
func (a *apiClient) healthy(ctx context.Context) error {
	status, _, err := a.do(ctx, http.MethodGet, "/healthz", nil, nil)
	if err != nil {
		return fmt.Errorf("the server at %s does not answer: %w", a.base, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("the server at %s answers GET /healthz with %d", a.base, status)
	}
	return nil
}

// createJob creates a job with no pipeline and no stages: it waits for
// reports.
func (a *apiClient) createJob(ctx context.Context, project string, buf []byte) (*job, []byte, error) {
	body, _ := json.Marshal(map[string]string{"project": project})
	const path = "/api/v1/jobs"
	status, buf, err := a.do(ctx, http.MethodPost, path, body, buf)
	if err != nil {
		return nil, buf, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return nil, buf, newHTTPError(http.MethodPost, path, status, buf)
	}
	var s struct {
		JobID string `json:"job_id"`
		Seq   uint64 `json:"seq"`
	}
	if err := json.Unmarshal(buf, &s); err != nil || s.JobID == "" {
		return nil, buf, fmt.Errorf("POST %s: the reply is not a snapshot: %.200q", path, buf)
	}
	return newJob(s.JobID, s.Seq), buf, nil
}

// getJob returns a job's state and seq.
func (a *apiClient) getJob(ctx context.Context, id string, buf []byte) (state string, seq uint64, _ []byte, _ error) {
	path := "/api/v1/jobs/" + url.PathEscape(id)
	status, buf, err := a.do(ctx, http.MethodGet, path, nil, buf)
	if err != nil {
		return "", 0, buf, err
	}
	if status != http.StatusOK {
		return "", 0, buf, newHTTPError(http.MethodGet, path, status, buf)
	}
	var s struct {
		State string `json:"state"`
		Seq   uint64 `json:"seq"`
	}
	if err := json.Unmarshal(buf, &s); err != nil {
		return "", 0, buf, fmt.Errorf("GET %s: %w", path, err)
	}
	return s.State, s.Seq, buf, nil
}

// report sends a report and returns the seq of the snapshot it produced.
func (a *apiClient) report(ctx context.Context, id string, body, buf []byte) (uint64, []byte, error) {
	path := "/api/v1/jobs/" + url.PathEscape(id) + "/progress"
	status, buf, err := a.do(ctx, http.MethodPost, path, body, buf)
	if err != nil {
		return 0, buf, err
	}
	if status != http.StatusOK {
		return 0, buf, newHTTPError(http.MethodPost, path, status, buf)
	}
	if seq, ok := uintAfter(buf, seqKey); ok {
		return seq, buf, nil
	}
	var s struct {
		Seq *uint64 `json:"seq"`
	}
	if err := json.Unmarshal(buf, &s); err != nil || s.Seq == nil {
		return 0, buf, fmt.Errorf("POST %s: the reply has no seq: %.200q", path, buf)
	}
	return *s.Seq, buf, nil
}

// goroutines reads go_goroutines from /metrics; 0 if it cannot.
func (a *apiClient) goroutines(ctx context.Context) int {
	status, buf, err := a.do(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil || status != http.StatusOK {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(buf))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("go_goroutines ")); ok {
			f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return 0
}

// reportBody is a progress report, or the final `succeeded` one, stamped
// with its send time.
func reportBody(b []byte, progress float64, final bool, sentAt int64) []byte {
	if final {
		b = append(b, `{"state":"succeeded","message":"`...)
	} else {
		b = append(b, `{"progress":`...)
		b = strconv.AppendFloat(b, progress, 'f', 6, 64)
		b = append(b, `,"message":"`...)
	}
	b = appendStamp(b, sentAt)
	return append(b, `"}`...)
}

// createJobs creates n jobs, Publishers at a time.
func (r *run) createJobs(ctx context.Context, n int) ([]*job, error) {
	jobs := make([]*job, n)
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(r.cfg.Publishers, n) {
		wg.Go(func() {
			var buf []byte
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				j, b, err := r.pub.createJob(ctx, r.cfg.Project, buf)
				if err != nil {
					abort(fmt.Errorf("create job %d of %d: %w", i+1, n, err))
					return
				}
				buf, jobs[i] = b, j
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return jobs, nil
}

// publisher is one goroutine's reusable state for sending reports.
type publisher struct {
	r     *run
	timer *time.Timer
	body  []byte
	buf   []byte
}

func (r *run) newPublisher() *publisher { return &publisher{r: r} }

func (p *publisher) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// sleepUntil waits for t; false if ctx ended first.
func (p *publisher) sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		p.timer.Stop()
		return false
	case <-p.timer.C:
		return true
	}
}

// send sends one progress report due at due, recording its seq. A report
// cut off by ctx counts as skipped, not failed.
func (p *publisher) send(ctx context.Context, j *job, progress float64, due time.Time) {
	now := time.Now()
	atomicMax(&p.r.maxLag, int64(now.Sub(due)))
	p.body = reportBody(p.body[:0], progress, false, now.UnixNano())
	seq, buf, err := p.r.pub.report(ctx, j.id, p.body, p.buf)
	p.buf = buf
	switch {
	case err == nil:
		p.sent(j, seq, now.UnixNano())
	case ctx.Err() != nil:
		p.r.skipped.Add(1)
	default:
		p.r.reportErrs.Add(1)
		p.r.errs.add("report", err)
	}
}

func (p *publisher) sent(j *job, seq uint64, sentAt int64) {
	j.addPublished(seq, sentAt)
	p.r.reportsOK.Add(1)
	atomicMax(&p.r.lastReply, time.Now().UnixNano())
}

// sendFinal sends the `succeeded` report to j. It tries a few times: a
// job without its final snapshot would count every client as failed. If a
// try fails in a way that may have reached the server, the job is read
// back: if it already succeeded, that seq is the final one.
func (p *publisher) sendFinal(ctx context.Context, j *job, due time.Time) {
	const tries = 3
	var err error
	for range tries {
		now := time.Now()
		atomicMax(&p.r.maxLag, int64(now.Sub(due)))
		p.body = reportBody(p.body[:0], 1, true, now.UnixNano())
		var seq uint64
		seq, p.buf, err = p.r.pub.report(ctx, j.id, p.body, p.buf)
		if err == nil {
			p.sent(j, seq, now.UnixNano())
			j.final.Store(seq)
			return
		}
		if ctx.Err() != nil {
			break
		}
		var state string
		if state, seq, p.buf, _ = p.r.pub.getJob(ctx, j.id, p.buf); state == "succeeded" {
			p.sent(j, seq, now.UnixNano())
			j.final.Store(seq)
			return
		}
		if he := (*httpError)(nil); errors.As(err, &he) && he.status < 500 {
			break // the server will say no again
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return // the run was canceled: nobody reads the result
	}
	p.r.reportErrs.Add(1)
	if ctx.Err() != nil {
		err = fmt.Errorf("not sent by the publishing deadline: %w", context.Cause(ctx))
	}
	p.r.errs.add("final report", err)
}

// publishing bounds the time reports may take, so a server that answers
// them slowly cannot stretch a run without end: progress reports not sent
// by start + 2×Duration + PublishGrace are skipped; final reports are
// sent until a minute later.
type publishing struct {
	start            time.Time
	progress, finals context.Context
}

var errPublishDeadline = errors.New("the server answered reports too slowly")

func (r *run) startPublishing(ctx context.Context) (publishing, func()) {
	start := time.Now()
	progressBy := start.Add(2*r.cfg.Duration + r.cfg.PublishGrace)
	finals, cancelFinals := context.WithDeadlineCause(ctx, progressBy.Add(time.Minute), errPublishDeadline)
	progress, cancelProgress := context.WithDeadlineCause(finals, progressBy, errPublishDeadline)
	return publishing{start: start, progress: progress, finals: finals}, func() { cancelProgress(); cancelFinals() }
}

// publishFanout sends Rate reports a second to j for Duration (report i
// is due at start + i/Rate), then the final report at start + Duration.
// Via http: from up to Publishers goroutines, one request each, the final
// one once all the others are answered. Via ws: from one WebSocket, each
// report as it falls due, as a worker in a loop reports (SPEC.md
// "Reporting at high rates").
func (r *run) publishFanout(pub publishing, j *job) {
	n := r.cfg.FanoutReports()
	interval := float64(time.Second) / r.cfg.Rate
	if r.cfg.Via == ViaWebSocket {
		r.ingestWebSocket(pub, r.fanoutSchedule(pub, j, n, interval))
		return
	}
	workers := min(int64(r.cfg.Publishers), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := r.newPublisher()
			defer p.stop()
			for i := w; i < n; i += workers {
				due := pub.start.Add(time.Duration(float64(i) * interval))
				if !p.sleepUntil(pub.progress, due) {
					r.skipped.Add((n - i + workers - 1) / workers) // the rest of this worker's share
					return
				}
				p.send(pub.progress, j, float64(i+1)/float64(n+1), due)
			}
		})
	}
	wg.Wait()
	p := r.newPublisher()
	defer p.stop()
	due := pub.start.Add(time.Duration(float64(n) * interval))
	p.sleepUntil(pub.finals, due)
	p.sendFinal(pub.finals, j, due) // also when the deadline passed: it records why it was not sent
}

// fanoutSchedule returns Fanout's n reports and the final one to j, each
// with when it falls due, for a sender that waits until then.
func (r *run) fanoutSchedule(pub publishing, j *job, n int64, interval float64) func() (ingestItem, bool) {
	var i int64
	return func() (ingestItem, bool) {
		if i > n {
			return ingestItem{}, false
		}
		it := ingestItem{j: j, progress: float64(i+1) / float64(n+1), final: i == n,
			due: pub.start.Add(time.Duration(float64(i) * interval))}
		i++
		return it, true
	}
}

// publishPerJob sends Reports reports and then the final one to every
// job, all spread evenly over Duration: report k of job i is due at
// start + (k·jobs + i)·Duration/((Reports+1)·jobs). Publisher w owns the
// jobs i ≡ w (mod publishers), so each job's reports are sent in order,
// the final one last.
func (r *run) publishPerJob(pub publishing) {
	jobs, n := len(r.jobs), r.cfg.Reports
	slot := float64(r.cfg.Duration) / float64((n+1)*jobs)
	workers := min(r.cfg.Publishers, jobs)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := r.newPublisher()
			defer p.stop()
			for k := 0; k <= n; k++ {
				for i := w; i < jobs; i += workers {
					due := pub.start.Add(time.Duration(float64(k*jobs+i) * slot))
					switch {
					case k == n:
						p.sleepUntil(pub.finals, due)
						p.sendFinal(pub.finals, r.jobs[i], due) // records why if it cannot be sent
					case p.sleepUntil(pub.progress, due):
						p.send(pub.progress, r.jobs[i], float64(k+1)/float64(n+1), due)
					default:
						r.skipped.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
}

// atomicMax raises a to v if v is larger.
func atomicMax(a *atomic.Int64, v int64) {
	for old := a.Load(); v > old && !a.CompareAndSwap(old, v); old = a.Load() {
	}
}
