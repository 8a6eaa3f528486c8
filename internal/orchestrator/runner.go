package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

const (
	// reportInterval spaces the reports of one stage: a command printing
	// faster has its lines merged, newest values winning, so a chatty
	// command costs at most about 100 reports a second.
	reportInterval = 10 * time.Millisecond
	// watchInterval is how often a running job checks that it was not
	// canceled on another node (a cancel here stops it at once).
	watchInterval = time.Second
	// reportTimeout bounds one report to the jobs service.
	reportTimeout = 10 * time.Second
)

// pipelineArgs are a River job's args: the progressd job id. Pipeline is
// there only so River can ask the worker for the job's time bound without
// reading the snapshot; the worker reads pipeline and params from the
// snapshot.
type pipelineArgs struct {
	JobID    string `json:"job_id"`
	Pipeline string `json:"pipeline"`
}

func (pipelineArgs) Kind() string { return "progressd_pipeline" }

type worker struct {
	river.WorkerDefaults[pipelineArgs]
	o *Orchestrator
}

func (w *worker) Work(ctx context.Context, job *river.Job[pipelineArgs]) error {
	return w.o.work(ctx, job)
}

// Timeout bounds one attempt for River: the sum of the stage timeouts and
// their kill grace, plus a minute; no bound (-1) if a stage has none.
func (w *worker) Timeout(job *river.Job[pipelineArgs]) time.Duration {
	p, ok := w.o.pipelines.Get(job.Args.Pipeline)
	if !ok {
		return -1
	}
	var total time.Duration
	for _, st := range p.Stages {
		if st.Timeout <= 0 {
			return -1
		}
		total += st.Timeout + w.o.cfg.KillGrace + time.Second
	}
	return total + time.Minute
}

// work runs one attempt of a job: its stages in order, each a process.
func (o *Orchestrator) work(ctx context.Context, job *river.Job[pipelineArgs]) error {
	id := job.Args.JobID
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !o.register(id, cancel) {
		// A rescued job whose earlier attempt still runs here: let that
		// one finish, then this one finds the job finished.
		return river.JobSnooze(time.Minute)
	}
	defer o.unregister(id)
	if o.fenced() {
		// The job queue is unreachable: start nothing (see shared.go).
		return o.fencedResult(ctx, job, o.log.With("job", id, "attempt", job.Attempt))
	}
	if out, ok := heldOutcome(job.Metadata); ok {
		// The stages ran; only their outcome is left to record (outcome.go).
		return o.settle(ctx, job, out, heldResult(out), o.log.With("job", id, "attempt", job.Attempt))
	}

	snap, err := o.cfg.Jobs.Get(ctx, id)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		o.log.Warn("queued job no longer exists; dropping it", "job", id)
		return river.JobCancel(err)
	case err != nil:
		return fmt.Errorf("read job %s: %w", id, err) // retried by River
	case snap.State.Terminal():
		return nil // canceled while queued
	}
	plan, err := o.plan(snap)
	if err != nil {
		return o.settle(ctx, job, outcome{State: progress.Failed, Error: tidy(err.Error(), progress.MaxMessageBytes)},
			river.JobCancel(err), o.log.With("job", id, "attempt", job.Attempt))
	}

	var wg sync.WaitGroup
	wg.Go(func() { o.watch(runCtx, id, cancel) })
	defer wg.Wait()
	defer cancel(nil) // ends watch before wg.Wait

	log := o.log.With("job", id, "pipeline", snap.Pipeline, "attempt", job.Attempt, "max_attempts", job.MaxAttempts)
	log.Info("job started")
	start := time.Now()
	err = o.runStages(runCtx, job, plan, attemptNote(job))
	return o.finish(ctx, runCtx, job, err, log.With("took", time.Since(start).Round(time.Millisecond)))
}

