package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

func readLogs(t *testing.T, c client, id, query string) progress.LogPage {
	t.Helper()
	r := c.do("GET", "/api/v1/jobs/"+id+"/logs"+query, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET logs%s: %d %s", query, r.status, r.body)
	}
	var p progress.LogPage
	r.decode(t, &p)
	return p
}

func appendLogs(t *testing.T, c client, id string, lines ...string) int64 {
	t.Helper()
	r := c.do("POST", "/api/v1/jobs/"+id+"/logs", map[string]any{"lines": lines})
	if r.status != http.StatusOK {
		t.Fatalf("POST logs: %d %s", r.status, r.body)
	}
	var out struct{ Last int64 }
	r.decode(t, &out)
	return out.Last
}

func texts(p progress.LogPage) string {
	var b []string
	for _, l := range p.Lines {
		b = append(b, fmt.Sprintf("%d:%s", l.N, l.Text))
	}
	return strings.Join(b, " ")
}

// TestLogsOverHTTP: lines from POST .../logs and from a report's "log",
// numbered from 1 without gaps, the last --log-lines kept, read with
// after/limit/truncated, cut at 4 KiB, refused once the job ended and
// still readable after it (from the database).
func TestLogsOverHTTP(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", func(c *Config) { c.LogLines = 4 })
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	s := create(t, c, `{"project":"p1","stages":[{"name":"fetch"},{"name":"encode"}]}`)

	if p := readLogs(t, c, s.JobID, ""); len(p.Lines) != 0 || p.First != 0 || p.Last != 0 {
		t.Fatalf("before any line: %+v", p)
	}
	if last := appendLogs(t, c, s.JobID, "one", "two"); last != 2 {
		t.Fatalf("last after two lines: %d", last)
	}
	report(t, c, s.JobID, `{"stage":"encode","progress":0.5,"log":["three"]}`)
	p := readLogs(t, c, s.JobID, "")
	if texts(p) != "1:one 2:two 3:three" || p.First != 1 || p.Last != 3 || p.Truncated {
		t.Fatalf("three lines: %+v", p)
	}
	if p.Lines[0].Stream != progress.StreamLog || p.Lines[0].Stage != "" || p.Lines[2].Stage != "encode" || p.Lines[0].T.IsZero() {
		t.Fatalf("fields: %+v", p.Lines)
	}
	long := strings.Repeat("é", 3000) // 6,000 bytes
	appendLogs(t, c, s.JobID, "four", long)
	if p := readLogs(t, c, s.JobID, "?after=1"); p.Truncated || p.Lines[0].N != 2 {
		t.Fatalf("after 1, the line before the first kept: %+v", p)
	}
	p = readLogs(t, c, s.JobID, "?after=0")
	if !p.Truncated || p.First != 2 || p.Last != 5 || p.Lines[0].N != 2 {
		t.Fatalf("after a dropped line (keeping 4): %+v", p)
	}
	if got := p.Lines[3].Text; len(got) > progress.MaxLogLineBytes || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "éé") {
		t.Fatalf("a 6,000-byte line kept as %d bytes ending %q", len(got), got[len(got)-6:])
	}
	if p := readLogs(t, c, s.JobID, "?after=2&limit=2"); texts(p) != "3:three 4:four" || p.Truncated {
		t.Fatalf("after 2 limit 2: %+v", p)
	}

	report(t, c, s.JobID, `{"state":"succeeded","log":["done"]}`)
	r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/logs", `{"lines":["late"]}`)
	if r.status != http.StatusConflict || r.errCode() != progress.CodeJobFinished {
		t.Fatalf("a line after the end: %d %s", r.status, r.body)
	}
	p = readLogs(t, c, s.JobID, "?after=0")
	if p.First != 3 || p.Last != 6 || !p.Truncated || p.Lines[3].Text != "done" {
		t.Fatalf("the finished job's lines (from the database): %+v", p)
	}
}

