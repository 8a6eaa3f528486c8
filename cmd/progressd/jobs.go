package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/client"
)

// The job commands (create, get, list, cancel) print for people by default
// and, with --output json, the API's own JSON for scripts: a snapshot, or
// for list the page {"jobs": [...], "next_cursor": ...}.

// outputFlag is the --output flag of the job commands.
type outputFlag struct{ format string }

func (o *outputFlag) add(cmd *cobra.Command, human string) {
	cmd.Flags().StringVarP(&o.format, "output", "o", human, fmt.Sprintf("output format: %s or json", human))
}

// check refuses an unknown format before anything is sent.
func (o *outputFlag) check(human string) error {
	if o.format != human && o.format != "json" {
		return fmt.Errorf("--output %q: use %s or json", o.format, human)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.format == "json" }

// prepare checks a job command's --output and returns its client.
func prepare(cmd *cobra.Command, cf *clientFlags, out *outputFlag, human string) (*client.Client, error) {
	if err := out.check(human); err != nil {
		return nil, err
	}
	return cf.client(cmd)
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}

func newCreate() *cobra.Command {
	var (
		cf                      clientFlags
		out                     outputFlag
		project, pipeline, name string
		stages, params, tags    []string
	)
	cmd := &cobra.Command{
		Use:   "create --project P [--name N] [--tag T]… [--stage NAME[:WEIGHT]]… [--pipeline NAME [--param k=v]…]",
		Short: "Create a job; print its id alone (or its snapshot with --output json)",
		Long: `Create a job. Without --pipeline it waits for reports from a worker of yours
(progressd report, an SDK, or plain HTTP); --stage declares its stages in
order, each with an optional weight (its share of the overall progress).
With --pipeline the server runs it, as "progressd submit" does. --name is the
title shown for it; --tag labels it (repeat for more; tags never change), so
"progressd list --tag T" and the channel tag:T find it.`,
		Example: `  JOB=$(progressd create --project imports --name "November invoices" --tag customer-42 --stage fetch --stage load:8)
  progressd report "$JOB" --stage load --progress 0.5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check("text"); err != nil {
				return err
			}
			req := client.CreateRequest{Project: project, Pipeline: pipeline, Name: name, Tags: tags}
			var err error
			if req.Params, err = parseParams(params); err != nil {
				return err
			}
			if req.Stages, err = parseStages(stages); err != nil {
				return err
			}
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			snap, err := c.Create(cmd.Context(), req)
			if err != nil {
				return cf.explain(fmt.Errorf("create: %w", err))
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), snap)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), termSafe(snap.JobID))
			return err
		},
	}
	cf.add(cmd)
	out.add(cmd, "text")
	f := cmd.Flags()
	f.StringVar(&project, "project", "", "project the job belongs to (required)")
	f.StringVar(&name, "name", "", "the job's title (at most 200 characters), shown instead of a generic label")
	f.StringArrayVar(&tags, "tag", nil, "a tag (letters, digits, ': _ . -'; at most 16 tags); repeat for more")
	f.StringArrayVar(&stages, "stage", nil, "a stage as NAME or NAME:WEIGHT, in order; repeat for more")
	f.StringVar(&pipeline, "pipeline", "", "a pipeline for the server to run")
	f.StringArrayVar(&params, "param", nil, "with --pipeline: a param as key=value; repeat for more")
	_ = cmd.MarkFlagRequired("project")
	return cmd
}

// parseStages reads NAME or NAME:WEIGHT flags. The weight is after the
// last colon, so a name may hold colons when a weight is given.
func parseStages(specs []string) ([]client.StageSpec, error) {
	var out []client.StageSpec
	for _, s := range specs {
		st := client.StageSpec{Name: s}
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			w, err := strconv.ParseFloat(s[i+1:], 64)
			if err != nil || !(w > 0) || w > 1e12 {
				return nil, fmt.Errorf("--stage %q: the weight after ':' must be a number > 0, as in --stage encode:8", s)
			}
			st.Name, st.Weight = s[:i], &w
		}
		if st.Name == "" {
			return nil, fmt.Errorf("--stage %q: the stage needs a name", s)
		}
		out = append(out, st)
	}
	return out, nil
}

func newGet() *cobra.Command {
	return newOneJobCommand("get", "Show a job's latest snapshot", "", (*client.Client).Get, writeSnapshot)
}

func newCancel() *cobra.Command {
	return newOneJobCommand("cancel", "Cancel a job (a command it runs gets SIGTERM)",
		"Cancel a job. Exits 2 if the job has already finished (409 job_finished).",
		(*client.Client).Cancel, func(w io.Writer, s client.Snapshot) error {
			_, err := fmt.Fprintf(w, "job %s %s at %d%%\n", termSafe(s.JobID), s.State, percentDone(s.Progress))
			return err
		})
}

func newDelete() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "delete JOB",
		Short: "Delete a finished job and its log lines",
		Long:  "Delete a finished job and its log lines. Exits 2 if the job has not finished (409 job_not_finished): cancel it first.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			if err := c.Delete(cmd.Context(), args[0]); err != nil {
				return cf.explain(fmt.Errorf("delete job %s: %w", args[0], err))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s deleted\n", termSafe(args[0]))
			return err
		},
	}
	cf.add(cmd)
	return cmd
}

// newOneJobCommand is a command that makes one call about one job and
// prints the snapshot it returns: as text, or as JSON with --output json.
func newOneJobCommand(name, short, long string,
	call func(*client.Client, context.Context, string) (client.Snapshot, error),
	text func(io.Writer, client.Snapshot) error) *cobra.Command {
	var (
		cf  clientFlags
		out outputFlag
	)
	cmd := &cobra.Command{
		Use:   name + " JOB",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := prepare(cmd, &cf, &out, "text")
			if err != nil {
				return err
			}
			snap, err := call(c, cmd.Context(), args[0])
			if err != nil {
				return cf.explain(fmt.Errorf("%s job %s: %w", name, args[0], err))
			}
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), snap)
			}
			return text(cmd.OutOrStdout(), snap)
		},
	}
	cf.add(cmd)
	out.add(cmd, "text")
	return cmd
}

func newList() *cobra.Command {
	var (
		cf                   clientFlags
		out                  outputFlag
		project, cursor, tag string
		states               []string
		limit                int
		all                  bool
	)
	cmd := &cobra.Command{
		Use:   "list [--project P] [--tag T] [--state running,queued] [--limit N] [--all]",
		Short: "List the jobs you may see, newest first",
		Long: `List jobs, newest first, as a table (or the API's page as JSON with
--output json). One page at a time: the command for the next page is printed
on stderr; --all follows every page (with --output json, one page object
per line).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := prepare(cmd, &cf, &out, "table")
			if err != nil {
				return err
			}
			o := client.ListOptions{Project: project, Tag: tag, Limit: limit, Cursor: cursor}
			for _, s := range states {
				o.States = append(o.States, client.State(s))
			}
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			if !out.json() {
				fmt.Fprintln(tw, "ID\tPROJECT\tSTATE\tPROGRESS\tSTAGE\tUPDATED\tMESSAGE")
			}
			for {
				page, err := c.List(cmd.Context(), o)
				if err != nil {
					return cf.explain(fmt.Errorf("list: %w", err))
				}
				if out.json() {
					if err := writeJSON(w, page); err != nil {
						return err
					}
				} else {
					for _, s := range page.Jobs {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d%%\t%s\t%s\t%s\n", termSafe(s.JobID), termSafe(s.Project), s.State,
							percentDone(s.Progress), dash(termSafe(s.Stage)), s.UpdatedAt.Format(time.DateTime), dash(termSafe(clip(s.Message, 60))))
					}
				}
				if page.NextCursor == nil {
					break
				}
				if !all {
					fmt.Fprintf(cmd.ErrOrStderr(), "more: add --cursor %s (or --all)\n", termSafe(*page.NextCursor))
					break
				}
				o.Cursor = *page.NextCursor
			}
			return tw.Flush()
		},
	}
	cf.add(cmd)
	out.add(cmd, "table")
	f := cmd.Flags()
	f.StringVar(&project, "project", "", "only jobs of this project")
	f.StringVar(&tag, "tag", "", "only jobs with this tag")
	f.StringSliceVar(&states, "state", nil, "only jobs in these states (queued, running, succeeded, failed, canceled), comma-separated")
	f.IntVar(&limit, "limit", 0, "jobs per page (the server's default if 0; at most 500)")
	f.StringVar(&cursor, "cursor", "", "start at this page (printed by the previous one)")
	f.BoolVar(&all, "all", false, "follow every page")
	return cmd
}

