package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

type createInput struct {
	Body struct {
		Project  string               `json:"project" doc:"The project the job belongs to: 1–128 bytes, no spaces." example:"p1"`
		Pipeline string               `json:"pipeline,omitempty" doc:"A pipeline from the server's --pipelines file (or the built-in demo): the server runs the job."`
		Params   map[string]string    `json:"params,omitempty" doc:"Values for the pipeline's declared params."`
		Stages   []progress.StageSpec `json:"stages,omitempty" doc:"For a job an external worker reports on: its stages, in order, with weights (default 1)."`
	}
}

type snapshotOutput struct {
	Body progress.Snapshot
}

type jobIDInput struct {
	ID string `path:"id" doc:"The job id."`
}

type reportInput struct {
	ID   string `path:"id" doc:"The job id."`
	Body progress.Report
}

type listInput struct {
	Project string `query:"project" doc:"Only jobs of this project."`
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
		Summary:     "Create a job",
		Description: "With a pipeline the job is queued and run by the server; without one it waits for reports from a worker.",
		Tags:        tags, Security: secured, DefaultStatus: http.StatusCreated, MaxBodyBytes: MaxBodyBytes,
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
	}, a.reportProgress)
	huma.Register(a.huma, huma.Operation{
		OperationID: "cancel-job", Method: http.MethodPost, Path: "/api/v1/jobs/{id}/cancel",
		Summary: "Cancel a job", Description: "A running command gets SIGTERM. 409 if the job has already finished.",
		Tags: tags, Security: secured,
	}, a.cancelJob)
}

func (a *API) createJob(ctx context.Context, in *createInput) (*snapshotOutput, error) {
	p := principal(ctx)
	snap, err := a.jobs.Create(ctx, p.Subject, jobs.CreateRequest{
		Project: in.Body.Project, Pipeline: in.Body.Pipeline, Params: in.Body.Params, Stages: in.Body.Stages,
	})
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	return &snapshotOutput{Body: snap}, nil
}

// visible returns the job if the caller may see it; another user's job is
// reported as not found, so ids cannot be probed.
func (a *API) visible(ctx context.Context, id string) (progress.Snapshot, error) {
	snap, err := a.jobs.Get(ctx, id)
	if err != nil {
		return snap, a.fromService(ctx, err)
	}
	if !principal(ctx).CanSee(snap) {
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
	snap, err := a.jobs.ReportAs(ctx, in.ID, in.Body, principal(ctx).CanSee)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	return &snapshotOutput{Body: snap}, nil
}

func (a *API) cancelJob(ctx context.Context, in *jobIDInput) (*snapshotOutput, error) {
	p := principal(ctx)
	snap, err := a.jobs.CancelAs(ctx, in.ID, "canceled by "+p.Subject, p.CanSee)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	return &snapshotOutput{Body: snap}, nil
}

func (a *API) listJobs(ctx context.Context, in *listInput) (*listOutput, error) {
	p := principal(ctx)
	q := progress.Query{Project: in.Project, Limit: in.Limit, Cursor: in.Cursor}
	if !p.Admin {
		q.Owner = p.Subject
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
	page, next, err := a.jobs.List(ctx, q)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	out := &listOutput{}
	out.Body.Jobs = page
	if out.Body.Jobs == nil {
		out.Body.Jobs = []progress.Snapshot{}
	}
	if next != "" {
		out.Body.NextCursor = &next
	}
	return out, nil
}