// finish reports how an attempt ended and tells River what to do next.
// ctx is River's context for the attempt, runCtx the one its commands ran
// under.
func (o *Orchestrator) finish(ctx, runCtx context.Context, job *river.Job[pipelineArgs], err error, log *slog.Logger) error {
	id := job.Args.JobID
	if err == nil {
		return o.settle(ctx, job, outcome{State: progress.Succeeded}, nil, log)
	}
	if _, fenced := errors.AsType[fencedError](context.Cause(runCtx)); fenced {
		// Nothing is reported: the job is the rescuing node's, or runs
		// again here (see shared.go).
		log.Warn("job stopped: this node lost its connection to the job queue")
		o.metrics.attempt("fenced")
		return o.fencedResult(ctx, job, log)
	}
	if errors.Is(err, errJobEnded) || errors.Is(context.Cause(runCtx), errJobEnded) || o.ended(id) {
		log.Info("job canceled; its commands were stopped")
		o.metrics.attempt("canceled")
		return river.JobCancel(errJobEnded)
	}
	if ctx.Err() != nil {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// River is stopping (a shutdown): hand the job back.
			log.Info("job handed back at shutdown")
			o.metrics.attempt("handed_back")
			o.report(id, progress.Report{Message: ptr("the server stopped while this job ran; it will run again from its first stage when the server is back")})
			return ctx.Err() // River makes it available again without using up an attempt
		}
		err = fmt.Errorf("the job ran past its overall time limit (%s)", (&worker{o: o}).Timeout(job))
	}
	if job.Attempt < job.MaxAttempts {
		delay := (&retryPolicy{base: o.cfg.RetryBackoff}).delay(job.Attempt)
		log.Warn("job attempt failed; retrying", "err", err, "in", delay)
		o.metrics.attempt("retried")
		// The job stays running and its bar where it was; retry_at and
		// error say why it waits, until the next attempt starts.
		o.report(id, progress.Report{
			Message: ptr(tidy(fmt.Sprintf("attempt %d of %d failed: %v; retrying in %s",
				job.Attempt, job.MaxAttempts, err, delay), progress.MaxMessageBytes)),
			Retry: &progress.Retry{At: time.Now().Add(delay), Error: tidy(err.Error(), progress.MaxMessageBytes)},
		})
		return err
	}
	msg := err.Error()
	if job.MaxAttempts > 1 {
		msg = fmt.Sprintf("%s (attempt %d of %d; no attempts left)", msg, job.Attempt, job.MaxAttempts)
	}
	// River discards the row once the failure has landed: no attempts left.
	return o.settle(ctx, job, outcome{State: progress.Failed, Error: tidy(msg, progress.MaxMessageBytes)}, err, log)
}

// heldResult is what River is told once a held outcome lands: a success
// completes the row, a failure cancels it (no retry: the outcome is final).
func heldResult(out outcome) error {
	if out.State == progress.Succeeded {
		return nil
	}
	return river.JobCancel(errors.New(out.Error))
}

// ended reports whether job id is terminal (canceled, or finished by a
// report from elsewhere).
func (o *Orchestrator) ended(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	snap, err := o.cfg.Jobs.Get(ctx, id)
	return err == nil && snap.State.Terminal()
}

// plan is what one attempt runs: the pipeline and every stage's argv, and
// the job's owner, whom the stages' tokens act for.
type plan struct {
	p     *Pipeline
	argv  [][]string
	owner string
}

// plan checks the job still fits its pipeline (the server may have been
// restarted with another pipelines file since it was queued).
func (o *Orchestrator) plan(snap progress.Snapshot) (plan, error) {
	p, err := o.pipelines.lookup(snap.Pipeline)
	if err != nil {
		return plan{}, fmt.Errorf("pipeline %s is not defined in %s any more; submit the job again", snap.Pipeline, o.pipelines.Source())
	}
	names := make([]string, len(snap.Stages))
	for i, st := range snap.Stages {
		names[i] = st.Name
	}
	if !slices.EqualFunc(names, p.Stages, func(n string, st Stage) bool { return n == st.Name }) {
		return plan{}, fmt.Errorf("pipeline %s changed its stages since the job was queued; submit the job again", p.Name)
	}
	pl := plan{p: p, argv: make([][]string, len(p.Stages)), owner: snap.Owner}
	for i := range p.Stages {
		if pl.argv[i], err = p.Argv(i, snap.Params); err != nil {
			return plan{}, fmt.Errorf("pipeline %s changed its params since the job was queued: %v; submit the job again", p.Name, err)
		}
	}
	return pl, nil
}

// attemptNote is the message a job shows when an attempt starts: which
// attempt, and why there is another.
func attemptNote(job *river.Job[pipelineArgs]) string {
	why := ""
	if n := len(job.Errors); n > 0 {
		switch last := job.Errors[n-1].Error; {
		case last == orphanError:
			why = "the node running it stopped; "
		case strings.Contains(last, "rescued by JobRescuer"):
			why = "the node running it stopped responding; "
		}
	}
	if job.Attempt <= 1 && why == "" {
		return ""
	}
	return fmt.Sprintf("%sattempt %d of %d", why, job.Attempt, job.MaxAttempts)
}