func newLogs() *cobra.Command {
	var (
		cf     clientFlags
		out    outputFlag
		after  int64
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs JOB [--after N] [-f]",
		Short: "Print a job's kept log lines; with -f, follow them until the job ends",
		Long: `Print the job's kept log lines after line N (all kept ones without --after),
one a line as "N STREAM [STAGE] TEXT", with the characters a terminal would
act on escaped; with --output json, each page the API returns. Says so on
stderr when lines after N were already dropped (only the newest are kept).
With -f, keep printing new lines as they come (like kubectl logs -f) until
the job has ended and its last line is printed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := prepare(cmd, &cf, &out, "text")
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if follow {
				return cf.explain(followLogs(cmd.Context(), c, args[0], after, w, cmd.ErrOrStderr()))
			}
			for {
				page, err := c.Logs(cmd.Context(), args[0], after, 0)
				if err != nil {
					return cf.explain(fmt.Errorf("logs of job %s: %w", args[0], err))
				}
				if page.Truncated {
					fmt.Fprintf(cmd.ErrOrStderr(), "lines after %d were already dropped; the first kept line is %d\n", after, page.First)
				}
				if out.json() {
					if err := writeJSON(w, page); err != nil {
						return err
					}
				}
				for _, l := range page.Lines {
					if !out.json() {
						writeLogLine(w, l)
					}
					after = l.N
				}
				if len(page.Lines) == 0 || after >= page.Last {
					return nil
				}
			}
		},
	}
	cf.add(cmd)
	out.add(cmd, "text")
	cmd.Flags().Int64Var(&after, "after", -1, "only lines after this one (the N of the last line you have)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow new lines until the job ends")
	return cmd
}

// writeLogLine prints l as "N STREAM [STAGE] TEXT", escaped for a terminal.
func writeLogLine(w io.Writer, l client.LogLine) { fmt.Fprintln(w, formatLogLine(l)) }

// formatLogLine is l as "N STREAM [STAGE] TEXT", escaped for a terminal.
func formatLogLine(l client.LogLine) string {
	stage := ""
	if l.Stage != "" {
		stage = " [" + termSafe(l.Stage) + "]"
	}
	return fmt.Sprintf("%d %s%s %s", l.N, termSafe(l.Stream), stage, termSafe(l.Text))
}

// writeSnapshot prints a snapshot as aligned "field value" lines.
func writeSnapshot(w io.Writer, s client.Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	line("job", termSafe(s.JobID))
	line("name", termSafe(s.Name))
	line("project", termSafe(s.Project))
	line("owner", termSafe(s.Owner))
	line("pipeline", termSafe(s.Pipeline))
	line("tags", termSafe(strings.Join(s.Tags, ", ")))
	line("state", fmt.Sprintf("%s %d%%", s.State, percentDone(s.Progress)))
	if len(s.Stages) > 0 {
		parts := make([]string, len(s.Stages))
		for i, st := range s.Stages {
			parts[i] = fmt.Sprintf("%s %s %d%%", termSafe(st.Name), st.State, percentDone(st.Progress))
		}
		line("stages", strings.Join(parts, ", "))
	}
	line("stage", termSafe(s.Stage))
	if s.Current != nil {
		c := strconv.FormatFloat(*s.Current, 'f', -1, 64)
		if s.Total != nil {
			c += "/" + strconv.FormatFloat(*s.Total, 'f', -1, 64)
		}
		line("count", c)
	}
	line("message", termSafe(s.Message))
	if s.ETASeconds != nil {
		line("eta", formatETA(*s.ETASeconds))
	}
	line("created", s.CreatedAt.Format(time.RFC3339))
	if s.StartedAt != nil {
		line("started", s.StartedAt.Format(time.RFC3339))
	}
	line("updated", s.UpdatedAt.Format(time.RFC3339))
	if s.FinishedAt != nil {
		line("finished", s.FinishedAt.Format(time.RFC3339))
	}
	if s.Error != nil {
		line("error", termSafe(*s.Error))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to n characters for a table cell.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
