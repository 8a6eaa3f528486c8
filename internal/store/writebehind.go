package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

const (
	// DefaultFlushInterval is how often WriteBehind writes pending
	// snapshots when NewWriteBehind is given an interval ≤ 0.
	DefaultFlushInterval = time.Second
	// flushChunk bounds one Save: a flush of many jobs becomes several
	// short transactions, so readers queued behind a single-connection
	// database wait for one chunk, not for the whole backlog.
	flushChunk = 256
	// minFlushTimeout is the least time one background flush may take
	// before it is abandoned and retried at the next tick.
	minFlushTimeout = 10 * time.Second
)

// WriteBehind sits between the progress path and a durable Store. A job
// reports progress many times a second; writing each report would make the
// database the bottleneck of every reply. WriteBehind writes state changes
// and terminal snapshots before Save returns (durable) and keeps only the
// newest intermediate snapshot of each job, writing all of them in one batch
// every interval. A crash loses at most one interval of intermediate
// progress, never a state change.
//
// Readers never see older data than was reported: Get and List overlay the
// snapshots still waiting to be written. Since the Store applies a snapshot
// only over a lower seq, writes racing each other cannot make a job go back.
//
// All methods are safe for concurrent use. WriteBehind starts one goroutine,
// which Close stops. It does not close the Store it wraps: the owner does,
// after Close.
type WriteBehind struct {
	db       Store
	interval time.Duration
	log      *slog.Logger

	// flushMu makes flushes one at a time, so a snapshot is in at most one
	// write and Flush, once it returns, has seen every earlier flush end.
	// Lock order: flushMu, then mu; mu is never held during a database call.
	flushMu sync.Mutex

	mu       sync.Mutex
	pending  map[string]progress.Snapshot // newest unwritten snapshot per job
	inflight map[string]progress.Snapshot // the batch being written now
	closed   bool

	stop      chan struct{}
	done      chan struct{}
	cancel    context.CancelFunc // aborts a background flush when Close runs out of time
	closeOnce sync.Once

	batches, written, durable, coalesced, failures atomic.Uint64

	failing bool // the last background flush failed; guarded by flushMu

	// Group commit of durable saves (commit): while one transaction is
	// written, the saves that come meanwhile gather in next, written
	// together by one of their callers as the next transaction.
	commitMu   sync.Mutex
	committing bool
	next       *commitGroup

	// The last write that failed, until one succeeds: Ready reports it.
	healthMu   sync.Mutex
	writeErr   error
	writeErrAt time.Time
	now        func() time.Time
}

// WriteErrorWindow is how long a failed write keeps Ready failing when no
// write is tried after it. Any write that succeeds ends it at once, and
// every failed one (the background flush retries pending snapshots each
// interval) starts it again; the window only matters when nothing is left
// to write, so that a node taken out of a load balancer for a failed write
// is tried again instead of staying out for ever.
const WriteErrorWindow = 30 * time.Second

// WriteBehindStats are WriteBehind's counters since it was made, for metrics.
type WriteBehindStats struct {
	Batches   uint64 // Save calls that wrote pending snapshots (background, Flush, Close)
	Written   uint64 // snapshots passed to a successful Save, durable ones included
	Durable   uint64 // durable saves that succeeded
	Coalesced uint64 // snapshots replaced by a newer one of the same job before being written
	Failures  uint64 // failed Saves, batches and durable saves alike
	Pending   int    // jobs whose newest snapshot is not yet written (waiting or being written)
}

