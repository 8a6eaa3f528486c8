package orchestrator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/riverdb"
)

// Defaults of Config.
const (
	DefaultWorkers      = 4
	DefaultKillGrace    = 5 * time.Second
	DefaultRetryBackoff = time.Second
	DefaultPollInterval = time.Second
	// DefaultNodeTimeout is Config.NodeTimeout's default.
	DefaultNodeTimeout = 20 * time.Second
	// MaxRetryBackoff caps the wait before a retry.
	MaxRetryBackoff = 5 * time.Minute
	// QueueFile is the queue's SQLite file in the data directory.
	QueueFile = "queue.db"
)

// Config wires an Orchestrator. Jobs and one of DataDir or QueuePath are
// required; zero values of the rest mean their defaults.
type Config struct {
	Jobs *jobs.Service
	// PipelinesFile is the YAML pipelines file; "" runs the built-in demo
	// pipeline. Pipelines, if set, is used instead of either.
	PipelinesFile string
	Pipelines     *Pipelines
	// DataDir holds the queue (QueueFile); QueuePath overrides the file.
	// With Postgres set, the directory still holds this node's records of
	// the commands it runs (and a lock: one process per directory).
	DataDir   string
	QueuePath string
	// Postgres, a postgres:// URL, puts the queue in that database (River's
	// tables in the first schema of its search_path) instead of a SQLite
	// file: every node pointed at it works one queue, and any node can run
	// any job. See shared.go for how jobs of a dead node are recovered.
	Postgres string
	// NodeTimeout, with Postgres only: a node that has not written its
	// heartbeat for this long is taken for dead, and another node retries
	// or fails the jobs it was running. Nodes heartbeat every NodeTimeout/5;
	// one that cannot for NodeTimeout/2 stops the commands it runs (with a
	// kill grace of at most NodeTimeout/4) and starts none until it can,
	// so that no job runs on two nodes at once (see shared.go).
	NodeTimeout time.Duration
	// Workers is how many pipeline jobs run at once on this node.
	Workers int
	// KillGrace is how long a stopped command's process group has between
	// SIGTERM and SIGKILL.
	KillGrace time.Duration
	// RetryBackoff is the wait before the first retry of a failed job; it
	// doubles with each attempt, up to MaxRetryBackoff.
	RetryBackoff time.Duration
	// PollInterval is how often the queue is checked for jobs that became
	// due (retries); new jobs start at once.
	PollInterval time.Duration
	// ServerURL, if set, is passed to commands as PROGRESSD_SERVER, so a
	// stage can run `progressd report` without flags.
	ServerURL string
	// AuthSecret is the server's --auth-secret; "" is single-user mode.
	// With it, each stage attempt gets PROGRESSD_TOKEN, a token scoped to
	// its job (auth.MintForJob), so `progressd report` works with auth on.
	AuthSecret string
	// MoreKinds, if set, registers the workers of other kinds of job
	// that share the PostgreSQL queue's tables (webhook deliveries), so
	// that when this node's River client leads, River's rescuer knows them
	// and retries one stuck on a dead node instead of discarding it as an
	// unknown kind. This client works only its own queue, so it never
	// runs them.
	MoreKinds func(*river.Workers)
	// Registerer receives the orchestrator's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Validate says which setting is wrong.
func (c *Config) Validate() error {
	var errs []error
	if c.Jobs == nil {
		errs = append(errs, errors.New("orchestrator: Config.Jobs is required"))
	}
	if c.DataDir == "" && c.QueuePath == "" {
		errs = append(errs, errors.New("orchestrator: a data directory is required for the job queue"))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("--workers must be positive, got %d", c.Workers))
	}
	if c.KillGrace < 0 || c.RetryBackoff < 0 || c.PollInterval < 0 || c.NodeTimeout < 0 {
		errs = append(errs, errors.New("orchestrator: KillGrace, RetryBackoff and PollInterval may not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.KillGrace == 0 {
		c.KillGrace = DefaultKillGrace
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.QueuePath == "" {
		c.QueuePath = filepath.Join(c.DataDir, QueueFile)
	}
	if c.NodeTimeout == 0 {
		c.NodeTimeout = DefaultNodeTimeout
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Orchestrator runs pipeline jobs: it is the jobs.Runner of a node. See the
// package doc for the life of a job.
type Orchestrator struct {
	cfg       Config
	log       *slog.Logger
	pipelines *Pipelines
	lock      *os.File
	db        *sql.DB             // SQLite queue only
	driver    *riversqlite.Driver // SQLite queue only
	shared    *sharedQueue        // PostgreSQL queue only
	river     queueClient
	runDir    string // records of running process groups, for recovery
	metrics   *metrics

	// stopping is set by Stop before River cancels the running jobs, so a
	// worker can tell a hand-back from a cancel.
	stopping atomic.Bool
	// startedAt bounds recovery to jobs created before this node started.
	startedAt time.Time

	mu      sync.Mutex
	runs    map[string]context.CancelCauseFunc // progressd job id → its running attempt here
	queued  map[string]int64                   // progressd job id → River job id, until a worker takes it
	started bool
	closed  bool
}

// Runner is the orchestrator as the jobs.Service sees it. It is a type of
// its own because jobs.Runner.Start (queue one job) and Orchestrator.Start
// (start working the queue) cannot share a name on one type.
type Runner struct{ o *Orchestrator }

var _ jobs.Runner = Runner{}

// Runner returns the jobs.Runner to give jobs.Service.SetRunner.
func (o *Orchestrator) Runner() Runner { return Runner{o} }

// Stages implements jobs.Runner: it validates the pipeline and params.
func (r Runner) Stages(pipeline string, params map[string]string) ([]progress.StageSpec, int, error) {
	return r.o.stages(pipeline, params)
}

// Start implements jobs.Runner: it puts the job in the durable queue.
func (r Runner) Start(ctx context.Context, s progress.Snapshot) error { return r.o.enqueue(ctx, s) }

// Cancel implements jobs.Runner.
func (r Runner) Cancel(ctx context.Context, jobID string) { r.o.cancel(ctx, jobID) }

// Pipelines implements jobs.Runner.
func (r Runner) Pipelines() []jobs.PipelineInfo { return r.o.pipelines.Info() }

// errJobEnded cancels a running attempt whose job became terminal (a
// cancel, here or on another node).
var errJobEnded = errors.New("the job was canceled")

// errLocked is returned by lockFile when another process holds the lock.
var errLocked = errors.New("locked")

// New loads the pipelines, opens (creating and migrating) the queue and
// takes its lock. Call Start to run jobs and Stop to release everything.
func New(cfg Config) (*Orchestrator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := &Orchestrator{
		cfg:       cfg,
		log:       cfg.Log.With("component", "orchestrator"),
		pipelines: cfg.Pipelines,
		runDir:    filepath.Join(filepath.Dir(cfg.QueuePath), "running"),
		runs:      make(map[string]context.CancelCauseFunc),
		queued:    make(map[string]int64),
	}
	var err error
	if o.metrics, err = newMetrics(cfg.Registerer, o.Running); err != nil {
		return nil, err
	}
	if o.pipelines == nil {
		if cfg.PipelinesFile == "" {
			o.pipelines = DemoPipelines()
		} else if o.pipelines, err = LoadPipelines(cfg.PipelinesFile); err != nil {
			return nil, err
		}
	}
	if err := o.openQueue(); err != nil {
		o.closeQueue()
		return nil, err
	}
	return o, nil
}

func (o *Orchestrator) openQueue() error {
	path := o.cfg.QueuePath
	if strings.Contains(path, "?") {
		return fmt.Errorf("queue path %q contains '?'; choose a data directory without it", path)
	}
	if err := os.MkdirAll(o.runDir, 0o750); err != nil {
		return fmt.Errorf("create the queue directory: %w (check the data directory is writable)", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("open the queue lock: %w", err)
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		if errors.Is(err, errLocked) {
			return fmt.Errorf("the job queue %s is in use by another progressd process; give each running node its own --data-dir", path)
		}
		return fmt.Errorf("lock the job queue %s: %w", path, err)
	}
	o.lock = lock

	if o.cfg.Postgres != "" {
		return o.openShared()
	}

	// Its own file, not the job store's: River polls and writes on its own
	// schedule, and the store's single connection should never wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.db, o.driver, err = riverdb.OpenSQLite(ctx, path, o.log)
	if err != nil {
		return fmt.Errorf("job queue: %w (delete %s to start with an empty queue)", err, path)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &worker{o: o})
	o.river, err = river.NewClient(o.driver, o.riverConfig(workers))
	if err != nil {
		return fmt.Errorf("job queue client: %w", err)
	}
	return nil
}

// riverConfig is River's configuration, the same for either queue.
func (o *Orchestrator) riverConfig(workers *river.Workers) *river.Config {
	if o.cfg.MoreKinds != nil {
		o.cfg.MoreKinds(workers)
	}
	return &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.cfg.Workers}},
		Workers:           workers,
		PollOnly:          true, // jobs inserted here wake the producer directly; polling finds retries
		FetchPollInterval: o.cfg.PollInterval,
		FetchCooldown:     min(2*time.Millisecond, o.cfg.PollInterval),
		MaxAttempts:       1,
		// Jobs bound their own time (worker.Timeout): -1, never rescued,
		// when a stage has no timeout, because River cannot tell a long
		// job from a dead one; otherwise the sum of the stage timeouts.
		// A job running past its own bound and this margin is stuck:
		// River's rescuer retries or discards it. It cannot tell a dead
		// node from a slow job, so jobs of a node that died are recovered
		// by progressd: at the next start on the same data directory for
		// the SQLite queue (recover.go), by another node within
		// NodeTimeout for the PostgreSQL queue (shared.go).
		JobTimeout:           -1,
		RescueStuckJobsAfter: time.Minute,
		RetryPolicy:          &retryPolicy{base: o.cfg.RetryBackoff},
		Logger:               o.quietLog(),
	}
}

// quietLog is River's logger: River's routine info lines are debug here.
func (o *Orchestrator) quietLog() *slog.Logger { return riverdb.QuietLog(o.log) }

// Start recovers the jobs a previous run of this node left behind (see
// recover.go), then starts working the queue.
func (o *Orchestrator) Start(ctx context.Context) error {
	o.mu.Lock()
	if o.started || o.closed {
		o.mu.Unlock()
		return errors.New("orchestrator: Start called twice or after Stop")
	}
	o.started = true
	o.startedAt = time.Now()
	o.mu.Unlock()
	if err := o.recoverJobs(ctx); err != nil {
		return err
	}
	// River's lifetime is Stop's to end, not the caller's context's.
	if err := o.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start the job queue: %w", err)
	}
	if o.shared != nil {
		o.shared.start(o)
	}
	o.log.Info("orchestrator started", "pipelines", strings.Join(o.pipelines.Names(), ","),
		"source", o.pipelines.Source(), "workers", o.cfg.Workers, "queue", o.queueName())
	return nil
}

// Stop hands running work back: every running command's process group gets
// SIGTERM (SIGKILL after KillGrace), and its job goes back to the queue
// without using up an attempt, to run again from its first stage when the
// node next starts. Queued jobs stay queued. Stop then closes the queue. It
// is safe to call more than once; later calls return nil.
func (o *Orchestrator) Stop(ctx context.Context) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	started := o.started
	o.mu.Unlock()
	var err error
	if started {
		o.stopping.Store(true)
		err = o.river.StopAndCancel(ctx)
		if err != nil {
			// Commands are bounded by KillGrace; give them that, then
			// close regardless.
			t := time.NewTimer(o.cfg.KillGrace + 5*time.Second)
			select {
			case <-o.river.Stopped():
			case <-t.C:
				o.log.Error("running jobs did not stop in time; closing the queue under them")
			}
			t.Stop()
			err = fmt.Errorf("orchestrator: stop: %w", err)
		}
	}
	if o.shared != nil {
		o.shared.stop() // after River: the heartbeat lasts while jobs run here
	}
	o.closeQueue()
	o.log.Info("orchestrator stopped")
	return err
}

func (o *Orchestrator) closeQueue() {
	if o.db != nil {
		_ = o.db.Close()
	}
	if o.shared != nil {
		o.shared.close()
	}
	if o.lock != nil {
		_ = o.lock.Close() // releases the lock
	}
}

// queueName names the queue in logs and errors.
func (o *Orchestrator) queueName() string {
	if o.shared != nil {
		return "postgres"
	}
	return o.cfg.QueuePath
}

// Pipelines returns the loaded pipelines.
func (o *Orchestrator) Pipelines() *Pipelines { return o.pipelines }

func (o *Orchestrator) stages(pipeline string, params map[string]string) ([]progress.StageSpec, int, error) {
	p, err := o.pipelines.lookup(pipeline)
	if err != nil {
		return nil, 0, err
	}
	if err := p.CheckParams(params); err != nil {
		return nil, 0, err
	}
	return p.StageSpecs(), p.MaxAttempts, nil
}

func (o *Orchestrator) enqueue(ctx context.Context, s progress.Snapshot) error {
	p, err := o.pipelines.lookup(s.Pipeline)
	if err != nil {
		return err
	}
	res, err := o.river.Insert(ctx, pipelineArgs{JobID: s.JobID, Pipeline: s.Pipeline},
		&river.InsertOpts{MaxAttempts: p.MaxAttempts})
	if err != nil {
		return fmt.Errorf("insert into the job queue: %w", err)
	}
	o.mu.Lock()
	if _, running := o.runs[s.JobID]; !running {
		o.queued[s.JobID] = res.Job.ID
	}
	o.mu.Unlock()
	return nil
}

// cancel stops a canceled job: one running here has its process group
// stopped (SIGTERM, then SIGKILL after KillGrace); a queued one leaves the
// queue. A job running on another node notices by itself within a second
// (see watch).
func (o *Orchestrator) cancel(ctx context.Context, jobID string) {
	o.mu.Lock()
	cancel, running := o.runs[jobID]
	rid, queued := o.queued[jobID]
	delete(o.queued, jobID)
	o.mu.Unlock()
	if running {
		cancel(errJobEnded)
		return
	}
	if queued {
		if _, err := o.river.JobCancel(ctx, rid); err != nil {
			// The worker will find the job canceled when it takes it.
			o.log.Debug("remove canceled job from the queue", "job", jobID, "err", err)
		}
	}
}

// register records a running attempt; false if the job already runs here.
func (o *Orchestrator) register(id string, cancel context.CancelCauseFunc) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, dup := o.runs[id]; dup {
		return false
	}
	o.runs[id] = cancel
	delete(o.queued, id)
	return true
}

func (o *Orchestrator) unregister(id string) {
	o.mu.Lock()
	delete(o.runs, id)
	delete(o.queued, id) // in case the insert returned after the job ran
	o.mu.Unlock()
}

// Ping reports whether the queue answers, for /readyz.
func (o *Orchestrator) Ping(ctx context.Context) error {
	if o.shared != nil {
		return o.shared.ping(ctx)
	}
	var n int
	if err := o.db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM river_job LIMIT 1)").Scan(&n); err != nil {
		return fmt.Errorf("job queue %s: %w", o.queueName(), err)
	}
	return nil
}

// Running returns how many jobs run on this node now.
func (o *Orchestrator) Running() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.runs)
}

// retryPolicy waits base, 2·base, 4·base… (up to MaxRetryBackoff) before
// attempts 2, 3, 4…
type retryPolicy struct{ base time.Duration }

func (p *retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.delay(job.Attempt))
}

// delay is the wait after failed attempt n (1-based).
func (p *retryPolicy) delay(n int) time.Duration {
	d := p.base
	for i := 1; i < n && d < MaxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, MaxRetryBackoff)
}
