package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs/jobstest"
)

// TestListPipelinesWithoutRunner: a server whose job service runs no
// pipelines answers an empty list (not null, not an error), so a user
// interface hides its picker.
func TestListPipelinesWithoutRunner(t *testing.T) {
	p := jobstest.New(t, jobstest.Options{})
	mux := http.NewServeMux()
	New(mux, Config{Jobs: p.Jobs, Auth: auth.New(""), Version: "test"})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/pipelines")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"pipelines":[]}` {
		t.Fatalf("GET /api/v1/pipelines without a runner: %d %s, want 200 {\"pipelines\":[]}", resp.StatusCode, body)
	}
}
