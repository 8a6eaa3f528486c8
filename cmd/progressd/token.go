package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/internal/auth"
)

func newToken() *cobra.Command {
	var (
		secret, sub string
		admin       bool
		ttl         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "token --sub USER [--admin] [--ttl 1h]",
		Short: "Mint a token signed with the server's secret (prints it alone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			t, err := auth.Mint(secret, sub, admin, ttl, time.Now())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), t)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&secret, "auth-secret", "", "the server's --auth-secret (or PROGRESSD_AUTH_SECRET)")
	f.StringVar(&sub, "sub", "", "user id the token stands for")
	f.BoolVar(&admin, "admin", false, "let the token do anything")
	f.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	return cmd
}
