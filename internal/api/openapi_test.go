package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/progressd/progressd/internal/protocol"
)

// TestOpenAPIListsTheProtocolTable checks that /openapi.json describes /ws
// with package protocol's close and error codes, rendered from the table
// rather than written out again.
func TestOpenAPIListsTheProtocolTable(t *testing.T) {
	mux := http.NewServeMux()
	New(mux, Config{Version: "test"})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Description string `json:"description"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got := doc.Paths["/ws"]["get"].Description
	if want := protocol.Describe(); len(got) < len(want) || got[len(got)-len(want):] != want {
		t.Fatalf("the /ws description does not end with the protocol table:\n%s\nwant it to end with\n%s", got, want)
	}
}