// runStages runs the stages in order. It returns nil when all exited 0, the
// stage's error when one failed, or the cause when ctx ended.
func (o *Orchestrator) runStages(ctx context.Context, job *river.Job[pipelineArgs], pl plan, note string) error {
	id := job.Args.JobID
	for i := range pl.p.Stages {
		st := &pl.p.Stages[i]
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		r := progress.Report{Stage: &st.Name, Message: ptr("")}
		if i == 0 {
			// The attempt starts: its number, and the end of the wait
			// for it (retry_at and the last attempt's error clear).
			r.Message, r.Attempt, r.MaxAttempts = &note, job.Attempt, job.MaxAttempts
		}
		if o.report(id, r) == errJobEnded {
			return errJobEnded
		}
		env, err := o.stageEnv(id, pl.owner, st, job.Attempt)
		if err != nil {
			return err
		}
		s := newSink(o, id, st.Name)
		record := filepath.Join(o.runDir, strconv.FormatInt(job.ID, 10)+".pgid")
		c := &command{
			argv:    pl.argv[i],
			env:     env,
			timeout: st.Timeout,
			grace:   o.cfg.KillGrace,
			onLine: func(line []byte) {
				if r, ok := ParseLine(line); ok {
					s.put(r)
				} else {
					s.log(progress.StreamStdout, line)
				}
			},
			onCutLine: func(line []byte) { s.log(progress.StreamStdout, line) },
			onErrLine: func(line []byte) { s.log(progress.StreamStderr, line) },
			onStart:   func(pgid int) { o.recordGroup(record, pgid) },
			onEnd:     func() { _ = os.Remove(record) },
		}
		res := c.run(ctx)
		ended := s.close()
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if ended {
			return errJobEnded
		}
		if err := res.describe(st); err != nil {
			return err
		}
		// The stage is done even if it printed nothing.
		if o.report(id, progress.Report{Stage: &st.Name, Progress: ptr(1.0)}) == errJobEnded {
			return errJobEnded
		}
	}
	return nil
}

// stageEnv is what a stage's command finds in its environment beyond the
// server's own: which job and stage it is, and where to report, for
// commands that call `progressd report` (or the HTTP API) instead of
// printing progress. With auth on, that includes PROGRESSD_TOKEN: a token
// of the job's owner scoped to this one job (auth.MintForJob), minted for
// each stage attempt. It is never the owner's own token nor an admin one,
// because a stage runs arbitrary code and its environment can end up in
// logs: a leaked stage token can read and report on that job only.
func (o *Orchestrator) stageEnv(id, owner string, st *Stage, attempt int) ([]string, error) {
	env := []string{"PROGRESSD_JOB_ID=" + id, "PROGRESSD_STAGE=" + st.Name, "PROGRESSD_ATTEMPT=" + strconv.Itoa(attempt)}
	if o.cfg.ServerURL != "" {
		env = append(env, "PROGRESSD_SERVER="+o.cfg.ServerURL)
	}
	if o.cfg.AuthSecret != "" {
		token, err := auth.MintForJob(o.cfg.AuthSecret, owner, id, o.stageTokenTTL(st), time.Now())
		if err != nil {
			return nil, fmt.Errorf("stage %s: mint its PROGRESSD_TOKEN: %w", st.Name, err)
		}
		env = append(env, "PROGRESSD_TOKEN="+token)
	}
	return env, nil
}

const (
	// stageTokenMargin is added to a stage's timeout and kill grace for
	// its token's lifetime: reports sent just before the stage is stopped
	// must not fail for an expiry a moment earlier.
	stageTokenMargin = 5 * time.Minute
	// stageTokenMaxTTL is the lifetime of the token of a stage without a
	// timeout. A running command's environment cannot be refreshed, so the
	// token must outlive the stage; but a stage may run for ever, and a
	// token that never expired would work for ever once leaked. A day
	// covers the long jobs progressd is for and bounds the damage; a stage
	// that runs longer should declare a timeout, which its token then
	// covers.
	stageTokenMaxTTL = 24 * time.Hour
)

