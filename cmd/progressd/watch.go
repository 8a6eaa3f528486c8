package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/progressd/progressd/client"
)

// clientFlags are the flags of every command that talks to a server.
type clientFlags struct {
	server, token string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", client.DefaultServer, "progressd server URL (or PROGRESSD_SERVER)")
	cmd.Flags().StringVar(&f.token, "token", "", "API token, from `progressd token` (or PROGRESSD_TOKEN)")
}

// client reads PROGRESSD_SERVER and PROGRESSD_TOKEN for flags not given
// and returns a client. Only these two come from the environment: a
// stage's command runs with PROGRESSD_STAGE and other variables set, which
// must not turn into flags of a `progressd report` it calls.
func (f *clientFlags) client(cmd *cobra.Command) (*client.Client, error) {
	for name, v := range map[string]*string{"server": &f.server, "token": &f.token} {
		if env, ok := os.LookupEnv("PROGRESSD_" + strings.ToUpper(name)); ok && !cmd.Flags().Changed(name) {
			*v = env
		}
	}
	return client.New(f.server, f.token)
}

// explain adds what to do to a 401: the server wants a token this command
// did not bring, or a valid one instead of the one it brought.
func (f *clientFlags) explain(err error) error {
	var e *client.Error
	if !errors.As(err, &e) || (e.Status != http.StatusUnauthorized && e.Code != "unauthorized") ||
		strings.Contains(e.Message, "PROGRESSD_TOKEN") {
		return err
	}
	if f.token == "" {
		return fmt.Errorf("%w; pass --token or set PROGRESSD_TOKEN (mint one with progressd token)", err)
	}
	return fmt.Errorf("%w; pass a valid --token or PROGRESSD_TOKEN (mint a fresh one with progressd token)", err)
}

