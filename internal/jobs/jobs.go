// Package jobs is the one path every change to a job takes: a report (from
// HTTP, a command's output, or Go code) goes through the message adapter
// (progress.Apply) inside the snapshot store's atomic update, is recorded in
// the durable store (write-behind for intermediate progress, before the reply
// for state changes), and is published, encoded once, to the broker.
//
// A child's change also reaches its parent, through the aggregator
// (aggregate.go), at most every ParentInterval per parent.
//
// Service is safe for concurrent use. It does not decide who may do what:
// callers check auth.Principal first. It runs timers for its parents'
// updates; Close it before closing the stores.
//
// # Construction in two phases
//
// The service and the orchestrator need each other: the service starts a
// pipeline job's run, the orchestrator reports on the job through the
// service. So a Service is made first (New, with no Runner) and given the
// orchestrator's Runner with SetRunner before it serves anything — in
// node.Start's startOrchestrator step, the one caller. SetRunner is not
// synchronised: calling it while requests are served is a data race.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
)

// ErrNotFound is returned for a job id that no store knows. It is
// progress.ErrNotFound, which readers that do not import jobs (the gateway)
// match.
var ErrNotFound = progress.ErrNotFound

// ErrUnavailable wraps a failure of a store the change depends on (Redis
// or the database down): nothing was changed, and the caller may retry.
// The API answers it with 503 so a report never vanishes silently.
var ErrUnavailable = errors.New("jobs: a store is unavailable; retry shortly")

// unavailable wraps err as ErrUnavailable unless it is a verdict about the
// request itself (a rejected report, an unknown job, a canceled request).
func unavailable(what string, err error) error {
	var pe *progress.Error
	if err == nil || errors.As(err, &pe) || errors.Is(err, ErrNotFound) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}

// Error codes for job creation beyond those of package progress.
const (
	CodeUnknownPipeline = "unknown_pipeline"
	CodeInvalidParam    = "invalid_param"
)

// Runner runs pipeline jobs; the orchestrator implements it. A Service
// without one accepts only jobs that external workers report on.
type Runner interface {
	// Stages validates a pipeline and its params and returns the stages a
	// job of it has and how many attempts it may take. Errors are
	// *progress.Error with CodeUnknownPipeline or CodeInvalidParam.
	Stages(pipeline string, params map[string]string) (stages []progress.StageSpec, maxAttempts int, err error)
	// Start queues the job, whose first snapshot s is already stored.
	Start(ctx context.Context, s progress.Snapshot) error
	// Cancel stops the job if it runs on this node. It is called after
	// the canceled snapshot is stored.
	Cancel(ctx context.Context, jobID string)
	// Pipelines describes the pipelines a caller may start, sorted by
	// name, so a user interface can offer them.
	Pipelines() []PipelineInfo
}

// PipelineInfo is what a caller needs to start a pipeline: its name, the
// params it requires (all of them, no others) and its stages with their
// share of the progress. It leaves out the commands, which are the
// server's business.
type PipelineInfo struct {
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty" doc:"What the pipeline does, from its file."`
	Params      []string            `json:"params" doc:"Every param the pipeline takes; each is required."`
	Stages      []PipelineStageInfo `json:"stages"`
}

// PipelineStageInfo is one stage of a PipelineInfo.
type PipelineStageInfo struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight" doc:"Share of the job's progress."`
}

// Config wires a Service. Snapshots, DB and Broker are required.
type Config struct {
	Snapshots snapshot.Store
	DB        *store.WriteBehind
	Broker    broker.Broker
	Runner    Runner
	Metrics   *Metrics
	Log       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logs keeps the running jobs' log lines (nil: a Memory keeping
	// LogLines per job); LogLines is how many lines a job keeps
	// (progress.DefaultLogLines if ≤ 0) and LogFlushInterval how often
	// they are written behind to DB (1 s if ≤ 0).
	Logs             logs.Store
	LogLines         int
	LogFlushInterval time.Duration
	// GroupRecheck is how often the service looks for parents whose
	// children's durable totals changed without reaching the parent (a
	// node died in between) and corrects them; 0 turns it off (tests of
	// other parts). The node sets it.
	GroupRecheck time.Duration
}

