package progress

// MaxBatchReports is the most reports one batch may carry (POST
// /api/v1/reports); SPEC.md part two, "Reporting at high rates".
const MaxBatchReports = 1000

// JobReport is a Report addressed to a job, the item of a batch of reports
// and the body of a WebSocket report frame: {"job_id": …, …report…}. The
// Report is embedded, so every field a report gains is accepted here too.
type JobReport struct {
	JobID string `json:"job_id" required:"false" doc:"The job the report is about. An empty or unknown id fails this report only."`
	Report
}

// Outcome is what one report of a batch came to: the seq of the snapshot
// it produced, or why it was refused (the error the report alone would
// have had).
type Outcome struct {
	Seq uint64
	Err error
}
