package api

import (
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/protocol"
)

// documentStreams adds the gateway's streaming endpoints to the OpenAPI
// document. They are served by package gateway, not by huma, because they
// hold the connection open; listing them here keeps /docs complete.
func (a *API) documentStreams() {
	oapi := a.huma.OpenAPI()
	text := func(desc string) map[string]*huma.Response {
		return map[string]*huma.Response{
			"200": {Description: desc, Content: map[string]*huma.MediaType{"text/event-stream": {}}},
			"401": {Description: "No, bad or expired token."},
			"404": {Description: "Unknown job, or not yours to see."},
		}
	}
	channel := &huma.Param{Name: "channel", In: "query", Required: true, Explode: ptr(true),
		Description: "job:<id>, project:<name>, user:<id>, children:<id> (a job's direct children) or tag:<tag>; repeat for several.",
		Schema:      &huma.Schema{Type: "array", Items: &huma.Schema{Type: "string"}}}
	token := &huma.Param{Name: "token", In: "query",
		Description: "The token, for clients that cannot set headers (EventSource).", Schema: &huma.Schema{Type: "string"}}
	id := &huma.Param{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "string"}}

	oapi.AddOperation(&huma.Operation{
		OperationID: "job-events", Method: http.MethodGet, Path: "/api/v1/jobs/{id}/events",
		Summary:     "Follow one job (Server-Sent Events)",
		Description: "The snapshot now, then every change: `event: update`, `id: <seq>`, `data:` the snapshot. Comments (`: ping`) keep the stream alive.",
		Tags:        []string{"streams"}, Security: secured,
		Parameters: []*huma.Param{id, token}, Responses: text("A stream of snapshots."),
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "events", Method: http.MethodGet, Path: "/api/v1/events",
		Summary:     "Follow channels (Server-Sent Events)",
		Description: "For each channel, the current snapshots of the jobs it covers, then every change: `event: update`, `id: <seq>`, `data:` `{\"channel\", \"job\"}`.",
		Tags:        []string{"streams"}, Security: secured,
		Parameters: []*huma.Param{channel, token}, Responses: text("A stream of updates."),
	})
	oapi.AddOperation(&huma.Operation{
		OperationID: "websocket", Method: http.MethodGet, Path: "/ws",
		Summary: "WebSocket: subscribe to job, project and user channels",
		Description: "Text frames, one JSON object each. Client: `{\"op\": \"auth\"|\"subscribe\"|\"unsubscribe\"|\"ping\", \"id\": N, ...}`, " +
			"and `{\"op\": \"report\", \"id\": N, \"job_id\": …, …report…}`, a progress report applied exactly as POST /api/v1/jobs/{id}/progress applies it " +
			"(same validation, rights and limits; a state change durable before the reply), in the order sent, answered `{\"type\": \"reply\", \"id\": N, \"seq\": S}` " +
			"or with an error (bad_request for a bad value, not_found, forbidden, conflict once the job is terminal). " +
			"Server: `{\"type\": \"reply\", \"id\": N, \"error\"?: {...}}` and `{\"type\": \"update\", \"channel\", \"job\"}`. " +
			protocol.Describe(),
		Tags: []string{"streams"}, Parameters: []*huma.Param{token},
		Responses: map[string]*huma.Response{"101": {Description: "Switching protocols."}, "403": {Description: "Origin not allowed."}},
	})
}

func ptr[T any](v T) *T { return &v }