// Service creates jobs and applies reports to them.
type Service struct {
	cfg Config

	publishErrs   atomic.Int64 // failed publishes since the last log line
	publishLogged atomic.Int64 // unix nanos of that line

	agg  *aggregator
	logw *logs.Writer
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.LogLines <= 0 {
		cfg.LogLines = progress.DefaultLogLines
	}
	if cfg.LogFlushInterval <= 0 {
		cfg.LogFlushInterval = time.Second
	}
	if cfg.Logs == nil {
		cfg.Logs = logs.NewMemory(cfg.LogLines)
	}
	s := &Service{cfg: cfg, logw: logs.NewWriter(cfg.DB, cfg.LogLines, cfg.LogFlushInterval, cfg.Log)}
	s.agg = newAggregator(s)
	s.agg.startRecheck(cfg.GroupRecheck)
	return s
}

// Close applies the children's changes still waiting for their parents,
// stops the recheck and writes the log lines still pending. Call it
// before closing the stores.
func (s *Service) Close() {
	s.agg.close()
	s.closeLogs()
}

// SetRunner attaches the orchestrator: the second phase of construction
// (see the package doc). Call it once, before serving requests.
func (s *Service) SetRunner(r Runner) { s.cfg.Runner = r }

// Pipelines describes the pipelines this server runs: none (an empty,
// non-nil list) without a runner.
func (s *Service) Pipelines() []PipelineInfo {
	if s.cfg.Runner == nil {
		return []PipelineInfo{}
	}
	return s.cfg.Runner.Pipelines()
}

// CreateRequest is what a caller asks for; the owner comes from auth.
type CreateRequest struct {
	Project  string
	Pipeline string
	Params   map[string]string
	Stages   []progress.StageSpec

	Name             string
	Tags             []string
	ParentID         string
	Weight           *float64
	ExpectedChildren int
	// Metadata is the job's first metadata, a JSON object (nil: none).
	Metadata json.RawMessage
	// StallAfter and AbandonAfter are stall_after_seconds and
	// abandon_after_seconds (nil: none), checked by progress.New.
	StallAfter   *float64
	AbandonAfter *float64
	// MaySee says whether the caller may use a job as a parent (nil:
	// any); a parent it may not see answers as an unknown one.
	MaySee func(progress.Snapshot) bool `json:"-"`
	// IdempotencyKey, if set, makes the create safe to retry (see
	// createKeyed): the key is Caller's, and bound to the request's
	// other fields and the owner.
	IdempotencyKey string `json:"-"`
	// Caller is who sends the request, when it is not the owner (an
	// admin creating for a user): keys are per caller.
	Caller string `json:"-"`
	// TraceID is the trace id of the request's W3C traceparent, kept in
	// the snapshot (progress.TraceID); not part of the idempotency hash,
	// since a retry is traced anew.
	TraceID string `json:"-"`
}

