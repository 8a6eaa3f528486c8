package logs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// DB is the durable record of log lines (store.Store implements it).
type DB interface {
	SaveLogs(ctx context.Context, batch []progress.JobLogs, keep int) error
	ReadLogs(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error)
}

// Writer writes log lines behind to the durable store: lines wait at most
// one interval and are written in one transaction per flush, so a stage
// printing thousands of lines a second costs the database one write a
// second. A job's pending lines are bounded by keep (older ones would be
// trimmed by the database anyway). FlushJob writes one job's lines at
// once, for a job that ends; Close writes everything, and after it every
// Add writes before it returns, so nothing acknowledged is lost to a
// shutdown. A failed flush keeps its lines for the next one.
//
// All methods are safe for concurrent use. Writer starts one goroutine
// with the first line it is given (a node whose jobs print nothing runs
// none), which Close stops.
type Writer struct {
	db       DB
	keep     int
	interval time.Duration
	log      *slog.Logger

	flushMu sync.Mutex // one flush at a time; taken before mu
	mu      sync.Mutex
	pending map[string][]progress.LogLine
	closed  bool
	started bool

	stop, done chan struct{}
	closeOnce  sync.Once
}

// NewWriter returns a Writer in front of db keeping keep lines per job
// and writing every interval. log may be nil.
func NewWriter(db DB, keep int, interval time.Duration, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{db: db, keep: keep, interval: interval, log: log,
		pending: map[string][]progress.LogLine{}, stop: make(chan struct{}), done: make(chan struct{})}
	return w
}

// Add queues a job's numbered lines. After Close it writes them before it
// returns.
func (w *Writer) Add(ctx context.Context, job string, lines []progress.LogLine) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.db.SaveLogs(ctx, []progress.JobLogs{{JobID: job, Lines: lines}}, w.keep)
	}
	w.put(job, lines)
	if !w.started {
		w.started = true
		go w.loop()
	}
	w.mu.Unlock()
	return nil
}

// put appends lines to the job's pending ones, keeping the newest keep.
// w.mu must be held.
func (w *Writer) put(job string, lines []progress.LogLine) {
	p := w.pending[job]
	if len(lines) >= w.keep {
		p = append(p[:0], lines[len(lines)-w.keep:]...)
	} else {
		if over := len(p) + len(lines) - w.keep; over > 0 {
			p = p[:copy(p, p[over:])] // in place: a flood reuses one array
		}
		p = append(p, lines...)
	}
	w.pending[job] = p
}

// FlushJob writes the job's pending lines now.
func (w *Writer) FlushJob(ctx context.Context, job string) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	lines, ok := w.pending[job]
	delete(w.pending, job)
	w.mu.Unlock()
	if !ok {
		return nil
	}
	return w.write(ctx, []progress.JobLogs{{JobID: job, Lines: lines}})
}

// Flush writes every pending line now.
func (w *Writer) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	batch := make([]progress.JobLogs, 0, len(w.pending))
	for job, lines := range w.pending {
		batch = append(batch, progress.JobLogs{JobID: job, Lines: lines})
	}
	clear(w.pending)
	w.mu.Unlock()
	return w.write(ctx, batch)
}

// write saves batch, putting its lines back before newer pending ones
// when that fails. w.flushMu must be held.
func (w *Writer) write(ctx context.Context, batch []progress.JobLogs) error {
	err := w.db.SaveLogs(ctx, batch, w.keep)
	if err == nil {
		return nil
	}
	w.mu.Lock()
	for _, j := range batch {
		newer := w.pending[j.JobID]
		delete(w.pending, j.JobID)
		w.put(j.JobID, j.Lines)
		w.put(j.JobID, newer)
	}
	w.mu.Unlock()
	return fmt.Errorf("logs: write log lines of %d jobs (kept for retry): %w", len(batch), err)
}

func (w *Writer) loop() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(w.interval, 10*time.Second))
			if err := w.Flush(ctx); err != nil {
				w.log.Warn("writing log lines failed; will retry", "err", err, "retry_in", w.interval)
			}
			cancel()
		}
	}
}

// Close stops the goroutine and writes what is pending. Calling it again
// flushes again.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		started := w.started
		w.mu.Unlock()
		close(w.stop)
		if started {
			<-w.done
		}
	})
	return w.Flush(ctx)
}
