package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/progressd/progressd/internal/progress"
)

// JobReport is a Report addressed to a job: one entry of ReportBatch.
type JobReport = progress.JobReport

// MaxBatchReports is the most reports the server takes in one request;
// ReportBatch splits longer lists.
const MaxBatchReports = progress.MaxBatchReports

// maxBatchBody is the size ReportBatch keeps one request under: the
// server takes 1 MiB + 64 KiB.
const maxBatchBody = 1 << 20

// ReportResult is the outcome of one report of ReportBatch: the seq of the
// snapshot it produced, or Err (an *Error with the code the report would
// get alone: not_found, job_finished, invalid_progress…). A refused report
// changed nothing.
type ReportResult struct {
	Seq uint64
	Err error
}

// ReportBatch sends many reports in as few requests as the server's
// limits allow (POST /api/v1/reports: 1,000 reports or 1 MiB each) and
// returns one result per report, in order. The server applies each as if
// sent alone, in order, so reports on one job keep their order. The error
// is for a request that failed as a whole (the server unreachable, a bad
// token); the results of the requests before it are kept, the rest are
// that error.
func (c *Client) ReportBatch(ctx context.Context, reports []JobReport) ([]ReportResult, error) {
	results := make([]ReportResult, len(reports))
	var body bytes.Buffer
	for start := 0; start < len(reports); {
		body.Reset()
		body.WriteString(`{"reports":[`)
		end := start
		for end < len(reports) && end-start < MaxBatchReports {
			item, err := json.Marshal(reports[end])
			if err != nil {
				return results, fmt.Errorf("encode report %d: %w", end, err)
			}
			if end > start && body.Len()+len(item)+2 > maxBatchBody {
				break
			}
			if end > start {
				body.WriteByte(',')
			}
			body.Write(item)
			end++
		}
		body.WriteString(`]}`)
		var out struct {
			Results []struct {
				Seq   uint64 `json:"seq"`
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"results"`
		}
		if err := c.do(ctx, http.MethodPost, "/api/v1/reports", nil, json.RawMessage(body.Bytes()), &out); err != nil {
			for i := start; i < len(reports); i++ {
				results[i].Err = err
			}
			return results, err
		}
		if len(out.Results) != end-start {
			err := fmt.Errorf("POST /api/v1/reports: %d results for %d reports", len(out.Results), end-start)
			for i := start; i < len(reports); i++ {
				results[i].Err = err
			}
			return results, err
		}
		for i, r := range out.Results {
			results[start+i].Seq = r.Seq
			if r.Error != nil {
				results[start+i].Err = &Error{Code: r.Error.Code, Message: r.Error.Message}
			}
		}
		start = end
	}
	return results, nil
}