// Create makes a job owned by owner. A job with a pipeline is handed to the
// Runner; one without waits for reports.
func (s *Service) Create(ctx context.Context, owner string, req CreateRequest) (progress.Snapshot, error) {
	stages := req.Stages
	maxAttempts := 0
	if req.Pipeline != "" {
		if s.cfg.Runner == nil {
			return progress.Snapshot{}, s.reject(&progress.Error{Code: CodeUnknownPipeline,
				Message: fmt.Sprintf("pipeline %q: this server has no pipelines; start it with --pipelines FILE", req.Pipeline)})
		}
		if len(req.Stages) > 0 {
			return progress.Snapshot{}, s.reject(&progress.Error{Code: progress.CodeInvalidJob,
				Message: "a pipeline job takes its stages from the pipeline: send \"pipeline\" or \"stages\", not both"})
		}
		var err error
		if stages, maxAttempts, err = s.cfg.Runner.Stages(req.Pipeline, req.Params); err != nil {
			return progress.Snapshot{}, s.reject(err)
		}
	} else if len(req.Params) > 0 {
		return progress.Snapshot{}, s.reject(&progress.Error{Code: CodeInvalidParam,
			Message: "params are for pipeline jobs: name a \"pipeline\" or drop \"params\""})
	}
	id, err := uuid.NewV7()
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("jobs: new id: %w", err)
	}
	job := progress.NewJob{
		ID: id.String(), Project: req.Project, Owner: owner,
		Pipeline: req.Pipeline, Params: req.Params, Stages: stages,
		Name: req.Name, Tags: req.Tags, ParentID: req.ParentID, Weight: req.Weight,
		ExpectedChildren: req.ExpectedChildren, Metadata: req.Metadata,
		StallAfter: req.StallAfter, AbandonAfter: req.AbandonAfter, MaxAttempts: maxAttempts,
	}
	if job.Name == "" && req.Pipeline != "" {
		job.Name = pipelineName(req.Pipeline, req.Params)
	}
	if req.ParentID != "" {
		if job.RootID, err = s.checkParent(ctx, &req); err != nil {
			return progress.Snapshot{}, s.reject(err)
		}
		job.Project = req.Project
	}
	snap, err := progress.New(job, s.cfg.Now())
	if err != nil {
		return progress.Snapshot{}, s.reject(err)
	}
	snap.TraceID = req.TraceID
	if req.IdempotencyKey != "" {
		first, replay, err := s.createKeyed(ctx, owner, req, snap)
		if err != nil || replay {
			return first, err
		}
	} else if err := s.cfg.DB.Create(ctx, snap); err != nil {
		return progress.Snapshot{}, s.reject(createError(req.ParentID, err))
	}
	// The job is created: it is in the durable record, which every read
	// falls back to. The snapshot store missing it (Redis down) must not
	// fail the create, or a 503 would leave a job behind that a retry
	// makes again; it gets the job from the database when it is back.
	if err := s.cfg.Snapshots.Put(ctx, snap); err != nil {
		s.cfg.Log.Warn("new job recorded but not in the snapshot store; it is read from the database until a report brings it back",
			"job", snap.JobID, "err", err)
	}
	s.cfg.Metrics.created.Inc()
	s.cfg.Metrics.added(snap.State)
	s.publish(ctx, snap)
	s.agg.observe(&progress.Snapshot{}, &snap)
	if req.Pipeline != "" {
		if err := s.cfg.Runner.Start(ctx, snap); err != nil {
			msg := "could not queue the job: " + err.Error()
			failed, ferr := s.Report(ctx, snap.JobID, progress.Report{State: ptr(progress.Failed), Error: &msg})
			if ferr == nil {
				return failed, nil
			}
			return progress.Snapshot{}, fmt.Errorf("jobs: queue job: %w", err)
		}
	}
	return snap, nil
}

// Report applies r to job id and returns the snapshot it produced.
func (s *Service) Report(ctx context.Context, id string, r progress.Report) (progress.Snapshot, error) {
	return s.ReportAs(ctx, id, r, nil)
}

// ReportAs is Report for a caller that may change only the jobs allow
// accepts (nil: any); another job answers ErrNotFound, so ids cannot be
// probed. The check runs inside the atomic update, on the snapshot the
// report applies to, which spares the API a separate read per report.
func (s *Service) ReportAs(ctx context.Context, id string, r progress.Report, allow func(progress.Snapshot) bool) (progress.Snapshot, error) {
	a := s.newReportApply(allow)
	next, err := s.applyOne(ctx, a, id, r)
	if err != nil {
		return progress.Snapshot{}, err
	}
	if err := s.commit(ctx, &a.prev, &next); err != nil {
		return progress.Snapshot{}, s.reject(unavailable("record report", err))
	}
	return next, nil
}

