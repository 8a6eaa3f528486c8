package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/client"
)

func newSubmit() *cobra.Command {
	var (
		cf                clientFlags
		project, pipeline string
		params            []string
		watch, plain      bool
	)
	cmd := &cobra.Command{
		Use:   "submit --project P --pipeline NAME [--param k=v]… [--watch]",
		Short: "Create a pipeline job; print its id alone on the first line",
		Long: `Create a job that runs a pipeline on the server and print its id alone on the
first line of stdout. Each --param k=v passes one declared param; the value is
everything after the first '=' and reaches the command's argv as it is,
never through a shell. With --watch, follow the job like "progressd watch"
(and exit as it does).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			req := client.CreateRequest{Project: project, Pipeline: pipeline}
			if req.Params, err = parseParams(params); err != nil {
				return err
			}
			job, err := c.Create(cmd.Context(), req)
			if err != nil {
				return cf.explain(fmt.Errorf("submit: %w", err))
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), termSafe(job.JobID)); err != nil {
				return err
			}
			if !watch {
				return nil
			}
			return followJob(cmd.Context(), c, job.JobID, cmd.OutOrStdout(), watchOptions{plain: plain})
		},
	}
	cf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&project, "project", "", "project the job belongs to (required)")
	f.StringVar(&pipeline, "pipeline", "", "pipeline to run (required)")
	f.StringArrayVar(&params, "param", nil, "a param as key=value; repeat for more")
	f.BoolVar(&watch, "watch", false, "follow the job until it finishes")
	f.BoolVar(&plain, "plain", false, "with --watch: print lines instead of a progress bar")
	_ = cmd.MarkFlagRequired("project")
	_ = cmd.MarkFlagRequired("pipeline")
	return cmd
}

// parseParams reads key=value flags; the value may hold anything,
// '=' included.
func parseParams(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--param %q must be key=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--param %s is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}