// stageTokenTTL is how long the token of one attempt of stage st lasts:
// the longest the stage can run (its timeout and the kill grace after it)
// plus a margin, or stageTokenMaxTTL for a stage without a timeout.
func (o *Orchestrator) stageTokenTTL(st *Stage) time.Duration {
	if st.Timeout <= 0 {
		return stageTokenMaxTTL
	}
	return st.Timeout + o.cfg.KillGrace + stageTokenMargin
}

// recordGroup writes down a running process group, so that if this
// process dies, the next start can kill what it left running (recover.go).
func (o *Orchestrator) recordGroup(path string, pgid int) {
	start, _ := procStartTime(pgid)
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %s\n", pgid, start), 0o640); err != nil {
		o.log.Warn("record running command", "path", path, "err", err)
	}
}

// watch cancels the attempt when the job becomes terminal elsewhere: a
// cancel on another node, or an admin marking it done. A cancel on this
// node cancels at once through Runner.Cancel.
func (o *Orchestrator) watch(ctx context.Context, id string, cancel context.CancelCauseFunc) {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if snap, err := o.cfg.Jobs.Get(ctx, id); err == nil && snap.State.Terminal() {
			cancel(errJobEnded)
			return
		}
	}
}

// report applies r to the job through the same path as an HTTP report. It
// returns errJobEnded if the job is terminal, and nil otherwise: a report
// the model rejects (a value out of range) or a store hiccup costs one
// update, not the job. A report of a state is tried three times over about
// a second and a half before it is given up. (A job's outcome goes through
// settle instead, which holds it until it lands.)
func (o *Orchestrator) report(id string, r progress.Report) error {
	tries := 1
	if r.State != nil {
		tries = 3
	}
	err := tryStore(tries, func(ctx context.Context) error {
		_, err := o.cfg.Jobs.Report(ctx, id, r)
		return err
	})
	var pe *progress.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, progress.ErrJobFinished):
		return errJobEnded
	case errors.As(err, &pe):
		o.log.Debug("report rejected", "job", id, "err", err)
	default:
		o.log.Warn("report failed", "job", id, "err", err)
	}
	return nil
}

// appendLines keeps a stage's log lines; like report, it returns
// errJobEnded if the job is terminal and otherwise nil (a store that
// fails costs the lines, which are logged as lost, not the job).
func (o *Orchestrator) appendLines(id string, lines []progress.LogLine) error {
	err := tryStore(1, func(ctx context.Context) error {
		_, err := o.cfg.Jobs.AppendLines(ctx, id, lines)
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, progress.ErrJobFinished):
		return errJobEnded
	}
	o.log.Warn("log lines could not be kept", "job", id, "lines", len(lines), "err", err)
	return nil
}

// tryStore calls call (with a reportTimeout context) up to tries times
// over about a second and a half, while it fails for a store that may be
// back in a moment; a verdict on the report itself (a *progress.Error, an
// unknown job) is returned at once.
func tryStore(tries int, call func(ctx context.Context) error) error {
	wait := 250 * time.Millisecond
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
		err := call(ctx)
		cancel()
		var pe *progress.Error
		if err == nil || try >= tries || errors.As(err, &pe) || errors.Is(err, jobs.ErrNotFound) {
			return err
		}
		time.Sleep(wait) // backoff between tries of a store that failed
		wait *= 4
	}
}

// fail marks the job failed with msg.
func (o *Orchestrator) fail(id, msg string) {
	msg = tidy(msg, progress.MaxMessageBytes)
	o.report(id, progress.Report{State: ptr(progress.Failed), Error: &msg})
}

// sink passes one stage's parsed lines to the jobs service: its progress
// reports, merged so that at most one goes every reportInterval (newest
// values winning), and its log lines (stdout that is not progress,
// stderr), in batches of whatever waited while the last batch was
// kept. Both go out on the sink's own goroutine, so a slow store never
// stalls reading the command's output. Lines are not held back for the
// report spacing: the goroutine takes them as fast as the store keeps
// them, so lines wait only while a batch is being kept. A report due goes
// before the lines waiting with it: it is often the line read last, and
// a viewer's bar should not wait for a thousand lines printed before it.
// At most maxSinkLines log lines wait; beyond that the oldest waiting are
// dropped and a line saying how many takes their place, so a stage that
// prints faster than lines can be kept costs bounded memory and nothing
// is lost from the numbering silently.
type sink struct {
	o     *Orchestrator
	id    string
	stage string

	mu      sync.Mutex
	pending progress.Report
	has     bool
	ended   bool // the job was terminal: stop the stage
	lines   []progress.LogLine
	bytes   int // of the waiting lines' text
	dropped int

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	// Only the sink's goroutine uses these.
	lastReport time.Time
	spare      []progress.LogLine // the last batch's slice, reused for the next
}

