package gateway

import (
	"context"
	"errors"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// maxReportBurst bounds the report frames a connection applies at once:
// a batch's limit (SPEC.md part two).
const maxReportBurst = progress.MaxBatchReports

// queuedReport is a report frame read but not yet applied.
type queuedReport struct {
	id     []byte // the frame's id, echoed in the reply
	report progress.JobReport
}

// report takes a report frame (SPEC.md part two, "Reporting at high
// rates"). Each is applied exactly as POST /api/v1/jobs/{id}/progress
// applies it — same validation, same rights, a state change durable
// before the reply — and answered with the seq of the snapshot it
// produced, in the order sent. The frames a worker streams are applied
// in bursts: the reader queues each one and applies the queue (as one
// jobs.Service.ReportMany: one durable write and one publish per job)
// once no more bytes wait in its buffer or the socket (prefixReader.more:
// frames that arrived while the burst was read join it), before any
// other kind of frame, at maxReportBurst, and when reading ends. So a
// burst costs one transaction instead of one per frame, and a lone frame
// is applied at once. The first report frame gives the connection a read buffer
// (prefixReader.buffer): a connection that only watches never holds one.
func (c *wsConn) report(f clientFrame) {
	c.rd.buffer()
	c.reports = append(c.reports, queuedReport{id: f.ID, report: f.Report})
}

// flushReports applies the queued report frames and queues their
// replies, in order. It runs on the reader goroutine.
func (c *wsConn) flushReports() {
	if len(c.reports) == 0 {
		return
	}
	p := c.sub.principal.Load()
	replies := make([][]byte, len(c.reports))
	if p == nil { // cannot happen: a report is queued only once authenticated
		for i, q := range c.reports {
			replies[i] = encodeReply(q.id, errorf(CodeUnauthorized, "not authenticated"))
		}
	} else {
		for i, r := range c.g.applyReports(*p, c.reports) {
			replies[i] = encodeReplySeq(c.reports[i].id, r.seq, r.perr)
		}
	}
	c.sub.repliesHere(replies) // the reader writes them if no writer runs
	clear(c.reports)
	c.reports = c.reports[:0]
}

// reportResult is the answer to one report frame.
type reportResult struct {
	seq  uint64
	perr *protoError
}

// applyReports applies reports for p, in order, and maps each refusal to
// its reply's error: a job outside a scoped token's scope is forbidden
// (refused before any read, as over HTTP), as is any job for a read-only
// token; another user's job (or one a tag: or children: scope does not
// hold) not_found, a bad value bad_request naming the rule it broke, a
// finished job conflict.
func (g *Gateway) applyReports(p auth.Principal, reports []queuedReport) []reportResult {
	out := make([]reportResult, len(reports))
	apply := make([]progress.JobReport, 0, len(reports))
	at := make([]int, 0, len(reports))
	for i, q := range reports {
		r := q.report
		switch {
		case p.ReadOnly:
			out[i].perr = errorf(CodeForbidden, "job %s: this token is read-only: it may read and watch, not report", r.JobID)
		case !p.Covers(r.JobID):
			out[i].perr = errorf(CodeForbidden, "job %s: %s", r.JobID, p.ScopeNote())
		default:
			// Text frames are UTF-8 already; the lines' count and size
			// are checked as for POST /api/v1/jobs/{id}/progress.
			if err := progress.CheckLogLines(r.Log); err != nil {
				out[i].perr = g.reportError(r.JobID, err)
				continue
			}
			apply = append(apply, r)
			at = append(at, i)
		}
	}
	if len(apply) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	defer cancel()
	for k, o := range g.cfg.Jobs.ReportMany(ctx, apply, p.CanWrite) {
		if o.Err != nil {
			out[at[k]].perr = g.reportError(apply[k].JobID, o.Err)
		} else {
			out[at[k]].seq = o.Seq
		}
	}
	return out
}

// reportError is the reply's error for a report the service refused.
func (g *Gateway) reportError(job string, err error) *protoError {
	var pe *progress.Error
	switch {
	case errors.As(err, &pe):
		switch pe.Code {
		case progress.CodeJobFinished, progress.CodeChildrenUnfinished, progress.CodeParentFinished:
			return errorf(CodeConflict, "%s: %s", pe.Code, pe.Message)
		case progress.CodeParentNotFound:
			return errorf(CodeNotFound, "%s: %s", pe.Code, pe.Message)
		}
		return errorf(CodeBadRequest, "%s: %s", pe.Code, pe.Message)
	case errors.Is(err, progress.ErrNotFound):
		return errorf(CodeNotFound, "job %s: no such job, or it is not yours to report on", job)
	}
	g.warnf("apply a report from a websocket", "job", job, "err", err)
	return errorf(CodeUnavailable, "job %s: a store the server needs did not answer; nothing was changed: retry shortly", job)
}