func newWatch() *cobra.Command {
	var (
		cf   clientFlags
		opts watchOptions
	)
	cmd := &cobra.Command{
		Use:   "watch JOB [--logs [--tail N]]",
		Short: "Follow a job live; exit 0 when it succeeds, 1 when it fails or is canceled",
		Long: `Follow a job live over the server's WebSocket endpoint. On a terminal it draws
a progress bar with the stage, percent and ETA; otherwise (or with --plain) it
prints a line whenever the state, stage, whole percent or message changes.
With --logs it also follows the job's log lines: on a terminal the last
--tail lines are drawn under the bar, redrawn in place; otherwise each line is
printed as it comes ("N STREAM [STAGE] TEXT", as progressd logs prints them).
Exit status: 0 succeeded, 1 failed or canceled, 2 could not follow the job.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(cmd)
			if err != nil {
				return err
			}
			opts.errOut = cmd.ErrOrStderr()
			return cf.explain(followJob(cmd.Context(), c, args[0], cmd.OutOrStdout(), opts))
		},
	}
	cf.add(cmd)
	cmd.Flags().BoolVar(&opts.plain, "plain", false, "print lines instead of a progress bar, even on a terminal")
	cmd.Flags().BoolVar(&opts.logs, "logs", false, "also show the job's log lines (the last --tail under the bar on a terminal)")
	cmd.Flags().IntVar(&opts.tail, "tail", 10, "with --logs: how many of the newest log lines to show (1-100)")
	return cmd
}

// watchOptions say how watch shows a job.
type watchOptions struct {
	plain  bool      // lines even on a terminal
	logs   bool      // follow the job's log lines too
	tail   int       // with logs: the newest lines shown (under the bar, or first)
	errOut io.Writer // with logs: where a log follower's failure is said
}

// followJob watches job id until it finishes, drawing on out, and turns the
// outcome into the exit status.
func followJob(ctx context.Context, c *client.Client, id string, out io.Writer, opts watchOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if opts.logs && (opts.tail < 1 || opts.tail > maxTail) {
		return &exitError{code: 2, err: fmt.Errorf("--tail %d: give a number of lines from 1 to %d", opts.tail, maxTail)}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	width, tty := terminalWidth(out)
	tty = tty && !opts.plain
	var v jobView = &lineView{out: out}
	switch {
	case tty && opts.logs:
		v = newLogBarView(out, opts.tail, width) // safe for concurrent use
	case opts.logs:
		v = &lockedView{v: v}
	case tty:
		v = newBarView(out)
	}
	var logsDone func(error) error
	if opts.logs {
		logsDone = followLogLines(ctx, c, id, v, opts)
	}
	final, err := c.Watch(ctx, id, v.update)
	if logsDone != nil {
		// Every line before the last one: the follower ends by itself once
		// the job has ended and its last line was passed on.
		if lerr := logsDone(err); lerr != nil && err == nil {
			fmt.Fprintf(opts.errOut, "progressd: %s\n", termSafe(lerr.Error()))
		}
	}
	if err != nil {
		v.abort()
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return &exitError{code: 130, err: fmt.Errorf("interrupted; job %s goes on on the server", id)}
		}
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	v.done(final)
	switch final.State {
	case client.Succeeded:
		return nil
	default:
		msg := string(final.State)
		if final.Error != nil && *final.Error != "" && *final.Error != msg {
			msg += ": " + *final.Error
		}
		return &exitError{code: 1, err: fmt.Errorf("job %s %s", termSafe(id), termSafe(msg))}
	}
}

// jobView shows a job's snapshots (and, with --logs, its log lines) as
// they come.
type jobView interface {
	update(client.Snapshot)
	log(client.LogLine)
	done(client.Snapshot) // the terminal snapshot, already passed to update
	abort()               // Watch failed
}

// describeJob is the part of a line after the percent: stage, ETA,
// message, made safe for a terminal.
func describeJob(s client.Snapshot) string {
	var parts []string
	if c := childrenSummary(s); c != "" {
		parts = append(parts, c)
	}
	if s.Stage != "" {
		st := s.Stage
		for i, x := range s.Stages {
			if x.Name == s.Stage {
				st = fmt.Sprintf("%s (%d/%d)", s.Stage, i+1, len(s.Stages))
			}
		}
		parts = append(parts, st)
	}
	if s.MaxAttempts > 1 {
		parts = append(parts, fmt.Sprintf("attempt %d of %d", s.Attempt, s.MaxAttempts))
	}
	if s.RetryAt != nil && !s.State.Terminal() {
		parts = append(parts, "retrying in "+formatETA(max(0, time.Until(s.RetryAt.Time).Seconds())))
	}
	if s.Stalled {
		parts = append(parts, "stalled: no report for "+formatETA(time.Since(s.LastReport().Time).Seconds()))
	}
	if s.ETASeconds != nil && !s.State.Terminal() {
		parts = append(parts, "ETA "+formatETA(*s.ETASeconds))
	}
	if s.Message != "" {
		parts = append(parts, s.Message)
	}
	return termSafe(strings.Join(parts, " · "))
}

// childrenSummary is a parent's one-line account of its children,
// "182/200 done · 3 failed" (the announced count when it is higher than
// the created one), or "" for a job without children.
func childrenSummary(s client.Snapshot) string {
	c := s.Children
	if c == nil {
		return ""
	}
	done := c.Succeeded + c.Failed + c.Canceled
	line := fmt.Sprintf("%d/%d done", done, max(c.Total, s.ExpectedChildren))
	if c.Failed > 0 {
		line += fmt.Sprintf(" · %d failed", c.Failed)
	}
	if c.Canceled > 0 {
		line += fmt.Sprintf(" · %d canceled", c.Canceled)
	}
	return line
}

func formatETA(sec float64) string {
	d := time.Duration(math.Round(sec)) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

func percentDone(p float64) int { return int(math.Floor(p*100 + 1e-9)) }

// finishedLine is the last line watch prints, made safe for a terminal.
func finishedLine(s client.Snapshot) string {
	return termSafe(finishedText(s))
}

func finishedText(s client.Snapshot) string {
	took := ""
	if s.StartedAt != nil && s.FinishedAt != nil {
		took = " in " + s.FinishedAt.Sub(s.StartedAt.Time).Round(100*time.Millisecond).String()
	}
	if c := childrenSummary(s); c != "" {
		took += " (children: " + c + ")"
	}
	switch s.State {
	case client.Succeeded:
		return fmt.Sprintf("job %s succeeded%s", s.JobID, took)
	default:
		msg := ""
		if s.Error != nil {
			msg = ": " + *s.Error
		}
		return fmt.Sprintf("job %s %s at %d%%%s%s", s.JobID, s.State, percentDone(s.Progress), took, msg)
	}
}

// lineView prints one line per visible change, for logs and pipes.
type lineView struct {
	out  io.Writer
	last string
}

func (l *lineView) update(s client.Snapshot) {
	line := fmt.Sprintf("%-9s %3d%%", termSafe(string(s.State)), percentDone(s.Progress))
	if d := describeJob(s); d != "" {
		line += "  " + d
	}
	// The ETA changes with every update; only state, stage, percent and
	// message make a new line.
	key := fmt.Sprintf("%s|%d|%s|%s|%s", s.State, percentDone(s.Progress), s.Stage, s.Message, childrenSummary(s))
	if key == l.last {
		return
	}
	l.last = key
	fmt.Fprintln(l.out, line)
}

func (l *lineView) log(line client.LogLine) { fmt.Fprintln(l.out, formatLogLine(line)) }
func (l *lineView) done(s client.Snapshot)  { fmt.Fprintln(l.out, finishedLine(s)) }
func (l *lineView) abort()                  {}

// barView draws a progress bar on a terminal.
type barView struct {
	out io.Writer
	pb  *progressbar.ProgressBar
}

// barSteps is the bar's resolution: tenths of a percent.
const barSteps = 1000

func newBarView(out io.Writer) *barView {
	return &barView{out: out, pb: progressbar.NewOptions(barSteps,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(false), // the server's ETA is better informed
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "█", SaucerPadding: "░", BarStart: "|", BarEnd: "|"}),
	)}
}

func (b *barView) update(s client.Snapshot) {
	d := describeJob(s)
	if r := []rune(d); len(r) > 60 {
		d = string(r[:59]) + "…"
	}
	b.pb.Describe(d)
	_ = b.pb.Set(int(math.Round(s.Progress * barSteps)))
}

func (b *barView) log(client.LogLine) {} // watch without --logs follows none

func (b *barView) done(s client.Snapshot) {
	if s.State == client.Succeeded {
		_ = b.pb.Finish()
	} else {
		_ = b.pb.Exit()
	}
	fmt.Fprintln(b.out)
	fmt.Fprintln(b.out, finishedLine(s))
}

func (b *barView) abort() {
	_ = b.pb.Exit()
	fmt.Fprintln(b.out)
}
