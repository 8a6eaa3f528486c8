package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/client"
)

// maxStdinLine bounds one JSON line of `report --stdin`: a report the
// server takes is far smaller.
const maxStdinLine = 256 << 10

// line is one line of `report --stdin`, read by the reader goroutine.
type line struct {
	n    int // from 1
	text []byte
	err  error // reading stdin failed; the last item
}

// reportStdin sends the JSON lines of in, each a report with its
// "job_id" (defaultJob when it has none), in batches (POST
// /api/v1/reports): whatever has been read while the previous batch was
// on its way goes in the next, so a fast producer sends up to 1,000
// reports a request and a slow one gets each report sent at once. A line
// that is not a report, and a report the server refuses, is named on
// stderr and the rest go on; the command then exits 2. With asJSON each
// report's outcome is printed as a line of JSON, in order.
func reportStdin(cmd *cobra.Command, c *client.Client, in io.Reader, defaultJob string, asJSON bool) error {
	lines := make(chan line, client.MaxBatchReports)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), maxStdinLine)
		for n := 1; sc.Scan(); n++ {
			select {
			case lines <- line{n: n, text: bytes.Clone(sc.Bytes())}:
			case <-stop:
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case lines <- line{err: fmt.Errorf("read stdin: %w", err)}:
			case <-stop:
			}
		}
	}()
	refused := 0
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	say := func(n int, job string, seq uint64, err error) {
		if err != nil {
			refused++
			fmt.Fprintf(errOut, "line %d: job %s: %s\n", n, termSafe(job), termSafe(err.Error()))
		}
		if asJSON {
			r := map[string]any{"line": n, "job_id": job, "seq": seq}
			if err != nil {
				r = map[string]any{"line": n, "job_id": job, "error": err.Error()}
			}
			b, _ := json.Marshal(r)
			fmt.Fprintln(out, termSafe(string(b)))
		}
	}
	for first, ok := <-lines; ok; first, ok = <-lines {
		batch := []line{first}
	drain:
		for len(batch) < client.MaxBatchReports {
			select {
			case l, ok := <-lines:
				if !ok {
					break drain
				}
				batch = append(batch, l)
			default:
				break drain
			}
		}
		// Each line's outcome, told in line order once the batch is back.
		type outcome struct {
			n   int
			job string
			seq uint64
			err error
		}
		var (
			outcomes []outcome
			reports  []client.JobReport
			at       []int // the outcome of each report
		)
		for _, l := range batch {
			if l.err != nil {
				return cmdErrorAfter(refused, l.err)
			}
			if len(bytes.TrimSpace(l.text)) == 0 {
				continue
			}
			var r client.JobReport
			d := json.NewDecoder(bytes.NewReader(l.text))
			d.DisallowUnknownFields()
			if err := d.Decode(&r); err != nil {
				outcomes = append(outcomes, outcome{n: l.n, err: fmt.Errorf("not a report {\"job_id\": …, \"progress\": …}: %w", err)})
				continue
			}
			if r.JobID == "" {
				r.JobID = defaultJob
			}
			if r.JobID == "" {
				outcomes = append(outcomes, outcome{n: l.n, err: fmt.Errorf("no \"job_id\" (and no JOB argument or $PROGRESSD_JOB_ID for it)")})
				continue
			}
			at = append(at, len(outcomes))
			outcomes = append(outcomes, outcome{n: l.n, job: r.JobID})
			reports = append(reports, r)
		}
		if len(reports) > 0 {
			results, err := c.ReportBatch(cmd.Context(), reports)
			if err != nil {
				return cmdErrorAfter(refused, fmt.Errorf("send reports (lines %d–%d): %w", outcomes[at[0]].n, outcomes[at[len(at)-1]].n, err))
			}
			for i, r := range results {
				outcomes[at[i]].seq, outcomes[at[i]].err = r.Seq, r.Err
			}
		}
		for _, o := range outcomes {
			say(o.n, o.job, o.seq, o.err)
		}
	}
	if refused > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%d reports were refused (named above); the others were applied", refused)}
	}
	return nil
}

// cmdErrorAfter is err, noting the reports refused before it.
func cmdErrorAfter(refused int, err error) error {
	if refused > 0 {
		return fmt.Errorf("%w (and %d reports were refused before, named above)", err, refused)
	}
	return err
}