// NewWriteBehind returns a WriteBehind in front of db that writes pending
// snapshots every interval (DefaultFlushInterval if ≤ 0), and starts its
// flushing goroutine. log may be nil.
func NewWriteBehind(db Store, interval time.Duration, log *slog.Logger) *WriteBehind {
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &WriteBehind{
		db:       db,
		interval: interval,
		log:      log,
		pending:  map[string]progress.Snapshot{},
		inflight: map[string]progress.Snapshot{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		cancel:   cancel,
		now:      time.Now,
	}
	go w.loop(ctx)
	return w
}

// Save records s. With durable set, s is written before Save returns, and
// any older pending snapshot of the job is dropped; callers set it for
// creation-adjacent state changes and terminal snapshots. Otherwise s waits
// for the next flush, replacing any older pending snapshot of its job.
//
// If a durable write fails, s is kept as pending, so later flushes retry
// it, and the error is returned. After Close every Save is durable, so
// nothing reported during shutdown is lost.
func (w *WriteBehind) Save(ctx context.Context, s progress.Snapshot, durable bool) error {
	one := []progress.Snapshot{s}
	if durable {
		return w.SaveMany(ctx, nil, one)
	}
	return w.SaveMany(ctx, one, nil)
}

// SaveMany is Save for many snapshots at once, of different jobs: those in
// pending wait for the next flush, those in durable are written in one
// transaction before SaveMany returns. The error is the durable write's;
// every snapshot of it is then kept as pending, so later flushes retry
// it.
func (w *WriteBehind) SaveMany(ctx context.Context, pending, durable []progress.Snapshot) error {
	w.mu.Lock()
	if w.closed {
		durable = append(durable, pending...)
	} else {
		for _, s := range pending {
			w.addPending(s)
		}
	}
	w.mu.Unlock()
	if len(durable) == 0 {
		return nil
	}

	err := w.commit(ctx, durable)
	if err != nil {
		w.failures.Add(1)
		w.mu.Lock()
		for _, s := range durable {
			w.addPending(s)
		}
		w.mu.Unlock()
		if len(durable) == 1 {
			return fmt.Errorf("store: durable save of job %s seq %d (kept for retry): %w", durable[0].JobID, durable[0].Seq, err)
		}
		return fmt.Errorf("store: durable save of %d jobs (kept for retry): %w", len(durable), err)
	}
	w.durable.Add(uint64(len(durable)))
	w.written.Add(uint64(len(durable)))
	w.mu.Lock()
	for _, s := range durable {
		if p, ok := w.pending[s.JobID]; ok && p.Seq <= s.Seq {
			delete(w.pending, s.JobID)
			w.coalesced.Add(1)
		}
	}
	w.mu.Unlock()
	return nil
}

// commitGroup is the durable saves written in one transaction.
type commitGroup struct {
	snaps   map[string]progress.Snapshot // the newest of each job
	lead    chan struct{}                // closed: one waiter may write the group
	done    chan struct{}                // closed once written; err is then set
	claimed bool                         // a caller is writing it; guarded by commitMu
	err     error
}

// commitTimeout bounds the write of a group, which its callers share:
// none of their contexts may cut it short for the others.
const commitTimeout = 10 * time.Second

// commit writes snaps to the database before it returns, in one
// transaction with the durable saves of other callers that came while
// the previous one was being written (group commit): under concurrent
// state changes — every job's start and end — SQLite pays one
// transaction for several instead of one each, and a lone save is
// written at once, as before. Two snapshots of one job in a group are
// written as the newer (the store keeps the highest seq anyway).
func (w *WriteBehind) commit(ctx context.Context, snaps []progress.Snapshot) error {
	w.commitMu.Lock()
	g := w.next
	if g == nil {
		g = &commitGroup{snaps: make(map[string]progress.Snapshot, len(snaps)), lead: make(chan struct{}), done: make(chan struct{})}
		w.next = g
	}
	for _, s := range snaps {
		if p, ok := g.snaps[s.JobID]; !ok || p.Seq < s.Seq {
			g.snaps[s.JobID] = s
		}
	}
	if !w.committing {
		w.committing = true
		close(g.lead)
	}
	w.commitMu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-g.lead:
	}
	w.commitMu.Lock()
	if g.claimed {
		w.commitMu.Unlock()
		<-g.done
		return g.err
	}
	g.claimed = true
	w.next = nil // later saves gather in a new group
	w.commitMu.Unlock()

	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	g.err = w.db.Save(wctx, slices.Collect(maps.Values(g.snaps)))
	w.noteWrite(g.err)
	close(g.done)

	w.commitMu.Lock()
	if w.next != nil {
		close(w.next.lead) // its callers wait: one of them writes it
	} else {
		w.committing = false
	}
	w.commitMu.Unlock()
	return g.err
}

