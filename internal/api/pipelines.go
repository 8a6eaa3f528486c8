package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/jobs"
)

type pipelinesOutput struct {
	Body struct {
		Pipelines []jobs.PipelineInfo `json:"pipelines" doc:"Sorted by name; empty when the server runs no pipelines."`
	}
}

// registerPipelines declares GET /api/v1/pipelines, so a user interface
// can offer the pipelines and a form for their params. Any signed-in
// caller may list them (they are the server's, not a user's); a scoped
// token may not, as it never creates jobs (scopedOps leaves it out).
func (a *API) registerPipelines() {
	huma.Register(a.huma, huma.Operation{
		OperationID: "list-pipelines", Method: http.MethodGet, Path: "/api/v1/pipelines",
		Summary: "List the pipelines this server runs",
		Description: "Each pipeline's name, the params a create must pass (all of them, no others) and its stages " +
			"with their weights. The built-in `demo` pipeline when the server was started without --pipelines. " +
			"A scoped token gets 403: it cannot create jobs.",
		Tags: []string{"jobs"}, Security: secured,
	}, a.listPipelines)
}

func (a *API) listPipelines(context.Context, *struct{}) (*pipelinesOutput, error) {
	out := &pipelinesOutput{}
	out.Body.Pipelines = a.jobs.Pipelines()
	return out, nil
}
