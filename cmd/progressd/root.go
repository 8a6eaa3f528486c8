package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// exitError carries a specific exit status (watch exits 1 for a failed job).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 2
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "progressd",
		Short:         "Live progress of long-running jobs, in every browser watching them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newToken(), newBench(), newSubmit(), newWatch(), newReport(),
		newCreate(), newGet(), newList(), newCancel(), newLogs(), newDelete(), newVersion())
	return root
}

// bindEnv lets every flag of cmd be set as PROGRESSD_<FLAG> (dashes become
// underscores); a flag given on the command line wins.
func bindEnv(cmd *cobra.Command) error {
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := "PROGRESSD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}