// addPending keeps s if it is the newest snapshot of its job not yet
// written or being written. w.mu must be held.
func (w *WriteBehind) addPending(s progress.Snapshot) {
	if f, ok := w.inflight[s.JobID]; ok && f.Seq >= s.Seq {
		w.coalesced.Add(1)
		return
	}
	if p, ok := w.pending[s.JobID]; ok {
		w.coalesced.Add(1)
		if p.Seq >= s.Seq {
			return
		}
	}
	// A copy: the caller's snapshot may be shared with the live snapshot
	// store and the broker while it waits here.
	w.pending[s.JobID] = s.Clone()
}

// Flush writes every pending snapshot now. When it returns nil, every
// snapshot given to Save before Flush was called is in the database.
func (w *WriteBehind) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	return w.flushLocked(ctx)
}

// flushLocked moves pending to inflight, writes it in chunks, and puts back
// whatever was not written, unless Save has since recorded a newer
// snapshot of that job. w.flushMu must be held.
func (w *WriteBehind) flushLocked(ctx context.Context) error {
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	w.inflight, w.pending = w.pending, w.inflight
	batch := make([]progress.Snapshot, 0, len(w.inflight))
	for _, s := range w.inflight {
		batch = append(batch, s)
	}
	w.mu.Unlock()
	// In id order: ids are time-ordered, so are the rows in a SQLite
	// file, and a chunk of neighbours rewrites a few pages where a chunk
	// in map order rewrites one page per job, each appended to the WAL
	// again by every chunk that touches it: half the CPU of a flush of
	// 3,000 jobs (10.4–11.0 against 22.6–24.6 µs a job, BenchmarkFlushOrder).
	slices.SortFunc(batch, func(a, b progress.Snapshot) int { return strings.Compare(a.JobID, b.JobID) })

	var err error
	written := 0
	for written < len(batch) {
		chunk := batch[written:min(written+flushChunk, len(batch))]
		err = w.db.Save(ctx, chunk)
		w.noteWrite(err)
		if err != nil {
			w.failures.Add(1)
			break
		}
		w.batches.Add(1)
		w.written.Add(uint64(len(chunk)))
		written += len(chunk)
	}

	w.mu.Lock()
	for _, s := range batch[written:] {
		if p, ok := w.pending[s.JobID]; !ok || p.Seq < s.Seq {
			w.pending[s.JobID] = s
		} else {
			w.coalesced.Add(1)
		}
	}
	clear(w.inflight)
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("store: flush %d of %d pending snapshots (kept for retry): %w", len(batch)-written, len(batch), err)
	}
	return nil
}

// loop flushes every interval until Close. A failed flush keeps its
// snapshots pending and is retried at the next tick.
func (w *WriteBehind) loop(ctx context.Context) {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.backgroundFlush(ctx)
		}
	}
}

func (w *WriteBehind) backgroundFlush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(w.interval, minFlushTimeout))
	defer cancel()
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if err := w.flushLocked(ctx); err != nil {
		// One line per interval while the database is down; the metric
		// carries the count.
		w.log.Warn("write-behind flush failed; will retry",
			"err", err, "pending", w.Stats().Pending, "retry_in", w.interval)
		w.failing = true
		return
	}
	if w.failing {
		w.failing = false
		w.log.Info("write-behind flush recovered")
	}
}

// Close stops the flushing goroutine, waits for it, and writes what is
// pending. If ctx ends first, the write in progress is abandoned and Close
// returns an error saying how much was not written. Calling Close again,
// from any goroutine, flushes again and is otherwise harmless.
func (w *WriteBehind) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.stop)
	})
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done // the flush in progress now returns promptly
	}
	w.cancel()
	if err := w.Flush(ctx); err != nil {
		return fmt.Errorf("store: close write-behind: %w", err)
	}
	return nil
}

