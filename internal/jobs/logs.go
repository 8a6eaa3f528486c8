package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/progress"
)

// LogSource says where lines come from: their stream and stage.
type LogSource struct {
	Stream string // progress.StreamStdout, StreamStderr or StreamLog
	Stage  string
}

// AppendLogs keeps texts as the job's next log lines and returns the n of
// the last one; without a stage, lines take the job's current one. Texts
// are cut to progress.MaxLogLineBytes; callers that take lines from
// workers check them first (progress.CheckLogLines). A terminal job takes
// no more lines (progress.ErrJobFinished); allow limits the jobs the
// caller may append to, as in ReportAs.
func (s *Service) AppendLogs(ctx context.Context, id string, texts []string, src LogSource, allow func(progress.Snapshot) bool) (int64, error) {
	snap, err := s.Get(ctx, id)
	if err != nil {
		return 0, s.reject(err)
	}
	if allow != nil && !allow(snap) {
		return 0, s.reject(ErrNotFound)
	}
	if snap.State.Terminal() {
		return 0, s.reject(progress.ErrJobFinished)
	}
	if src.Stage == "" {
		src.Stage = snap.Stage
	}
	return s.appendLogs(ctx, &snap, texts, src)
}

// reportLogs keeps a report's "log" lines, before the report applies (so
// a terminal report's last lines are kept), and only if the report would
// be accepted: a rejected report keeps no lines.
func (s *Service) reportLogs(ctx context.Context, id string, r progress.Report, allow func(progress.Snapshot) bool) error {
	if err := progress.CheckLogLines(r.Log); err != nil {
		return s.reject(err)
	}
	snap, err := s.Get(ctx, id)
	if err != nil {
		return s.reject(err)
	}
	if allow != nil && !allow(snap) {
		return s.reject(ErrNotFound)
	}
	if _, err := progress.Apply(snap, r, s.cfg.Now()); err != nil {
		return s.reject(err)
	}
	stage := snap.Stage
	if r.Stage != nil {
		stage = *r.Stage
	}
	_, err = s.appendLogs(ctx, &snap, r.Log, LogSource{Stream: progress.StreamLog, Stage: stage})
	return err
}

// AppendLines keeps lines (their Stream and Stage set, Text cut here) as
// the job's next log lines, as AppendLogs does, for a caller that mixes
// streams: a pipeline stage's stdout and stderr.
func (s *Service) AppendLines(ctx context.Context, id string, lines []progress.LogLine) (int64, error) {
	snap, err := s.Get(ctx, id)
	if err != nil {
		return 0, s.reject(err)
	}
	if snap.State.Terminal() {
		return 0, s.reject(progress.ErrJobFinished)
	}
	return s.keepLines(ctx, &snap, lines)
}

// appendLogs keeps texts from one source without looking at the job.
func (s *Service) appendLogs(ctx context.Context, snap *progress.Snapshot, texts []string, src LogSource) (int64, error) {
	lines := make([]progress.LogLine, len(texts))
	for i, x := range texts {
		lines[i] = progress.LogLine{Stream: src.Stream, Stage: src.Stage, Text: x}
	}
	return s.keepLines(ctx, snap, lines)
}

// keepLines stamps, cuts, numbers and keeps lines of job snap, queues them
// for the database and tells the logs: subscribers of every node.
func (s *Service) keepLines(ctx context.Context, snap *progress.Snapshot, lines []progress.LogLine) (int64, error) {
	id := snap.JobID
	if len(lines) == 0 {
		return 0, nil
	}
	t := progress.At(s.cfg.Now())
	for i := range lines {
		lines[i].T = t
		lines[i].Text = progress.CutLogText(lines[i].Text)
	}
	numbered, err := s.cfg.Logs.Append(ctx, id, lines)
	if errors.Is(err, logs.ErrUnknown) {
		// A job's first lines on this tier, or the tier forgot it: carry
		// on from what the database has, so n never restarts.
		if err = s.seedLogs(ctx, id); err == nil {
			numbered, err = s.cfg.Logs.Append(ctx, id, lines)
		}
	}
	if err != nil {
		return 0, s.reject(unavailable("keep log lines", err))
	}
	if err := s.logw.Add(ctx, id, numbered); err != nil {
		return 0, s.reject(unavailable("record log lines", err))
	}
	s.cfg.Metrics.logLines.Add(float64(len(numbered)))
	last := numbered[len(numbered)-1].N
	notice := broker.Update{Log: true, Snapshot: progress.Snapshot{JobID: id, Project: snap.Project, Owner: snap.Owner, Seq: uint64(last)}}
	if err := s.cfg.Broker.Publish(ctx, notice); err != nil {
		s.publishFailed(notice.Snapshot, err)
	}
	return last, nil
}

func (s *Service) seedLogs(ctx context.Context, id string) error {
	p, err := s.cfg.DB.ReadLogs(ctx, id, -1, s.cfg.LogLines)
	if err != nil {
		return err
	}
	return s.cfg.Logs.Seed(ctx, id, p.Lines, p.Last)
}

// Logs returns up to limit of the job's kept lines with n > after (after
// < 0: from the first kept one). The caller checks the job is visible.
func (s *Service) Logs(ctx context.Context, id string, after int64, limit int) (progress.LogPage, error) {
	p, err := s.cfg.Logs.Read(ctx, id, after, limit)
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, logs.ErrUnknown) {
		s.cfg.Log.Debug("log store read failed; reading the database", "job", id, "err", err)
	}
	// A finished job (its ring is dropped once its lines are durable), or
	// one with no line yet: the database has what there is.
	p, err = s.cfg.DB.ReadLogs(ctx, id, after, limit)
	return p, unavailable("read log lines", err)
}

// endLogs writes a job's last lines durably and drops its ring, when the
// job has become terminal: its lines are read from the database from now
// on. A failure leaves the ring in place (its lines are still written
// behind), which costs memory, not lines.
func (s *Service) endLogs(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.logw.FlushJob(ctx, id); err != nil {
		s.cfg.Log.Warn("writing a finished job's log lines failed; they stay queued", "job", id, "err", err)
		return
	}
	if err := s.cfg.Logs.Drop(ctx, id); err != nil {
		s.cfg.Log.Warn("dropping a finished job's log lines from the log store failed", "job", id, "err", err)
	}
}

// closeLogs writes every pending line; called by Close.
func (s *Service) closeLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.logw.Close(ctx); err != nil {
		s.cfg.Log.Error("log lines could not be written at shutdown", "err", err)
	}
}
