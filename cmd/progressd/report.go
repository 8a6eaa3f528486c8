package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/client"
)

func newReport() *cobra.Command {
	var (
		cf                          clientFlags
		progress, current, total    float64
		stage, message, state, errs string
		asJSON, stdin               bool
	)
	cmd := &cobra.Command{
		Use:   "report [JOB] [--progress 0.5] [--stage S] [--message M] [--state succeeded] | report --stdin",
		Short: "Report a job's progress, from a shell script",
		Long: `Send one progress report for a job. JOB defaults to $PROGRESSD_JOB_ID, which
progressd sets for the commands of the pipelines it runs. Prints nothing on
success unless --json is given; exits 2 if the server rejects the report (for
example 409 once the job has finished).

With --stdin, reports are read from standard input, one JSON object a line,
each with its "job_id" (JOB when it has none) and the fields of a report
({"job_id": "…", "progress": 0.5, "message": "…"}), and sent in batches: a
loop that prints a line per iteration costs one request per batch, not per
line. A line the server refuses is named on stderr and the others are still
sent; the command then exits 2. With --json each line's outcome is printed
({"line", "job_id", "seq"} or {"line", "job_id", "error"}).`,
		Example: `  progressd report "$JOB" --stage encode --progress 0.5 --message "frame 600/1200"
  progressd report "$JOB" --current 600 --total 1200
  progressd report "$JOB" --state succeeded
  progressd report "$JOB" --state failed --error "encoder crashed"
  my-worker | progressd report --stdin`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := os.Getenv("PROGRESSD_JOB_ID")
			if len(args) == 1 {
				id = args[0]
			}
			fl := cmd.Flags()
			if stdin {
				for _, name := range []string{"progress", "current", "total", "stage", "message", "error", "state"} {
					if fl.Changed(name) {
						return fmt.Errorf("--%s cannot go with --stdin: put it in the JSON lines", name)
					}
				}
				c, err := cf.client(cmd)
				if err != nil {
					return err
				}
				return cf.explain(reportStdin(cmd, c, cmd.InOrStdin(), id, asJSON))
			}
			if id == "" {
				return errors.New("name the job: progressd report JOB …")
			}
			var r client.Report
			if fl.Changed("progress") {
				r.Progress = &progress
			}
			if fl.Changed("current") {
				r.Current = &current
			}
			if fl.Changed("total") {
				r.Total = &total
			}
			if fl.Changed("stage") {
				r.Stage = &stage
			}
			if fl.Changed("message") {
				r.Message = &message
			}
			if fl.Changed("error") {
				r.Error = &errs
			}
			if fl.Changed("state") {
				st := client.State(state)
				r.State = &st
			}
			if reflect.ValueOf(r).IsZero() {
				return errors.New("nothing to report: give --progress, --current/--total, --stage, --message, --state or --error")
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			snap, err := c.Report(cmd.Context(), id, r)
			if err != nil {
				return cf.explain(fmt.Errorf("report job %s: %w", id, err))
			}
			if !asJSON {
				return nil
			}
			data, err := json.Marshal(snap)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), termSafe(string(data)))
			return err
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.Float64Var(&progress, "progress", 0, "fraction done, 0 to 1 (of the stage, when the job has stages)")
	f.Float64Var(&current, "current", 0, "items done (with --total)")
	f.Float64Var(&total, "total", 0, "items in all")
	f.StringVar(&stage, "stage", "", "the stage the report is about; the stages before it count as done")
	f.StringVar(&message, "message", "", "a line of text to show with the progress")
	f.StringVar(&state, "state", "", "running, succeeded, failed or canceled")
	f.StringVar(&errs, "error", "", "what went wrong (with --state failed)")
	f.BoolVar(&asJSON, "json", false, "print the snapshot the report produced (with --stdin: each line's outcome)")
	f.BoolVar(&stdin, "stdin", false, "read reports from standard input, one JSON object a line, and send them in batches")
	return cmd
}
