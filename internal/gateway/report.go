package gateway

import (
	"context"
	"errors"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// report serves a report frame (SPEC.md part two, "Reporting at high
// rates"): the report is applied exactly as POST
// /api/v1/jobs/{id}/progress applies it — same validation, same rights, a
// state change durable before the reply — and answered with the seq of
// the snapshot it produced. It runs on the reader goroutine, so one
// connection's reports are applied in the order sent, each before the
// next frame is read: a worker streaming reports needs no request per
// report and keeps their order.
func (c *wsConn) report(f clientFrame, p auth.Principal) {
	seq, perr := c.g.applyReport(p, f.Report)
	c.sub.reply(encodeReplySeq(f.ID, seq, perr))
}

// applyReport applies r for p and maps a refusal to the reply's error: a
// job outside a scoped token's scope is forbidden (refused before any
// read, as over HTTP), as is any job for a read-only token; another
// user's job (or one a tag: or children: scope does not hold) not_found, a bad value
// bad_request naming the rule it broke, a finished job conflict.
func (g *Gateway) applyReport(p auth.Principal, r progress.JobReport) (uint64, *protoError) {
	switch {
	case p.ReadOnly:
		return 0, errorf(CodeForbidden, "job %s: this token is read-only: it may read and watch, not report", r.JobID)
	case !p.Covers(r.JobID):
		return 0, errorf(CodeForbidden, "job %s: %s", r.JobID, p.ScopeNote())
	}
	// Text frames are UTF-8 already; the lines' count and size are
	// checked as for POST /api/v1/jobs/{id}/progress.
	err := progress.CheckLogLines(r.Log)
	var snap progress.Snapshot
	if err == nil {
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
		defer cancel()
		snap, err = g.cfg.Jobs.ReportAs(ctx, r.JobID, r.Report, p.CanWrite)
	}
	var pe *progress.Error
	switch {
	case err == nil:
		return snap.Seq, nil
	case errors.As(err, &pe):
		switch pe.Code {
		case progress.CodeJobFinished, progress.CodeChildrenUnfinished, progress.CodeParentFinished:
			return 0, errorf(CodeConflict, "%s: %s", pe.Code, pe.Message)
		case progress.CodeParentNotFound:
			return 0, errorf(CodeNotFound, "%s: %s", pe.Code, pe.Message)
		}
		return 0, errorf(CodeBadRequest, "%s: %s", pe.Code, pe.Message)
	case errors.Is(err, progress.ErrNotFound):
		return 0, errorf(CodeNotFound, "job %s: no such job, or it is not yours to report on", r.JobID)
	}
	g.warnf("apply a report from a websocket", "job", r.JobID, "err", err)
	return 0, errorf(CodeUnavailable, "job %s: a store the server needs did not answer; nothing was changed: retry shortly", r.JobID)
}
