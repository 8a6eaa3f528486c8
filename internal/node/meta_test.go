package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/progressd/progressd/internal/progress"
)

// TestMetadataAndResult: metadata on create, merged key by key by reports
// (null removes), result with succeeded, in every snapshot; each bad input
// gets its status and code and changes nothing.
func TestMetadataAndResult(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	s := create(t, c, `{"project":"p1","metadata":{"rows":1,"file":"a.csv"}}`)
	if string(s.Metadata) != `{"file":"a.csv","rows":1}` {
		t.Fatalf("created with metadata %s", s.Metadata)
	}
	s = report(t, c, s.JobID, `{"progress":0.5,"metadata":{"rows":120,"file":null,"eta":"soon <b>"}}`)
	if string(s.Metadata) != `{"eta":"soon \u003cb\u003e","rows":120}` {
		t.Fatalf("merged metadata %s", s.Metadata)
	}

	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"metadata not an object", "/progress", `{"metadata":[1,2]}`, 400, progress.CodeInvalidMetadata},
		{"metadata a string", "/progress", `{"metadata":"x"}`, 400, progress.CodeInvalidMetadata},
		{"17 KiB of metadata", "/progress", `{"metadata":{"big":"` + strings.Repeat("x", 17<<10) + `"}}`, 413, progress.CodeTooLarge},
		{"result with running", "/progress", `{"state":"running","result":{"url":"x"}}`, 400, progress.CodeInvalidResult},
		{"result without a state", "/progress", `{"progress":0.6,"result":{"url":"x"}}`, 400, progress.CodeInvalidResult},
		{"result not an object", "/progress", `{"state":"succeeded","result":5}`, 400, progress.CodeInvalidResult},
		{"a message over 1,024 bytes", "/progress", `{"message":"` + strings.Repeat("m", 1025) + `"}`, 400, progress.CodeInvalidMessage},
	} {
		r := c.do("POST", "/api/v1/jobs/"+s.JobID+tc.path, tc.body)
		if r.status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := c.do("POST", "/api/v1/jobs", `{"project":"p1","metadata":{"big":"`+strings.Repeat("x", 17<<10)+`"}}`); r.status != http.StatusRequestEntityTooLarge || r.errCode() != progress.CodeTooLarge {
		t.Errorf("create with 17 KiB of metadata: %d %s", r.status, r.body)
	}
	if g := get(t, c, s.JobID); g.Seq != s.Seq || string(g.Metadata) != string(s.Metadata) {
		t.Fatalf("bad input changed the job: %+v", g)
	}

	s = report(t, c, s.JobID, `{"state":"succeeded","result":{"url":"https://x/out.mp4","bytes":12}}`)
	if string(s.Result) != `{"bytes":12,"url":"https://x/out.mp4"}` || string(s.Metadata) != `{"eta":"soon \u003cb\u003e","rows":120}` {
		t.Fatalf("result %s metadata %s", s.Result, s.Metadata)
	}
	var raw map[string]json.RawMessage
	r := c.do("GET", "/api/v1/jobs/"+s.JobID, nil)
	r.decode(t, &raw)
	if string(raw["result"]) != string(s.Result) {
		t.Fatalf("GET result %s", raw["result"])
	}
}
