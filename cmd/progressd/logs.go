package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/progressd/progressd/client"
)

// followLogs prints job id's lines after after live (`progressd logs -f`)
// until the job ends; Ctrl-C stops it. A gap in n (lines dropped before
// they could be read) is said on errOut.
func followLogs(ctx context.Context, c *client.Client, id string, after int64, w, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	last := after
	_, err := c.FollowLogs(ctx, id, after, func(l client.LogLine) {
		if last >= 0 && l.N > last+1 {
			fmt.Fprintf(errOut, "lines %d to %d were dropped before they could be printed\n", last+1, l.N-1)
		}
		last = l.N
		writeLogLine(w, l)
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // interrupted
	}
	if err != nil {
		return fmt.Errorf("follow the log lines of job %s: %w", id, err)
	}
	return nil
}