// Stats returns the counters.
func (w *WriteBehind) Stats() WriteBehindStats {
	w.mu.Lock()
	pending := len(w.pending)
	for id := range w.inflight {
		if _, ok := w.pending[id]; !ok {
			pending++
		}
	}
	w.mu.Unlock()
	return WriteBehindStats{
		Batches:   w.batches.Load(),
		Written:   w.written.Load(),
		Durable:   w.durable.Load(),
		Coalesced: w.coalesced.Load(),
		Failures:  w.failures.Load(),
		Pending:   pending,
	}
}

// Create creates the job in the database; creation is always durable.
func (w *WriteBehind) Create(ctx context.Context, s progress.Snapshot) error {
	err := w.db.Create(ctx, s)
	if !errors.Is(err, ErrExists) {
		w.noteWrite(err)
	}
	return err
}

// CreateKeyed is Create with an idempotency key (Store.CreateKeyed).
func (w *WriteBehind) CreateKeyed(ctx context.Context, k IdempotencyKey, expiredBefore time.Time) (IdempotencyKey, error) {
	held, err := w.db.CreateKeyed(ctx, k, expiredBefore)
	if !errors.Is(err, ErrExists) && !errors.Is(err, ErrKeyTaken) {
		w.noteWrite(err)
	}
	return held, err
}

// ExpireKeys deletes a batch of old idempotency keys (Store.ExpireKeys).
func (w *WriteBehind) ExpireKeys(ctx context.Context, before time.Time, limit int) (int, error) {
	n, err := w.db.ExpireKeys(ctx, before, limit)
	w.noteWrite(err)
	return n, err
}

// Get returns the newest snapshot of job id: the stored one, or the one
// waiting to be written if its seq is higher. Memory is read before the
// database: a snapshot that leaves memory is written before it does, so one
// of the two reads sees it.
func (w *WriteBehind) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	w.mu.Lock()
	mem, ok := w.newest(id)
	w.mu.Unlock()
	s, err := w.db.Get(ctx, id)
	if err != nil {
		return progress.Snapshot{}, err
	}
	if ok && mem.Seq > s.Seq {
		return mem.Clone(), nil
	}
	return s, nil
}

// Delete deletes a finished job (Store.Delete), forgetting any write of
// it still waiting, so a flush cannot bring it back (Save skips missing
// jobs anyway).
func (w *WriteBehind) Delete(ctx context.Context, id string) error {
	w.forget(id)
	err := w.db.Delete(ctx, id)
	if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotFinished) {
		w.noteWrite(err)
	}
	return err
}

// Purge deletes a batch of old finished jobs (Store.Purge).
func (w *WriteBehind) Purge(ctx context.Context, before time.Time, limit int) ([]Deleted, error) {
	gone, err := w.db.Purge(ctx, before, limit)
	w.noteWrite(err)
	for _, d := range gone {
		w.forget(d.ID)
	}
	return gone, err
}

// PurgeBatchTime is the database's (PurgeTimer), or 0 if it has none.
func (w *WriteBehind) PurgeBatchTime() time.Duration {
	if t, ok := w.db.(PurgeTimer); ok {
		return t.PurgeBatchTime()
	}
	return 0
}

// Lapsing finds the jobs a sweep for stalls and abandoned jobs looks at
// (Store.Lapsing).
func (w *WriteBehind) Lapsing(ctx context.Context, q LapseQuery, act func([]string) error) error {
	return w.db.Lapsing(ctx, q, act)
}

func (w *WriteBehind) forget(id string) {
	w.mu.Lock()
	delete(w.pending, id)
	w.mu.Unlock()
}

