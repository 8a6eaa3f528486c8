package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/internal/auth"
)

func newToken() *cobra.Command {
	var (
		secret, secretFile, sub, job string
		admin                        bool
		ttl                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --sub USER [--admin | --job ID] [--ttl 1h]",
		Short: "Mint a token signed with the server's secret (prints it alone)",
		Long: `Mint a token signed with the server's secret and print it alone.

With --job the token may only read, report on and watch that one job (the
kind a pipeline stage gets as PROGRESSD_TOKEN): hand it to a worker that
reports on a job, so a leaked token exposes nothing else of its user.`,
		Example: `  progressd token --sub alice --ttl 8h
  progressd token --sub alice --job 0195522a-... --ttl 2h   # for a worker`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			if err := readSecretFile(&secret, secretFile); err != nil {
				return err
			}
			if err := auth.CheckSecret(secret); err != nil {
				return err // no server would take it
			}
			var t string
			var err error
			switch {
			case job != "" && admin:
				return fmt.Errorf("--job and --admin do not go together: a job-scoped token is never an admin token")
			case job != "":
				t, err = auth.MintForJob(secret, sub, job, ttl, time.Now())
			default:
				t, err = auth.Mint(secret, sub, admin, ttl, time.Now())
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&secret, "auth-secret", "", "the server's --auth-secret (or PROGRESSD_AUTH_SECRET)")
	f.StringVar(&secretFile, "auth-secret-file", "", "read the secret from this file, like serve's --auth-secret-file")
	f.StringVar(&sub, "sub", "", "user id the token stands for")
	f.BoolVar(&admin, "admin", false, "let the token do anything")
	f.StringVar(&job, "job", "", "limit the token to this job: read, report on and watch it, nothing else")
	f.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	return cmd
}
