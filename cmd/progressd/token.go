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
		scope                        []string
		admin, readOnly              bool
		ttl                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --sub USER [--admin | --job ID | --scope job:ID,logs:ID] [--read-only] [--ttl 1h]",
		Short: "Mint a token signed with the server's secret (prints it alone)",
		Long: `Mint a token signed with the server's secret and print it alone.

With --scope the token opens only what its entries name, of the user's own
jobs: job:<id>, children:<id>, logs:<id>, tag:<t>, project:<p> (literally,
no wildcards); it never creates, cancels or deletes. Add --read-only for a
token that cannot report either: the one a backend hands to an end user's
browser. --job ID is short for --scope job:ID,logs:ID (the token a pipeline
stage gets as PROGRESSD_TOKEN): hand it to a worker that reports on a job,
so a leaked token exposes nothing else of its user.`,
		Example: `  progressd token --sub alice --ttl 8h
  progressd token --sub alice --job 0195522a-... --ttl 2h   # for a worker
  progressd token --sub alice --scope job:0195522a-...,logs:0195522a-... --read-only --ttl 15m   # for a browser`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			if err := readSecretFile(&secret, "auth-secret", secretFile); err != nil {
				return err
			}
			if err := auth.CheckSecret(secret); err != nil {
				return err // no server would take it
			}
			o := auth.Options{Admin: admin, ReadOnly: readOnly}
			switch {
			case job != "" && cmd.Flags().Changed("scope"):
				return fmt.Errorf("--job ID is short for --scope job:ID,logs:ID: give one of them")
			case job != "":
				o.Scope = []string{"job:" + job, "logs:" + job}
			case cmd.Flags().Changed("scope"):
				o.Scope = scope
				if o.Scope == nil {
					o.Scope = []string{} // --scope "": refused below as empty
				}
			}
			if o.Admin && o.Scope != nil {
				return fmt.Errorf("--admin does not go with --job or --scope: a scoped token is never an admin token")
			}
			t, err := auth.MintWith(secret, sub, o, ttl, time.Now())
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
	f.StringVar(&job, "job", "", "limit the token to this job: read, report on and watch it, nothing else (--scope job:ID,logs:ID)")
	f.StringSliceVar(&scope, "scope", nil, "limit the token to these comma-separated entries: job:<id>, children:<id>, logs:<id>, tag:<t>, project:<p>")
	f.BoolVar(&readOnly, "read-only", false, "the token may read and watch, never report, create, cancel or delete")
	f.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	return cmd
}
