package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rivo/uniseg"
	"golang.org/x/term"

	"github.com/progressd/progressd/client"
)

// maxTail bounds --tail: more lines than a screen holds cannot be redrawn
// in place (the terminal scrolls what the cursor can no longer reach).
const maxTail = 100

// logsGrace is how long watch --logs waits, once the job has ended, for
// its log follower to pass on the job's last lines (it ends by itself as
// soon as it has: the lines are durable by then, one read away).
const logsGrace = 10 * time.Second

// followLogLines follows job id's log lines into v on its own goroutine,
// starting with the newest opts.tail kept ones, and returns a function
// that ends the follower and waits for it: at once when watching failed
// (watchErr), else once the follower has passed on the job's last line
// (bounded by logsGrace). It returns the follower's failure, if any, other
// than being ended: watch then goes on with the bar alone, and says so.
func followLogLines(ctx context.Context, c *client.Client, id string, v jobView, opts watchOptions) func(watchErr error) error {
	after := int64(-1) // every kept line; fewer when the job has more than the tail
	if p, err := c.Logs(ctx, id, -1, 1); err == nil && p.Last-int64(opts.tail) >= p.First {
		after = p.Last - int64(opts.tail)
	}
	ctx, cancel := context.WithCancel(ctx)
	ended := make(chan error, 1)
	go func() {
		_, err := c.FollowLogs(ctx, id, after, v.log)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil
		}
		ended <- err
	}()
	return func(watchErr error) error {
		defer cancel()
		if watchErr != nil {
			cancel()
		}
		select {
		case err := <-ended:
			if err != nil {
				return fmt.Errorf("could not follow the log lines of job %s: %w", id, err)
			}
			return nil
		case <-time.After(logsGrace):
			cancel()
			<-ended
			return fmt.Errorf("the last log lines of job %s did not come within %s; see progressd logs %s", id, logsGrace, id)
		}
	}
}

// lockedView makes a view safe for the two goroutines of watch --logs:
// the job's snapshots come from one, its log lines from the other.
type lockedView struct {
	mu sync.Mutex
	v  jobView
}

func (l *lockedView) update(s client.Snapshot) { l.mu.Lock(); defer l.mu.Unlock(); l.v.update(s) }
func (l *lockedView) log(line client.LogLine)  { l.mu.Lock(); defer l.mu.Unlock(); l.v.log(line) }
func (l *lockedView) done(s client.Snapshot)   { l.mu.Lock(); defer l.mu.Unlock(); l.v.done(s) }
func (l *lockedView) abort()                   { l.mu.Lock(); defer l.mu.Unlock(); l.v.abort() }

// terminalWidth returns out's width in columns and whether out is a
// terminal (80 when it is one whose size cannot be read).
func terminalWidth(out io.Writer) (int, bool) {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0, false
	}
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
		return w, true
	}
	return 80, true
}

// logRedrawEvery is the least time between two redraws of the bar and its
// lines: a stage printing thousands of lines a second costs a redraw per
// 50 ms, not one per line, and nobody reads faster.
const logRedrawEvery = 50 * time.Millisecond

// logBarView draws, on a terminal, the bar on one line and the job's
// newest log lines under it, and redraws that block in place (cursor up,
// clear each line, write it) as snapshots and lines come. Every line is
// cut to the terminal's width, so none wraps and the cursor arithmetic
// holds. It is safe for concurrent use; a redraw waits at most
// logRedrawEvery after the change that asked for it.
type logBarView struct {
	out   io.Writer
	tail  int
	width int

	mu       sync.Mutex
	bar      string   // the bar's line
	lines    []string // the newest log lines, oldest first, at most tail
	shown    int      // log lines drawn under the bar; -1 before the first draw
	lastDraw time.Time
	timer    *time.Timer // a redraw to come; nil if none
	ended    bool
}

func newLogBarView(out io.Writer, tail, width int) *logBarView {
	return &logBarView{out: out, tail: tail, width: width, shown: -1}
}

func (v *logBarView) update(s client.Snapshot) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.bar = barLine(s)
	v.changedLocked()
}

func (v *logBarView) log(l client.LogLine) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.lines) == v.tail {
		v.lines = append(v.lines[:0], v.lines[1:]...)
	}
	v.lines = append(v.lines, formatLogLine(l))
	v.changedLocked()
}

func (v *logBarView) done(s client.Snapshot) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.bar = barLine(s)
	v.endLocked()
	fmt.Fprintln(v.out, finishedLine(s))
}

func (v *logBarView) abort() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endLocked()
}

// endLocked draws the block a last time and leaves the cursor under it.
func (v *logBarView) endLocked() {
	if v.timer != nil {
		v.timer.Stop()
		v.timer = nil
	}
	v.ended = true
	v.drawLocked()
	fmt.Fprintln(v.out)
}

// changedLocked redraws now, or arms a redraw for when logRedrawEvery has
// passed since the last one.
func (v *logBarView) changedLocked() {
	if v.ended || v.timer != nil {
		return
	}
	wait := logRedrawEvery - time.Since(v.lastDraw)
	if wait <= 0 {
		v.drawLocked()
		return
	}
	v.timer = time.AfterFunc(wait, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.timer == nil || v.ended {
			return // stopped meanwhile
		}
		v.timer = nil
		v.drawLocked()
	})
}

// drawLocked writes the block from its first line: back up over what the
// last draw wrote, then each line cleared and written anew.
func (v *logBarView) drawLocked() {
	var b strings.Builder
	if v.shown > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.shown)
	}
	b.WriteString("\r\x1b[K")
	b.WriteString(fitWidth(v.bar, v.width))
	for _, l := range v.lines {
		b.WriteString("\n\r\x1b[K")
		b.WriteString(fitWidth(l, v.width))
	}
	v.shown = len(v.lines)
	v.lastDraw = time.Now()
	_, _ = io.WriteString(v.out, b.String())
}

// barLine is the bar's line of watch --logs: percent, a 30-cell bar,
// then stage, ETA and message.
func barLine(s client.Snapshot) string {
	const cells = 30
	full := int(math.Round(s.Progress * cells))
	line := fmt.Sprintf("%3d%% |%s%s|", percentDone(s.Progress), strings.Repeat("█", full), strings.Repeat("░", cells-full))
	if d := describeJob(s); d != "" {
		line += " " + d
	}
	return line
}

// fitWidth cuts s (already made safe for a terminal) to fewer than width
// columns, ending it with "…" when cut: a line as wide as the terminal
// would move the cursor to the next line on some terminals and spoil the
// redraw.
func fitWidth(s string, width int) string {
	if width < 2 || uniseg.StringWidth(s) < width {
		return s
	}
	var b strings.Builder
	used, state := 0, -1
	for rest := s; rest != ""; {
		var cluster string
		var w int
		cluster, rest, w, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if used+w > width-2 {
			break
		}
		b.WriteString(cluster)
		used += w
	}
	b.WriteString("…")
	return b.String()
}