// reportApply applies one report to its job inside the snapshot store's
// atomic update, and keeps the snapshot it was applied to (prev). The
// store's Update takes a func, which escapes, and with it everything the
// func refers to: a closure per report would put the report and both
// snapshots on the heap for every report. ReportMany uses one
// reportApply for all the reports of a batch.
type reportApply struct {
	s      *Service
	allow  func(progress.Snapshot) bool
	r      progress.Report
	active int // the job's children still queued or running, for succeeded
	prev   progress.Snapshot
	fn     func(progress.Snapshot) (progress.Snapshot, error) // apply, bound once
}

func (s *Service) newReportApply(allow func(progress.Snapshot) bool) *reportApply {
	a := &reportApply{s: s, allow: allow}
	a.fn = a.apply
	return a
}

func (a *reportApply) apply(prev progress.Snapshot) (progress.Snapshot, error) {
	a.prev = prev
	if a.allow != nil && !a.allow(prev) {
		return prev, ErrNotFound
	}
	if a.active > 0 && !prev.State.Terminal() {
		return prev, &progress.Error{Code: progress.CodeChildrenUnfinished, Message: fmt.Sprintf(
			"%d of this job's children are still queued or running: finish or cancel them first", a.active)}
	}
	return progress.Apply(prev, a.r, a.s.cfg.Now())
}

// applyOne is the part of a report that ReportAs and ReportMany share:
// its log lines kept, then the report applied in the snapshot store; the
// snapshot it was applied to is left in a.prev. The caller records and
// publishes the change.
func (s *Service) applyOne(ctx context.Context, a *reportApply, id string, r progress.Report) (next progress.Snapshot, err error) {
	a.prev, a.r, a.active = progress.Snapshot{}, r, 0
	if len(r.Log) > 0 {
		if err := s.reportLogs(ctx, id, r, a.allow); err != nil {
			return next, err
		}
	}
	// succeeded over unfinished children is refused on the durable
	// counts, which every child's state change moves before its reply:
	// the parent's snapshot may be up to ParentInterval behind them.
	if r.State != nil && *r.State == progress.Succeeded {
		t, err := s.cfg.DB.ChildTotals(ctx, id)
		if err != nil {
			return next, s.reject(unavailable("read the job's children", err))
		}
		a.active = t.Counts.Active()
	}
	next, err = s.updateWith(ctx, id, a.fn)
	a.r = progress.Report{} // not kept past the call
	if err != nil {
		return next, s.reject(unavailable("apply report", err))
	}
	s.cfg.Metrics.accepted.Inc()
	return next, nil
}

// update applies fn to job id in the snapshot store, loading the job from
// the durable store first if the snapshot store lost it. It returns the
// snapshot fn was applied to and the result.
func (s *Service) update(ctx context.Context, id string, fn func(progress.Snapshot) (progress.Snapshot, error)) (prev, next progress.Snapshot, err error) {
	next, err = s.updateWith(ctx, id, func(p progress.Snapshot) (progress.Snapshot, error) {
		prev = p
		return fn(p)
	})
	return prev, next, err
}

// updateWith is update for an fn that keeps the snapshot it is given
// itself, if it needs it.
func (s *Service) updateWith(ctx context.Context, id string, fn func(progress.Snapshot) (progress.Snapshot, error)) (next progress.Snapshot, err error) {
	next, err = s.cfg.Snapshots.Update(ctx, id, fn)
	if errors.Is(err, snapshot.ErrNotFound) {
		// Evicted or from before a restart: the durable store has it.
		if err = s.load(ctx, id); err == nil {
			next, err = s.cfg.Snapshots.Update(ctx, id, fn)
		}
	}
	if errors.Is(err, snapshot.ErrNotFound) || errors.Is(err, store.ErrNotFound) {
		err = ErrNotFound
	}
	return next, err
}

// commit records the change from prev to next: durably before returning
// when the state moved or a stall began or ended (progress within a state
// is written behind, at most about once a second per job), then to
// subscribers, then to the parent's aggregate.
func (s *Service) commit(ctx context.Context, prev, next *progress.Snapshot) error {
	moved := next.State != prev.State
	if err := s.cfg.DB.Save(ctx, *next, moved || next.Stalled != prev.Stalled); err != nil {
		return err
	}
	if moved {
		s.cfg.Metrics.stateChanged(prev.State, next.State)
		if next.State.Terminal() {
			s.endLogs(ctx, next.JobID)
		}
	}
	s.publish(ctx, *next)
	s.agg.observe(prev, next)
	return nil
}

