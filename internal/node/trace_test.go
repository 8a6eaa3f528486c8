package node

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestTraceIDs: a W3C traceparent on a create or report puts its trace id
// in the snapshot as trace_id (SPEC.md part two, "Lifecycle"); a report
// without one keeps the last, a malformed one is ignored (the request
// still succeeds), and a snapshot without any has no trace_id at all.
func TestTraceIDs(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	const (
		first  = "4bf92f3577b34da6a3ce929d0e0e4736"
		second = "0af7651916cd43dd8448eb211c80319c"
	)
	with := func(traceparent string) client {
		return client{t: t, base: n.URL(), header: http.Header{"Traceparent": {traceparent}}}
	}
	plain := client{t: t, base: n.URL()}
	untraced := create(t, plain, `{"project":"p"}`)
	if r := plain.do("GET", "/api/v1/jobs/"+untraced.JobID, nil); json.Valid(r.body) && containsKey(t, r.body, "trace_id") {
		t.Fatalf("a job never traced has trace_id: %s", r.body)
	}

	job := create(t, with("00-"+first+"-00f067aa0ba902b7-01"), `{"project":"p"}`)
	if job.TraceID != first {
		t.Fatalf("after a traced create: trace_id %q, want %q", job.TraceID, first)
	}
	for _, tc := range []struct {
		c    client
		want string
	}{
		{plain, first},
		{with("00-" + second + "-b7ad6b7169203331-00"), second},
		{with("not-a-traceparent"), second},
		{with("00-00000000000000000000000000000000-b7ad6b7169203331-01"), second},
	} {
		s := report(t, tc.c, job.JobID, `{"progress":0.1}`)
		if s.TraceID != tc.want {
			t.Errorf("report with %v: trace_id %q, want %q", tc.c.header, s.TraceID, tc.want)
		}
	}
	if g := get(t, plain, job.JobID); g.TraceID != second {
		t.Fatalf("GET: trace_id %q, want %q", g.TraceID, second)
	}
}

// containsKey reports whether the JSON object body has key.
func containsKey(t *testing.T, body []byte, key string) bool {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	_, ok := m[key]
	return ok
}
