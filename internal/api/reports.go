package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/progress"
)

// MaxBatchBodyBytes bounds the body of a batch of reports: 1,000 reports
// of a few hundred bytes each, with room for long messages (SPEC.md part
// two, "Request bodies": 1 MiB + 64 KiB).
const MaxBatchBodyBytes = 1<<20 + 64<<10

type batchInput struct {
	Traceparent string `header:"traceparent" doc:"A W3C traceparent: its trace id becomes the trace_id of every job a report of the batch changes. A malformed one is ignored."`
	RawBody     []byte
	Body        struct {
		Reports []progress.JobReport `json:"reports" maxItems:"1000" doc:"The reports, applied in order, each as if posted alone to /api/v1/jobs/{job_id}/progress: at most 1,000."`
	}
}

// batchResult is the outcome of one report of a batch: the seq of the
// snapshot it produced, or the error it would have had alone.
type batchResult struct {
	Seq   uint64       `json:"seq,omitempty" doc:"The seq of the snapshot this report produced."`
	Error *ErrorDetail `json:"error,omitempty" doc:"Why this report was refused; nothing of it was applied. The code is the one a report posted alone gets (not_found, forbidden, invalid_progress, unknown_stage, job_finished, unavailable…)."`
}

type batchOutput struct {
	Body struct {
		Results []batchResult `json:"results" doc:"One per report, in the order sent."`
	}
}

func (a *API) registerReports() {
	huma.Register(a.huma, huma.Operation{
		OperationID: "report-batch", Method: http.MethodPost, Path: "/api/v1/reports",
		Summary: "Report on many jobs at once",
		Description: "For workers that report at high rates: one request carries up to 1,000 reports (`{\"reports\": [{\"job_id\": …, …report…}]}`), " +
			"each applied in order exactly as if posted alone to /api/v1/jobs/{job_id}/progress — same validation, same permissions, " +
			"and a state change is durable before the answer. One refused report does not affect the others: " +
			"the answer is 200 with one result per report, `{\"seq\"}` or `{\"error\": {\"code\", \"message\"}}`. " +
			"The request as a whole is refused only when it cannot be read: 400 for a malformed body or more than 1,000 reports, " +
			"413 too_large over 1 MiB + 64 KiB. A WebSocket connection may send the same reports one by one as `report` frames.",
		Tags: []string{"jobs"}, Security: secured, MaxBodyBytes: MaxBatchBodyBytes,
	}, a.reportBatch)
}

func (a *API) reportBatch(ctx context.Context, in *batchInput) (*batchOutput, error) {
	p := principal(ctx)
	trace := a.traceID(ctx, in.Traceparent)
	out := &batchOutput{}
	out.Body.Results = make([]batchResult, len(in.Body.Reports))
	for i, r := range in.Body.Reports {
		var err error
		switch {
		case r.JobID == "":
			err = apiError(http.StatusBadRequest, "bad_request", "this report has no \"job_id\"")
		case !p.Covers(r.JobID):
			err = apiError(http.StatusForbidden, "forbidden", p.ScopeNote())
		default:
			// As a report alone: its log lines are text (the body that
			// holds them must be UTF-8) within the limits.
			if err = checkLogBody(in.RawBody, r.Log); err != nil {
				err = a.fromService(ctx, err)
				break
			}
			var snap progress.Snapshot
			r.TraceID = trace
			snap, err = a.jobs.ReportAs(ctx, r.JobID, r.Report, p.CanWrite)
			if err == nil {
				out.Body.Results[i].Seq = snap.Seq
				continue
			}
			err = a.fromService(ctx, err)
		}
		var e *Error
		if !errors.As(err, &e) {
			e = apiError(http.StatusInternalServerError, "internal", "internal error; the server log has the details")
		}
		out.Body.Results[i].Error = &e.Body
	}
	return out, nil
}
