package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

type createInput struct {
	Traceparent    string `header:"traceparent" doc:"A W3C traceparent: its trace id becomes the snapshot's trace_id. A malformed one is ignored."`
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"200" doc:"Makes the create safe to retry (1–200 characters, e.g. a UUID): the same key from the same user within 24 h returns the first answer — the same job, 201 again — and creates and runs nothing. The same key with another body: 422 idempotency_conflict. Keys of different users never meet."`
	Body           struct {
		Project  *string              `json:"project,omitempty" doc:"The project the job belongs to: 1–128 bytes, no spaces. Required, except for a child, which takes its parent's." example:"p1"`
		Pipeline string               `json:"pipeline,omitempty" doc:"A pipeline from the server's --pipelines file (or the built-in demo): the server runs the job."`
		Params   map[string]string    `json:"params,omitempty" doc:"Values for the pipeline's declared params."`
		Stages   []progress.StageSpec `json:"stages,omitempty" doc:"For a job an external worker reports on: its stages, in order, with weights (default 1); one may be marked \"children\": true to take the mean of the job's children."`

		Name             string          `json:"name,omitempty" doc:"A title shown instead of a generic label: at most 200 characters. Pipeline jobs default to the pipeline and its params."`
		Tags             []string        `json:"tags,omitempty" doc:"At most 16 tags, each 1–64 characters of A–Z a–z 0–9 : _ . -; they cannot change later."`
		ParentID         string          `json:"parent_id,omitempty" doc:"Make the job a child of this one: a job the caller may see, not finished, at most 3 levels below its root. The child is in the parent's project."`
		Weight           *float64        `json:"weight,omitempty" doc:"The child's share of its parent's progress (> 0, default 1); only with parent_id."`
		ExpectedChildren int             `json:"expected_children,omitempty" doc:"How many children are coming (a floor). Missing ones count as 0 in the parent's progress; a parent without stages finishes by itself once that many are finished."`
		Owner            string          `json:"owner,omitempty" doc:"Create the job for this user: admin tokens only (a backend creating jobs for its users)."`
		Metadata         json.RawMessage `json:"metadata,omitempty" doc:"A JSON object shown with the job; reports merge into it key by key (null removes a key). At most 16 KiB."`
		StallAfter       *float64        `json:"stall_after_seconds,omitempty" doc:"Seconds (> 0, at most a year): a running job with no report of its own for that long gets \"stalled\": true (one update) until its next report. Else 400 invalid_stall_after."`
		AbandonAfter     *float64        `json:"abandon_after_seconds,omitempty" doc:"Seconds (> 0, at most a year; not for pipeline jobs): a job with no report for that long, counted from its creation, fails with \"no report for …\". Replaces the server's --abandon-after (default 24 h) for this job. Else 400 invalid_abandon_after."`
	}
}

type snapshotOutput struct {
	Body progress.Snapshot
}

type jobIDInput struct {
	ID string `path:"id" doc:"The job id."`
}

type reportInput struct {
	ID          string `path:"id" doc:"The job id."`
	Traceparent string `header:"traceparent" doc:"A W3C traceparent: its trace id becomes the snapshot's trace_id. A malformed one is ignored."`
	// RawBody only: the handler decodes the progress.Report itself
	// (decodeStrict), sparing huma's generic validation, which decoded
	// every report a second time into maps (about 5% of a report's CPU).
	RawBody []byte `contentType:"application/json"`
}

type listInput struct {
	Project string `query:"project" doc:"Only jobs of this project."`
	Parent  string `query:"parent" doc:"Only the direct children of this job (404 if the caller may not see it)."`
	Tag     string `query:"tag" doc:"Only jobs with this tag."`
	Owner   string `query:"owner" doc:"Only jobs of this owner (user id). Anyone but an admin sees its own jobs only, so another owner matches none."`
	State   string `query:"state" doc:"Only jobs in this state (queued, running, succeeded, failed, canceled); several may be comma-separated."`
	Limit   int    `query:"limit" default:"50" minimum:"1" maximum:"500" doc:"Page size."`
	Cursor  string `query:"cursor" doc:"next_cursor of the previous page."`
}

type listOutput struct {
	Body struct {
		Jobs       []progress.Snapshot `json:"jobs" doc:"Newest first."`
		NextCursor *string             `json:"next_cursor" doc:"Pass as cursor for the next page; null on the last page."`
	}
}

func (a *API) registerJobs() {
	tags := []string{"jobs"}
	huma.Register(a.huma, huma.Operation{
		OperationID: "create-job", Method: http.MethodPost, Path: "/api/v1/jobs",
		Summary: "Create a job",
		Description: "With a pipeline the job is queued and run by the server; without one it waits for reports from a worker. " +
			"Send an Idempotency-Key to make a retry safe: a create answered 503 or lost in transit is then sent again as is, and never makes or runs a job twice.",
		Tags: tags, Security: secured, DefaultStatus: http.StatusCreated, MaxBodyBytes: MaxBodyBytes,
	}, a.createJob)
	huma.Register(a.huma, huma.Operation{
		OperationID: "list-jobs", Method: http.MethodGet, Path: "/api/v1/jobs",
		Summary: "List jobs, newest first", Tags: tags, Security: secured,
	}, a.listJobs)
	huma.Register(a.huma, huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/api/v1/jobs/{id}",
		Summary: "Get a job's latest snapshot", Tags: tags, Security: secured,
	}, a.getJob)
	huma.Register(a.huma, huma.Operation{
		OperationID: "report-progress", Method: http.MethodPost, Path: "/api/v1/jobs/{id}/progress",
		Summary: "Report progress",
		Description: "A report naming a stage marks the stages before it succeeded. Progress never goes down while a job runs: " +
			"lower values are accepted and clamped. 400 for a bad value, 409 once the job is terminal. The reply is the snapshot the report produced.",
		Tags: tags, Security: secured, MaxBodyBytes: MaxBodyBytes,
		SkipValidateBody: true, // decodeStrict checks it
	}, a.reportProgress)
	a.documentBody("/api/v1/jobs/{id}/progress", reflect.TypeFor[progress.Report](), "Report")
	huma.Register(a.huma, huma.Operation{
		OperationID: "cancel-job", Method: http.MethodPost, Path: "/api/v1/jobs/{id}/cancel",
		Summary: "Cancel a job", Description: "A running command gets SIGTERM. 409 if the job has already finished.",
		Tags: tags, Security: secured,
	}, a.cancelJob)
	huma.Register(a.huma, huma.Operation{
		OperationID: "delete-job", Method: http.MethodDelete, Path: "/api/v1/jobs/{id}",
		Summary: "Delete a finished job",
		Description: "Deletes the job with its log lines, by its owner or an admin: 204. A job that has not finished: 409 job_not_finished (cancel it first). " +
			"Another user's job: 404, as for GET. Finished jobs are also deleted by themselves after --retention.",
		Tags: tags, Security: secured, DefaultStatus: http.StatusNoContent,
	}, a.deleteJob)
}

func (a *API) deleteJob(ctx context.Context, in *jobIDInput) (*struct{}, error) {
	if err := a.jobs.Delete(ctx, in.ID, principal(ctx).CanWrite); err != nil {
		return nil, a.fromService(ctx, err)
	}
	return nil, nil
}

func (a *API) createJob(ctx context.Context, in *createInput) (*snapshotOutput, error) {
	p := principal(ctx)
	if n := utf8.RuneCountInString(in.IdempotencyKey); n > maxIdempotencyKey || !utf8.ValidString(in.IdempotencyKey) {
		return nil, apiError(http.StatusBadRequest, "bad_request",
			fmt.Sprintf("Idempotency-Key has %d characters; send 1 to %d (a UUID is a good key)", n, maxIdempotencyKey))
	}
	owner := p.Subject
	if o := in.Body.Owner; o != "" && o != p.Subject {
		if !p.Admin {
			return nil, apiError(http.StatusBadRequest, "invalid_owner",
				"only an admin token may create a job for another user: drop \"owner\", or create it with an admin token")
		}
		if err := progress.CheckName("owner", o); err != nil {
			return nil, a.fromService(ctx, err)
		}
		owner = o
	}
	b := &in.Body
	project := ""
	if b.Project != nil {
		project = *b.Project
	} else if b.ParentID == "" {
		return nil, apiError(http.StatusBadRequest, "bad_request", "\"project\" is required (a child may leave it out: it takes its parent's)")
	}
	snap, err := a.jobs.Create(ctx, owner, jobs.CreateRequest{
		Project: project, Pipeline: b.Pipeline, Params: b.Params, Stages: b.Stages,
		Name: b.Name, Tags: b.Tags, ParentID: b.ParentID, Weight: b.Weight, ExpectedChildren: b.ExpectedChildren, Metadata: b.Metadata,
		StallAfter: b.StallAfter, AbandonAfter: b.AbandonAfter,
		MaySee: p.CanSee, IdempotencyKey: in.IdempotencyKey, Caller: p.Subject, TraceID: a.traceID(ctx, in.Traceparent),
	})
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	return &snapshotOutput{Body: snap}, nil
}

// maxIdempotencyKey is the longest Idempotency-Key, in characters.
const maxIdempotencyKey = 200

// visible returns the job if the caller may see it; another user's job is
// reported as not found, so ids cannot be probed.
func (a *API) visible(ctx context.Context, id string) (progress.Snapshot, error) {
	return a.readable(ctx, id, principal(ctx).CanSee)
}

// readable returns the job if may allows it, else not found like visible.
func (a *API) readable(ctx context.Context, id string, may func(progress.Snapshot) bool) (progress.Snapshot, error) {
	snap, err := a.jobs.Get(ctx, id)
	if err != nil {
		return snap, a.fromService(ctx, err)
	}
	if !may(snap) {
		return progress.Snapshot{}, notFound()
	}
	return snap, nil
}

func (a *API) getJob(ctx context.Context, in *jobIDInput) (*snapshotOutput, error) {
	snap, err := a.visible(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return &snapshotOutput{Body: snap}, nil
}

func (a *API) reportProgress(ctx context.Context, in *reportInput) (*snapshotOutput, error) {
	snap, err := a.report(ctx, principal(ctx), in.ID, in.Traceparent, in.RawBody)
	if err != nil {
		return nil, err
	}
	return &snapshotOutput{Body: snap}, nil
}

// report applies the report in raw, a request's body, to job id for p:
// the work of POST /api/v1/jobs/{id}/progress, huma's handler of it and
// its fast path (reportFast) alike. Errors are the API's.
func (a *API) report(ctx context.Context, p auth.Principal, id, traceparent string, raw []byte) (progress.Snapshot, error) {
	r, ok := progress.DecodeReport(raw) // by hand: the common form
	if !ok {
		if err := decodeStrict(raw, &r, "one report object"); err != nil {
			return progress.Snapshot{}, err
		}
	}
	if err := checkLogBody(raw, r.Log); err != nil {
		return progress.Snapshot{}, a.fromService(ctx, err)
	}
	r.TraceID = a.traceID(ctx, traceparent)
	snap, err := a.jobs.ReportAs(ctx, id, r, p.CanWrite)
	if err != nil {
		return progress.Snapshot{}, a.fromService(ctx, err)
	}
	if r.TraceID != "" {
		a.log.DebugContext(ctx, "report", "job", id, "seq", snap.Seq, "trace_id", r.TraceID)
	}
	return snap, nil
}

// traceID reads a request's traceparent header (progress.TraceID),
// logging a malformed one at debug level: it is ignored, never refused.
func (a *API) traceID(ctx context.Context, traceparent string) string {
	id := progress.TraceID(traceparent)
	if id == "" && traceparent != "" {
		a.log.DebugContext(ctx, "ignoring a malformed traceparent header", "traceparent", traceparent[:min(len(traceparent), 100)])
	}
	return id
}

func (a *API) cancelJob(ctx context.Context, in *jobIDInput) (*snapshotOutput, error) {
	p := principal(ctx)
	snap, err := a.jobs.CancelAs(ctx, in.ID, "canceled by "+p.Subject, p.CanWrite)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	return &snapshotOutput{Body: snap}, nil
}

func (a *API) listJobs(ctx context.Context, in *listInput) (*listOutput, error) {
	p := principal(ctx)
	q := progress.Query{Project: in.Project, Parent: in.Parent, Tag: in.Tag, Limit: in.Limit, Cursor: in.Cursor}
	if in.Owner != "" {
		if err := progress.CheckName("owner", in.Owner); err != nil {
			return nil, a.fromService(ctx, err)
		}
	}
	q.Owner = in.Owner
	// Anyone but an admin lists its own jobs only: another owner matches
	// none (an empty page, which says nothing of that user's jobs).
	othersOnly := !p.Admin && in.Owner != "" && in.Owner != p.Subject
	if !p.Admin {
		q.Owner = p.Subject
	}
	if p.Scoped() && !p.MaySubscribe("children:"+in.Parent) && !p.MaySubscribe("tag:"+in.Tag) && !p.MaySubscribe("project:"+in.Project) {
		return nil, apiError(http.StatusForbidden, "forbidden",
			p.ScopeNote()+"; list with ?parent=, ?tag= or ?project= naming a children:, tag: or project: entry of the scope")
	}
	if in.Parent != "" {
		// Owns, not CanSee: a scope naming children:<id> need not name
		// the parent itself (for anyone else the two are the same).
		if _, err := a.readable(ctx, in.Parent, p.Owns); err != nil {
			return nil, err
		}
	}
	if in.Tag != "" {
		if err := progress.CheckTag(in.Tag); err != nil {
			return nil, a.fromService(ctx, err)
		}
	}
	if in.State != "" {
		for _, s := range strings.Split(in.State, ",") {
			st := progress.State(strings.TrimSpace(s))
			if !st.Valid() {
				return nil, apiError(http.StatusBadRequest, "bad_request",
					"state "+string(st)+" is not one of queued, running, succeeded, failed, canceled")
			}
			q.States = append(q.States, st)
		}
	}
	out := &listOutput{}
	if othersOnly {
		out.Body.Jobs = []progress.Snapshot{}
		return out, nil
	}
	page, next, err := a.jobs.List(ctx, q)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	out.Body.Jobs = page
	if p.Scoped() {
		// The filter named a scope entry, so every job of the page is in
		// scope; this keeps it so if filters ever combine differently.
		out.Body.Jobs = slices.DeleteFunc(page, func(s progress.Snapshot) bool { return !p.CanSee(s) })
	}
	if out.Body.Jobs == nil {
		out.Body.Jobs = []progress.Snapshot{}
	}
	if next != "" {
		out.Body.NextCursor = &next
	}
	return out, nil
}