// List returns a page from the database with each job replaced by its
// pending snapshot where that is newer. Filters apply to what is stored;
// state changes are written durably, so pending snapshots rarely differ in
// what List filters on.
func (w *WriteBehind) List(ctx context.Context, q progress.Query) ([]progress.Snapshot, string, error) {
	w.mu.Lock()
	mem := make(map[string]progress.Snapshot, len(w.pending)+len(w.inflight))
	for _, m := range []map[string]progress.Snapshot{w.pending, w.inflight} {
		for id := range m {
			mem[id], _ = w.newest(id)
		}
	}
	w.mu.Unlock()
	jobs, next, err := w.db.List(ctx, q)
	if err != nil {
		return nil, "", err
	}
	for i, s := range jobs {
		if m, ok := mem[s.JobID]; ok && m.Seq > s.Seq {
			jobs[i] = m.Clone()
		}
	}
	return jobs, next, nil
}

// newest returns the highest-seq snapshot of id held in memory. w.mu must
// be held.
func (w *WriteBehind) newest(id string) (progress.Snapshot, bool) {
	p, okp := w.pending[id]
	f, okf := w.inflight[id]
	switch {
	case okp && (!okf || p.Seq >= f.Seq):
		return p, true
	case okf:
		return f, true
	}
	return progress.Snapshot{}, false
}

// Ping reports whether the database answers.
func (w *WriteBehind) Ping(ctx context.Context) error { return w.db.Ping(ctx) }

// Ready is Ping, and fails too while writes fail: after a write to the
// database failed, until one succeeds (or WriteErrorWindow passes with no
// write tried). A database that answers reads but refuses every write (a
// full disk, a read-only file) must take the node out of rotation, since
// every change sent to it would be answered 503.
func (w *WriteBehind) Ready(ctx context.Context) error {
	if err := w.db.Ping(ctx); err != nil {
		return err
	}
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	if w.writeErr != nil && w.now().Sub(w.writeErrAt) < WriteErrorWindow {
		return fmt.Errorf("writes fail (last at %s): %w", w.writeErrAt.UTC().Format(time.RFC3339), w.writeErr)
	}
	return nil
}

// noteWrite records how a write to the database went, for Ready. A write
// abandoned because its caller went away says nothing about the database.
func (w *WriteBehind) noteWrite(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	if err == nil {
		w.writeErr = nil
		return
	}
	w.writeErr, w.writeErrAt = err, w.now()
}

// ChildTotals reads the durable totals of parent's children. Creates and
// state changes are written before Save returns, so they are current.
func (w *WriteBehind) ChildTotals(ctx context.Context, parent string) (progress.ChildTotals, error) {
	return w.db.ChildTotals(ctx, parent)
}

// ActiveChildProgress writes what is pending first, so the sum covers
// every report given to Save before it was called.
func (w *WriteBehind) ActiveChildProgress(ctx context.Context, parent string) (float64, error) {
	if err := w.Flush(ctx); err != nil {
		return 0, err
	}
	return w.db.ActiveChildProgress(ctx, parent)
}

// DirtyGroups passes through to the database.
func (w *WriteBehind) DirtyGroups(ctx context.Context, before time.Time, limit int) ([]GroupMark, error) {
	return w.db.DirtyGroups(ctx, before, limit)
}

// CleanGroup passes through to the database.
func (w *WriteBehind) CleanGroup(ctx context.Context, parent string, version int64) error {
	return w.db.CleanGroup(ctx, parent, version)
}

// Projects passes through to the database: activity within a state is
// written behind, so last_activity_at may lag by one flush interval.
func (w *WriteBehind) Projects(ctx context.Context, q progress.ProjectQuery) ([]progress.ProjectSummary, string, error) {
	return w.db.Projects(ctx, q)
}

// SaveLogs passes through to the database (package logs writes lines
// behind itself); a failure counts for Ready like any failed write.
func (w *WriteBehind) SaveLogs(ctx context.Context, batch []progress.JobLogs, keep int) error {
	err := w.db.SaveLogs(ctx, batch, keep)
	w.noteWrite(err)
	return err
}

// ReadLogs passes through to the database.
func (w *WriteBehind) ReadLogs(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error) {
	return w.db.ReadLogs(ctx, job, after, limit)
}
