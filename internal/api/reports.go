package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/progress"
)

// MaxBatchBodyBytes bounds the body of a batch of reports: 1,000 reports
// of a few hundred bytes each, with room for long messages (SPEC.md part
// two, "Request bodies": 1 MiB + 64 KiB).
const MaxBatchBodyBytes = 1<<20 + 64<<10

type batchInput struct {
	Traceparent string `header:"traceparent" doc:"A W3C traceparent: its trace id becomes the trace_id of every job a report of the batch changes. A malformed one is ignored."`
	// RawBody only: the handler decodes it itself (decodeBatch), which
	// spares huma's generic validation — a second decoding of every
	// report into maps, a third of the CPU of a batch. The document shows
	// batchBody's schema all the same (registerReports).
	RawBody []byte `contentType:"application/json"`
}

// batchBody is the body of POST /api/v1/reports.
type batchBody struct {
	Reports []progress.JobReport `json:"reports" maxItems:"1000" doc:"The reports, applied in order, each as if posted alone to /api/v1/jobs/{job_id}/progress: at most 1,000."`
}

// decodeBatch reads a batch's body as huma's validation would: a JSON
// object whose only key is "reports", a list of at most MaxBatchReports
// reports with no unknown fields; anything else is refused whole (400).
func decodeBatch(raw []byte) ([]progress.JobReport, error) {
	// By hand, the common form (a fifth of encoding/json's CPU); anything
	// else is left to encoding/json, which also words the errors.
	if reports, ok := progress.DecodeBatch(raw); ok && len(reports) <= progress.MaxBatchReports {
		return reports, nil
	}
	var body struct {
		Reports *[]progress.JobReport `json:"reports"`
	}
	if err := decodeStrict(raw, &body, `{"reports": [{"job_id": …, …report…}, …]}`); err != nil {
		return nil, err
	}
	switch {
	case body.Reports == nil:
		return nil, apiError(http.StatusBadRequest, "bad_request", "the body has no \"reports\" list")
	case len(*body.Reports) > progress.MaxBatchReports:
		return nil, apiError(http.StatusBadRequest, "bad_request", fmt.Sprintf(
			"%d reports: a batch takes at most %d; send the rest in another", len(*body.Reports), progress.MaxBatchReports))
	}
	return *body.Reports, nil
}

// decodeStrict decodes one JSON value from raw into v, refusing unknown
// fields and anything after the value (400 naming shape): what huma's
// validation checked of a report's body, without its second decoding of
// the body into maps. Value rules (ranges, states, sizes) are
// progress.Apply's, as they always were.
func decodeStrict(raw []byte, v any, shape string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, end := dec.Token(); end != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	if err != nil {
		return apiError(http.StatusBadRequest, "bad_request", "the body must be "+shape+": "+err.Error())
	}
	return nil
}

// documentBody shows body's schema as the request body of the operation
// at path (POST), whose handler reads RawBody itself.
func (a *API) documentBody(path string, body reflect.Type, name string) {
	op := a.huma.OpenAPI().Paths[path].Post
	op.RequestBody.Required = true
	op.RequestBody.Content["application/json"].Schema = a.huma.OpenAPI().Components.Schemas.Schema(body, true, name)
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
		SkipValidateBody: true, // decodeBatch checks it
	}, a.reportBatch)
	a.documentBody("/api/v1/reports", reflect.TypeFor[batchBody](), "BatchBody") // read by decodeBatch
}

func (a *API) reportBatch(ctx context.Context, in *batchInput) (*batchOutput, error) {
	reports, err := decodeBatch(in.RawBody)
	if err != nil {
		return nil, err
	}
	p := principal(ctx)
	trace := a.traceID(ctx, in.Traceparent)
	out := &batchOutput{}
	out.Body.Results = make([]batchResult, len(reports))
	// The reports the service is to apply, in order, and where each one's
	// result goes; the others are refused here as they would be alone.
	apply := make([]progress.JobReport, 0, len(reports))
	at := make([]int, 0, len(reports))
	for i, r := range reports {
		var err error
		switch {
		case r.JobID == "":
			err = apiError(http.StatusBadRequest, "bad_request", "this report has no \"job_id\"")
		case !p.Covers(r.JobID):
			err = apiError(http.StatusForbidden, "forbidden", p.ScopeNote())
		default:
			// As a report alone: its log lines are text (the body that
			// holds them must be UTF-8) within the limits.
			if err = checkLogBody(in.RawBody, r.Log); err == nil {
				r.TraceID = trace
				apply = append(apply, r)
				at = append(at, i)
				continue
			}
		}
		out.Body.Results[i].Error = a.resultError(ctx, err)
	}
	for k, o := range a.jobs.ReportMany(ctx, apply, p.CanWrite) {
		if o.Err != nil {
			out.Body.Results[at[k]].Error = a.resultError(ctx, o.Err)
		} else {
			out.Body.Results[at[k]].Seq = o.Seq
		}
	}
	return out, nil
}

// resultError is the error of one report of a batch, as the contract
// shapes it.
func (a *API) resultError(ctx context.Context, err error) *ErrorDetail {
	var e *Error
	if !errors.As(err, &e) {
		err = a.fromService(ctx, err)
	}
	if !errors.As(err, &e) {
		e = apiError(http.StatusInternalServerError, "internal", "internal error; the server log has the details")
	}
	return &e.Body
}
