package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

type healthOutput struct {
	Status int
	Body   struct {
		Status string            `json:"status" enum:"ok,unavailable"`
		Checks map[string]string `json:"checks,omitempty" doc:"Each dependency: ok, or what is wrong with it."`
	}
}

// readyTimeout bounds each readiness check, so a hung database makes
// /readyz answer 503 rather than hang the load balancer's probe.
const readyTimeout = 2 * time.Second

func (a *API) registerHealth() {
	tags := []string{"operations"}
	huma.Register(a.huma, huma.Operation{
		OperationID: "healthz", Method: http.MethodGet, Path: "/healthz",
		Summary: "Liveness: 200 while the process lives", Tags: tags,
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		out := &healthOutput{Status: http.StatusOK}
		out.Body.Status = "ok"
		return out, nil
	})
	huma.Register(a.huma, huma.Operation{
		OperationID: "readyz", Method: http.MethodGet, Path: "/readyz",
		Summary:     "Readiness: 200 while the database (and Redis, if configured) answer",
		Description: "503 otherwise, with each dependency's state in checks.",
		Tags:        tags,
		Responses: map[string]*huma.Response{
			"503": {Description: "A dependency is down; checks names it."},
		},
	}, a.readyz)
}

func (a *API) readyz(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	out := &healthOutput{Status: http.StatusOK}
	out.Body.Status = "ok"
	out.Body.Checks = make(map[string]string, len(a.ready))
	for _, c := range a.ready {
		cctx, cancel := context.WithTimeout(ctx, readyTimeout)
		err := c.Ping(cctx)
		cancel()
		if err != nil {
			out.Status = http.StatusServiceUnavailable
			out.Body.Status = "unavailable"
			out.Body.Checks[c.Name] = err.Error()
			continue
		}
		out.Body.Checks[c.Name] = "ok"
	}
	return out, nil
}