// Finish applies r, a report of a final state (a command's outcome), and
// returns only once the job's terminal snapshot is in the durable store:
// an error means the outcome may not have landed, and the caller must hold
// it and call Finish again. The snapshot returned is the job's terminal
// one; its state differs from r's when the job had already ended (a
// cancel). A job found terminal already may be this outcome applied by an
// earlier call whose durable write failed (disk full): its terminal
// snapshot is written again, durably, and published again, since the
// earlier call returned before publishing.
func (s *Service) Finish(ctx context.Context, id string, r progress.Report) (progress.Snapshot, error) {
	snap, err := s.Report(ctx, id, r)
	if !errors.Is(err, progress.ErrJobFinished) {
		return snap, err
	}
	if snap, err = s.Get(ctx, id); err != nil {
		return progress.Snapshot{}, err
	}
	if !snap.State.Terminal() {
		// The snapshot store said terminal, the durable copy says not: the
		// snapshot store is down again. Try again later.
		return progress.Snapshot{}, fmt.Errorf("%w: job %s is terminal in the snapshot store only", ErrUnavailable, id)
	}
	if err := s.cfg.DB.Save(ctx, snap, true); err != nil {
		return progress.Snapshot{}, s.reject(unavailable("record final state", err))
	}
	s.publish(ctx, snap)
	return snap, nil
}

// Cancel cancels job id, stopping its command if one runs.
func (s *Service) Cancel(ctx context.Context, id, reason string) (progress.Snapshot, error) {
	return s.CancelAs(ctx, id, reason, nil)
}

// CancelAs is Cancel limited to the jobs allow accepts, as ReportAs.
func (s *Service) CancelAs(ctx context.Context, id, reason string, allow func(progress.Snapshot) bool) (progress.Snapshot, error) {
	if reason == "" {
		reason = "canceled"
	}
	snap, err := s.ReportAs(ctx, id, progress.Report{State: ptr(progress.Canceled), Error: &reason}, allow)
	if err != nil {
		return snap, err
	}
	if s.cfg.Runner != nil {
		s.cfg.Runner.Cancel(ctx, id)
	}
	// Every non-terminal descendant goes too, even if the caller leaves.
	s.cascade(context.WithoutCancel(ctx), id, "parent "+id+" canceled")
	return snap, nil
}

// Get returns the latest snapshot of job id.
func (s *Service) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	snap, err := s.cfg.Snapshots.Get(ctx, id)
	if err == nil {
		return snap, nil
	}
	if !errors.Is(err, snapshot.ErrNotFound) {
		// The snapshot store is down: the durable copy, at most one
		// flush interval old, is better than no answer.
		s.cfg.Log.Debug("snapshot store read failed; reading the database", "job", id, "err", err)
	}
	snap, err = s.cfg.DB.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return progress.Snapshot{}, ErrNotFound
	}
	return snap, unavailable("read job", err)
}

// List returns a page of jobs newest first, each at its latest snapshot.
func (s *Service) List(ctx context.Context, q progress.Query) ([]progress.Snapshot, string, error) {
	page, next, err := s.cfg.DB.List(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("jobs: list: %w", err)
	}
	for i, j := range page {
		// The durable copy may lag by the write-behind interval.
		if live, err := s.cfg.Snapshots.Get(ctx, j.JobID); err == nil && live.Seq > j.Seq {
			page[i] = live
		}
	}
	return page, next, nil
}

// Projects returns a page of the project list from the durable record.
func (s *Service) Projects(ctx context.Context, q progress.ProjectQuery) ([]progress.ProjectSummary, string, error) {
	page, next, err := s.cfg.DB.Projects(ctx, q)
	if err != nil && !errors.Is(err, progress.ErrBadCursor) {
		return nil, "", unavailable("list projects", err)
	}
	return page, next, err
}