// TestLogsBadInput: each bad input gets its status and code, and what was
// kept does not change.
func TestLogsBadInput(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	s := create(t, c, `{"project":"p1"}`)
	appendLogs(t, c, s.JobID, "kept")

	many := make([]string, 1001)
	for i := range many {
		many[i] = "x"
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"5 MiB body", "POST", "/logs", `{"lines":["` + strings.Repeat("a", 5<<20) + `"]}`, 413, "too_large"},
		{"1 MiB of lines in a smaller body", "POST", "/logs", map[string]any{"lines": []string{strings.Repeat("a", 600<<10), strings.Repeat("b", 500<<10)}}, 413, "too_large"},
		{"1,001 lines", "POST", "/logs", map[string]any{"lines": many}, 400, progress.CodeInvalidLog},
		{"invalid UTF-8", "POST", "/logs", "{\"lines\":[\"ok\",\"bad \xff\xfe\"]}", 400, progress.CodeInvalidLog},
		{"a NUL byte", "POST", "/logs", `{"lines":["a\u0000b"]}`, 400, progress.CodeInvalidLog},
		{"lines not a list", "POST", "/logs", `{"lines":"one"}`, 400, "bad_request"},
		{"a report's invalid UTF-8 line", "POST", "/progress", "{\"progress\":0.5,\"log\":[\"\xff\"]}", 400, progress.CodeInvalidLog},
		{"a report rejected for its progress keeps no line", "POST", "/progress", `{"progress":2,"log":["no"]}`, 400, progress.CodeInvalidProgress},
		{"after=-1", "GET", "/logs?after=-1", nil, 400, "bad_request"},
		{"after=x", "GET", "/logs?after=x", nil, 400, "bad_request"},
		{"limit=1000000", "GET", "/logs?limit=1000000", nil, 400, "bad_request"},
		{"limit=0", "GET", "/logs?limit=0", nil, 400, "bad_request"},
	} {
		r := c.do(tc.method, "/api/v1/jobs/"+s.JobID+tc.path, tc.body)
		if r.status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.errCode(), tc.status, tc.code)
		}
	}
	if p := readLogs(t, c, s.JobID, ""); texts(p) != "1:kept" || p.Last != 1 {
		t.Fatalf("bad input changed the kept lines: %+v", p)
	}
	if g := get(t, c, s.JobID); g.Seq != s.Seq {
		t.Fatalf("bad input changed the job: seq %d, was %d", g.Seq, s.Seq)
	}
	if r := c.do("POST", "/api/v1/jobs/no-such-job/logs", `{"lines":["x"]}`); r.status != 404 {
		t.Fatalf("lines for an unknown job: %d %s", r.status, r.body)
	}
}

// TestLogsSurviveRestart: a clean shutdown (SIGTERM) writes every
// acknowledged line, and after the restart numbering carries on.
func TestLogsSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	slow := func(c *Config) { c.FlushInterval = time.Hour } // nothing flushes on its own
	n := startNode(t, dir, slow)
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p1"}`)
	appendLogs(t, c, s.JobID, "a", "b", "c")
	stopNode(t, n)

	n = startNode(t, dir, slow)
	c = client{t: t, base: n.URL()}
	if p := readLogs(t, c, s.JobID, ""); texts(p) != "1:a 2:b 3:c" {
		t.Fatalf("after a restart: %+v", p)
	}
	if last := appendLogs(t, c, s.JobID, "d"); last != 4 {
		t.Fatalf("numbering after a restart went on at %d, want 4", last)
	}
}

// TestLogsTwoNodes: lines appended on two nodes sharing Redis and
// PostgreSQL are numbered as one sequence, and either node reads them all.
func TestLogsTwoNodes(t *testing.T) {
	shared := scaleOut(t)
	a, b := startNode(t, "", shared), startNode(t, "", shared)
	ca, cb := client{t: t, base: a.URL()}, client{t: t, base: b.URL()}
	s := create(t, ca, `{"project":"p1"}`)
	var wg sync.WaitGroup
	for _, c := range []client{ca, cb} {
		wg.Go(func() {
			for range 10 {
				r := c.do("POST", "/api/v1/jobs/"+s.JobID+"/logs", `{"lines":["x","y"]}`)
				if r.status != http.StatusOK {
					t.Errorf("POST logs: %d %s", r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	p := readLogs(t, cb, s.JobID, "")
	if p.First != 1 || p.Last != 40 || len(p.Lines) != 40 {
		t.Fatalf("40 lines from two nodes: first %d last %d count %d", p.First, p.Last, len(p.Lines))
	}
	for i, l := range p.Lines {
		if l.N != int64(i+1) {
			t.Fatalf("line %d has n %d", i, l.N)
		}
	}
	// A logs: stream on node b gets what is appended on node a.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.URL()+"/api/v1/events?channel=logs:"+s.JobID+"&after=38", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	want := int64(39)
	for want <= 42 && sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var f struct{ Lines []progress.LogLine }
		if err := json.Unmarshal([]byte(data), &f); err != nil {
			t.Fatalf("event data %s: %v", data, err)
		}
		for _, l := range f.Lines {
			if l.N != want {
				t.Fatalf("streamed line %d, want %d", l.N, want)
			}
			want++
		}
		if want == 41 {
			appendLogs(t, ca, s.JobID, "from a", "again")
		}
	}
	if want != 43 {
		t.Fatalf("the stream on node b ended at line %d: %v", want-1, sc.Err())
	}
	report(t, ca, s.JobID, `{"state":"succeeded"}`)
	if p := readLogs(t, cb, s.JobID, "?after=38"); p.Last != 42 || len(p.Lines) != 4 {
		t.Fatalf("after the end, on the other node: %+v", p)
	}
}
