package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/progress"
)

type projectsInput struct {
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"500" doc:"Page size."`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page."`
}

type projectsOutput struct {
	Body struct {
		Projects   []progress.ProjectSummary `json:"projects" doc:"Most recent activity first."`
		NextCursor *string                   `json:"next_cursor" doc:"Pass as cursor for the next page; null on the last page."`
	}
}

func (a *API) registerProjects() {
	huma.Register(a.huma, huma.Operation{
		OperationID: "list-projects", Method: http.MethodGet, Path: "/api/v1/projects",
		Summary: "List projects, most recent activity first",
		Description: "Every project the caller has jobs in (an admin: all), with its jobs counted by state — only the jobs " +
			"the caller may see — and the time of the last change to one of them. From the durable record: right after a restart.",
		Tags: []string{"jobs"}, Security: secured,
	}, a.listProjects)
}

func (a *API) listProjects(ctx context.Context, in *projectsInput) (*projectsOutput, error) {
	p := principal(ctx)
	q := progress.ProjectQuery{Limit: in.Limit, Cursor: in.Cursor}
	if !p.Admin {
		q.Owner = p.Subject
	}
	page, next, err := a.jobs.Projects(ctx, q)
	if errors.Is(err, progress.ErrBadCursor) {
		return nil, apiError(http.StatusBadRequest, "bad_request", err.Error())
	}
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	out := &projectsOutput{}
	out.Body.Projects = page
	if page == nil {
		out.Body.Projects = []progress.ProjectSummary{}
	}
	if next != "" {
		out.Body.NextCursor = &next
	}
	return out, nil
}