// Warm loads every unfinished job from the durable store into the snapshot
// store, so subscribers to a project see its running jobs after a restart.
func (s *Service) Warm(ctx context.Context) error {
	q := progress.Query{States: []progress.State{progress.Queued, progress.Running}, Limit: 500}
	n := 0
	for {
		page, next, err := s.cfg.DB.List(ctx, q)
		if err != nil {
			return fmt.Errorf("jobs: load unfinished jobs: %w", err)
		}
		for _, j := range page {
			// A shared snapshot store (another node running) may hold a
			// newer snapshot than the database: keep it.
			if _, err := s.cfg.Snapshots.Get(ctx, j.JobID); err == nil {
				continue
			}
			if err := s.reload(ctx, j); err != nil {
				return fmt.Errorf("jobs: load unfinished jobs: %w", err)
			}
			s.cfg.Metrics.added(j.State)
			n++
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	s.cfg.Log.Info("loaded unfinished jobs", "count", n)
	return nil
}

func (s *Service) load(ctx context.Context, id string) error {
	snap, err := s.cfg.DB.Get(ctx, id)
	if err != nil {
		return err
	}
	return s.reload(ctx, snap)
}

// ReloadSeqGap is added to the seq of an unfinished job that is reloaded
// from the durable store because the snapshot store lost it (a restart, a
// crash, Redis restarted empty). Intermediate progress is written behind,
// so the durable copy may be up to one flush interval older than what
// clients last saw; without the gap its next update could carry a lower seq
// than theirs, and clients — who keep the highest seq — would ignore every
// update until the count caught up: a frozen bar. No job gets 2^20 reports
// in one flush interval, so the reloaded seq is above anything delivered.
const ReloadSeqGap = 1 << 20

// reload puts a job read from the durable store into the snapshot store.
func (s *Service) reload(ctx context.Context, snap progress.Snapshot) error {
	if !snap.State.Terminal() { // terminal snapshots never change: no gap needed
		snap.Seq += ReloadSeqGap
		if err := s.reloadAggregate(ctx, &snap); err != nil {
			return err
		}
	}
	return s.cfg.Snapshots.Put(ctx, snap)
}

// publish hands snap to the broker. A broker failure
// does not fail the report — the snapshot is stored, and subscribers get
// the whole state with the next update or on resubscribe — but it is logged.
func (s *Service) publish(ctx context.Context, snap progress.Snapshot) {
	// Data is left to the broker: the in-process one has the gateway
	// encode it only for a job someone watches (most reported jobs have
	// no viewer), Redis encodes it once for its message and this node.
	if err := s.cfg.Broker.Publish(ctx, broker.Update{Snapshot: snap}); err != nil {
		s.publishFailed(snap, err)
	}
}

// publishFailed logs a failed publish at most once per publishLogEvery,
// with how many failed since: a broker outage fails every report, and one
// line per report would bury everything else in the log.
func (s *Service) publishFailed(snap progress.Snapshot, err error) {
	s.publishErrs.Add(1)
	now := s.cfg.Now().UnixNano()
	last := s.publishLogged.Load()
	if now-last < int64(publishLogEvery) || !s.publishLogged.CompareAndSwap(last, now) {
		return
	}
	s.cfg.Log.Warn("publishing updates fails; subscribers get the whole state with the next update that goes through",
		"job", snap.JobID, "seq", snap.Seq, "failed_since_last_log", s.publishErrs.Swap(0), "err", err)
}

const publishLogEvery = 10 * time.Second

// reject counts a rejected request by reason and returns err.
func (s *Service) reject(err error) error {
	code := "internal"
	var pe *progress.Error
	switch {
	case errors.As(err, &pe):
		code = pe.Code
	case errors.Is(err, ErrNotFound):
		code = "not_found"
	case errors.Is(err, ErrUnavailable):
		code = "unavailable"
	}
	s.cfg.Metrics.rejected.WithLabelValues(code).Inc()
	return err
}

func ptr[T any](v T) *T { return &v }
