package client_test

import (
	"strings"
	"testing"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// TestReportBatch: ReportBatch splits a list longer than the server takes
// in one request, keeps the reports' order, and returns each report's
// own outcome: a seq, or the error it would get alone.
func TestReportBatch(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{})
	c := newClient(t, s.URL, "")
	ctx := t.Context()
	job, err := c.Create(ctx, client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	// 1,500 reports, more than one request holds; long messages make
	// the size limit split them too.
	n := client.MaxBatchReports + 500
	reports := make([]client.JobReport, n)
	msg := strings.Repeat("m", 1000)
	for i := range reports {
		p := float64(i) / float64(n)
		reports[i] = client.JobReport{JobID: job.JobID, Report: client.Report{Progress: &p, Message: &msg}}
	}
	reports[700].JobID = "no-such-job"
	bad := 2.0
	reports[701].Progress = &bad
	reports[n-1].State = ptr(client.Succeeded)
	results, err := c.ReportBatch(ctx, reports)
	if err != nil {
		t.Fatal(err)
	}
	want := job.Seq
	for i, r := range results {
		switch i {
		case 700:
			if !client.IsNotFound(r.Err) {
				t.Errorf("report 700: %+v, want not_found", r)
			}
		case 701:
			if apiCode(r.Err) != "invalid_progress" {
				t.Errorf("report 701: %+v, want invalid_progress", r)
			}
		default:
			want++
			if r.Err != nil || r.Seq != want {
				t.Fatalf("report %d: %+v, want seq %d", i, r, want)
			}
		}
	}
	if g, err := c.Get(ctx, job.JobID); err != nil || g.State != client.Succeeded || g.Seq != want {
		t.Fatalf("job at the end: %s seq %d (%v), want succeeded at %d", g.State, g.Seq, err, want)
	}
	if results, err := c.ReportBatch(ctx, nil); err != nil || len(results) != 0 {
		t.Fatalf("no reports: %v %v", results, err)
	}
}
