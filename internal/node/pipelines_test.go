package node

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
)

// TestListPipelinesOverHTTP: GET /api/v1/pipelines describes the loaded
// file's pipelines, sorted, with their params and stage weights and
// without their commands; it needs a token, and a scoped token (which
// never creates jobs) is refused.
func TestListPipelinesOverHTTP(t *testing.T) {
	t.Parallel()
	const secret = "pipelines-test-secret"
	file := writePipelines(t, `
pipelines:
  thumbnail:
    description: Make a thumbnail.
    params: [input, size]
    stages:
      - name: fetch
        weight: 1
        run: ["echo", "{{input}}"]
      - name: encode
        weight: 8
        run: ["echo", "{{size}}"]
  cleanup:
    stages:
      - name: sweep
        run: ["true"]
`)
	n := startNode(t, "", func(c *Config) { c.AuthSecret, c.Pipelines = secret, file })
	alice := client{t: t, base: n.URL(), token: mustMint(t, secret, "alice")}

	r := alice.do("GET", "/api/v1/pipelines", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/v1/pipelines: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "echo") {
		t.Fatalf("the list shows the stages' commands: %s", r.body)
	}
	var got struct{ Pipelines []jobs.PipelineInfo }
	r.decode(t, &got)
	want := []jobs.PipelineInfo{
		{Name: "cleanup", Params: []string{}, Stages: []jobs.PipelineStageInfo{{Name: "sweep", Weight: 1}}},
		{Name: "thumbnail", Description: "Make a thumbnail.", Params: []string{"input", "size"},
			Stages: []jobs.PipelineStageInfo{{Name: "fetch", Weight: 1}, {Name: "encode", Weight: 8}}},
	}
	if !reflect.DeepEqual(got.Pipelines, want) {
		t.Fatalf("pipelines:\n got %+v\nwant %+v", got.Pipelines, want)
	}
	if !strings.Contains(string(r.body), `"params":[]`) {
		t.Fatalf("a pipeline without params should say \"params\":[], not null: %s", r.body)
	}

	if r := (client{t: t, base: n.URL()}).do("GET", "/api/v1/pipelines", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d %s, want 401", r.status, r.body)
	}
	job := create(t, alice, `{"project":"p"}`)
	scoped, err := auth.MintForJob(secret, "alice", job.JobID, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := (client{t: t, base: n.URL(), token: scoped}).do("GET", "/api/v1/pipelines", nil); r.status != http.StatusForbidden || r.errCode() != "forbidden" {
		t.Fatalf("with a token scoped to a job: %d %s, want 403 forbidden", r.status, r.body)
	}
}

// TestListPipelinesDemo: without --pipelines the server offers the
// built-in demo, which takes no params.
func TestListPipelinesDemo(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	var got struct{ Pipelines []jobs.PipelineInfo }
	r := (client{t: t, base: n.URL()}).do("GET", "/api/v1/pipelines", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /api/v1/pipelines: %d %s", r.status, r.body)
	}
	r.decode(t, &got)
	if len(got.Pipelines) != 1 || got.Pipelines[0].Name != "demo" || len(got.Pipelines[0].Params) != 0 || len(got.Pipelines[0].Stages) != 3 {
		t.Fatalf("without --pipelines: %+v, want the demo pipeline of 3 stages and no params", got.Pipelines)
	}
}