func newSink(o *Orchestrator, id, stage string) *sink {
	s := &sink{o: o, id: id, stage: stage, kick: make(chan struct{}, 1), done: make(chan struct{})}
	s.wg.Go(s.loop)
	return s
}

// put merges r into the pending report: each field takes the newest value.
func (s *sink) put(r progress.Report) {
	s.mu.Lock()
	p := &s.pending
	if r.Progress != nil {
		p.Progress = r.Progress
	}
	if r.Current != nil || r.Total != nil {
		// current and total go together, or a merge could pair a new
		// current with an old, smaller total.
		p.Current, p.Total = r.Current, r.Total
	}
	if r.Message != nil {
		p.Message = r.Message
	}
	s.has = true
	s.mu.Unlock()
	s.wake()
}

func (s *sink) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// maxSinkLines and maxSinkBytes bound the log lines waiting in a sink
// (the count and their text): enough for a stage that prints a burst of
// tens of thousands of short lines while the node is busy elsewhere
// (BenchmarkLogFlood: 100,000 lines in a quarter of a second), at most
// about 1.6 MiB a stage however long its lines.
const (
	maxSinkLines = 8 * progress.MaxLogLinesPerRequest
	maxSinkBytes = 1 << 20
)

// log queues a log line; line is valid only during the call.
func (s *sink) log(stream string, line []byte) {
	if len(line) > progress.MaxLogLineBytes+4 {
		line = line[:progress.MaxLogLineBytes+4] // enough to be cut with "…"
	}
	l := progress.LogLine{Stream: stream, Stage: s.stage, Text: string(line)}
	s.mu.Lock()
	for len(s.lines) > 0 && (len(s.lines) >= maxSinkLines || s.bytes+len(l.Text) > maxSinkBytes) {
		s.bytes -= len(s.lines[0].Text)
		s.lines = s.lines[1:] // the oldest waiting line goes
		s.dropped++
	}
	s.lines = append(s.lines, l)
	s.bytes += len(l.Text)
	wake := len(s.lines) == 1
	s.mu.Unlock()
	if wake {
		s.wake() // the goroutine takes every line waiting once woken
	}
}

func (s *sink) loop() {
	held := time.NewTimer(time.Hour)
	held.Stop()
	for {
		select {
		case <-s.kick:
		case <-held.C:
		case <-s.done:
			held.Stop()
			s.flush(true)
			return
		}
		if wait := s.flush(false); wait > 0 {
			held.Reset(wait)
		}
	}
}

// flush sends the pending report, if reportInterval has passed since the
// last (or final), and then the lines waiting. It returns how long until
// a report held back is due (0: none is).
func (s *sink) flush(final bool) time.Duration {
	now := time.Now()
	s.mu.Lock()
	r, report := s.pending, s.has
	var wait time.Duration
	if report && !final {
		if since := now.Sub(s.lastReport); since < reportInterval {
			report, wait = false, reportInterval-since
		}
	}
	if report {
		s.pending, s.has = progress.Report{}, false
	}
	lines, dropped := s.lines, s.dropped
	s.lines, s.bytes, s.dropped = s.spare[:0], 0, 0
	s.mu.Unlock()
	s.spare = nil

	if report {
		s.lastReport = now
		r.Stage = &s.stage
		if s.o.report(s.id, r) == errJobEnded {
			s.end()
			return 0
		}
	}
	if dropped > 0 {
		lines = slices.Insert(lines, 0, progress.LogLine{Stream: progress.StreamStderr, Stage: s.stage,
			Text: fmt.Sprintf("[progressd] %d lines dropped: the stage printed faster than they could be kept", dropped)})
	}
	for batch := range slices.Chunk(lines, progress.MaxLogLinesPerRequest) {
		if s.o.appendLines(s.id, batch) == errJobEnded {
			s.end()
			return 0
		}
	}
	clear(lines) // the texts are kept by the store now, not by the spare
	s.spare = lines[:0]
	return wait
}

// end notes the job was terminal and stops its command now.
func (s *sink) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.o.cancel(context.Background(), s.id)
}

// close sends what is pending and stops the sink. It reports whether the
// job turned out to be terminal.
func (s *sink) close() bool {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func ptr[T any](v T) *T { return &v }
