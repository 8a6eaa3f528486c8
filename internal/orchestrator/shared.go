package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/progressd/progressd/internal/riverdb"
)

// The PostgreSQL queue is shared by every node pointed at one database, so
// a row marked running may be worked by a live node elsewhere: recovery
// cannot take every running row for an orphan as the SQLite queue (one
// process, under a lock) does at start.
//
// River's own JobRescuer does not help here: it has no notion of a node
// being alive. It rescues a running row once it is older than both
// RescueStuckJobsAfter and the worker's Timeout, never when Timeout is -1
// (a stage without a timeout), and when it discards a row the progressd
// job is left running. So each node writes a heartbeat (its River client
// ID, which River records in attempted_by) to progressd_queue_nodes every
// NodeTimeout/5, and every node checks as often for running rows whose
// attempting node has not heartbeated for NodeTimeout. Each such row is
// retried or failed exactly once (a conditional UPDATE on its state and
// attempt: whichever node wins reports it), with a message that says the
// node stopped responding. A job of a node killed with SIGKILL is thus
// retried or failed within about 1.2·NodeTimeout.
//
// # The fence
//
// A live node cut off from PostgreSQL looks dead too, and its jobs are
// run again elsewhere; were its own attempts to keep running, a job would
// run twice at once (two transcodes writing one file). So a node fences
// itself: when it has not written a heartbeat for fenceAfter (NodeTimeout/2)
// it stops every attempt running here (SIGTERM to each process group,
// SIGKILL after the kill grace, as a cancel does, but with the grace cut to
// at most NodeTimeout/4), reports nothing on the jobs, and leaves their
// queue rows alone: the node that rescues them decides between a retry
// and a failure, with its "stopped responding" message.
//
// The arithmetic, with T = NodeTimeout: let s be when this node sent its
// last heartbeat that succeeded. PostgreSQL stamped it with its now(), at
// or after s, so no node finds it older than T before s+T. This node
// checks every T/10 (fenceCheck), so it fences by s + T/2 + T/10 = s+0.6T,
// and the commands are dead by s + 0.6T + T/4 = s+0.85T: 0.15T (3 s at the
// default 20 s) before anyone may take the jobs over. Only clock rate
// matters, not offsets: this node measures on its own clock, the others
// compare PostgreSQL's now() with PostgreSQL's now(). What no fence can
// cover is this process being frozen whole (SIGSTOP, a suspended VM)
// for longer than T while its commands run on.
//
// While heartbeats fail, the node starts no attempt: River keeps fetching
// (it has no pause that works without the database), and a worker that
// gets a job while fenced runs nothing. An attempt that was stopped or
// refused so then waits for the heartbeat to come back before it returns
// to River (fencedResult), because River would write whatever it returns
// onto the row if the row is running, with no check of whose attempt it
// is: after a rescue, that could be a later attempt on another node. Once
// heartbeats succeed again the attempt looks at its row: if it is still
// this attempt's (no node rescued it: the cut-off was shorter than T), the
// attempt returns a zero snooze, so the job runs again from its first
// stage without using up an attempt; if the row was settled elsewhere
// (failed, or retried and finished) it returns nothing River will apply;
// while a later attempt runs elsewhere, it waits. Then the node works as
// before.

// sharedQueueGrace: startup reconciliation on the shared queue leaves alone
// jobs created this shortly before the start, which another node may be
// queuing right now.
const sharedQueueGrace = time.Minute

// heartbeatTable holds one row per node of the shared queue.
const heartbeatTable = "progressd_queue_nodes"

// queueClient is what the orchestrator uses of a River client, whatever its
// driver.
type queueClient interface {
	Start(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Stopped() <-chan struct{}
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
}

type sharedQueue struct {
	pool *pgxpool.Pool
	// beatPool is one connection for the heartbeat alone: were it to
	// queue behind River's work for a busy pool, a node that reaches
	// PostgreSQL fine would fence itself and stop its jobs.
	beatPool *pgxpool.Pool
	id       string // this node's River client ID
	timeout  time.Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	lastBeat time.Time // when the last heartbeat that succeeded was sent
}

// fencedError is the cancel cause of the attempts the fence stops. grace
// bounds the kill grace of their commands (command.run), so they are dead
// before another node may take the job over.
type fencedError struct{ grace time.Duration }

func (fencedError) Error() string {
	return "this node lost its connection to the job queue"
}

// lateSnooze is returned to River by a fenced attempt that could not see
// its row before River stopped: River writes it only if the row is
// running, and if that is a later attempt on another node, a snooze this
// long parks the row without letting a third node start the job, while
// that attempt still reports its own outcome on the job.
const lateSnooze = 24 * time.Hour

// openShared opens the PostgreSQL queue: River's tables and the heartbeat
// table are created (under an advisory lock, so nodes starting together do
// not race), this node's heartbeat is written, and the River client made.
func (o *Orchestrator) openShared() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, o.cfg.Postgres)
	if err != nil {
		return fmt.Errorf("job queue: %w (check --db)", err)
	}
	beatCfg, err := pgxpool.ParseConfig(o.cfg.Postgres)
	if err != nil {
		pool.Close()
		return fmt.Errorf("job queue: %w (check --db)", err)
	}
	beatCfg.MaxConns = 1
	beatPool, err := pgxpool.NewWithConfig(ctx, beatCfg)
	if err != nil {
		pool.Close()
		return fmt.Errorf("job queue heartbeat: %w (check --db)", err)
	}
	sq := &sharedQueue{pool: pool, beatPool: beatPool, timeout: o.cfg.NodeTimeout, id: nodeID()}
	o.shared = sq
	driver := riverpgxv5.New(pool)
	err = riverdb.MigratePostgres(ctx, pool, o.log, func(ctx context.Context, conn *pgxpool.Conn) error {
		_, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+heartbeatTable+` (
			id text PRIMARY KEY,
			seen_at timestamptz NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate the job queue in PostgreSQL: %w (the user needs the CREATE privilege on the schema)", err)
	}
	if err := sq.beat(ctx); err != nil {
		return fmt.Errorf("job queue heartbeat: %w", err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker{o: o})
	rc := o.riverConfig(workers)
	rc.ID = sq.id
	if o.river, err = river.NewClient(driver, rc); err != nil {
		return fmt.Errorf("job queue client: %w", err)
	}
	return nil
}

// nodeID is unique per process: host, pid and a random suffix.
func nodeID() string {
	host, _ := os.Hostname()
	if len(host) > 60 {
		host = host[:60]
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// interval spaces the heartbeats, and the looks for jobs of dead nodes.
func (sq *sharedQueue) interval() time.Duration { return max(sq.timeout/5, 50*time.Millisecond) }

// fenceAfter, fenceCheck and fenceGrace time the fence (see the top of
// this file): fenced when no heartbeat succeeded for fenceAfter, checked
// every fenceCheck, commands killed at most fenceGrace after SIGTERM.
func (sq *sharedQueue) fenceAfter() time.Duration { return sq.timeout / 2 }
func (sq *sharedQueue) fenceCheck() time.Duration { return max(sq.timeout/10, time.Millisecond) }
func (sq *sharedQueue) fenceGrace() time.Duration { return sq.timeout / 4 }

// beat writes this node's heartbeat. On success it records when it was
// sent, not when it returned: PostgreSQL's stamp is no earlier than that.
func (sq *sharedQueue) beat(ctx context.Context) error {
	sent := time.Now()
	_, err := sq.beatPool.Exec(ctx, `INSERT INTO `+heartbeatTable+` (id, seen_at) VALUES ($1, now())
		ON CONFLICT (id) DO UPDATE SET seen_at = now()`, sq.id)
	if err == nil {
		sq.mu.Lock()
		if sent.After(sq.lastBeat) {
			sq.lastBeat = sent
		}
		sq.mu.Unlock()
	}
	return err
}

// silence is how long ago the last heartbeat that succeeded was sent.
func (sq *sharedQueue) silence() time.Duration {
	sq.mu.Lock()
	defer sq.mu.Unlock()
	return time.Since(sq.lastBeat)
}

// fenced reports whether this node may not run jobs now: its last
// heartbeat that succeeded is older than fenceAfter.
func (sq *sharedQueue) fenced() bool { return sq.silence() > sq.fenceAfter() }

// fenced reports whether the shared queue's fence is up (see the top of
// this file); never with the SQLite queue.
func (o *Orchestrator) fenced() bool { return o.shared != nil && o.shared.fenced() }

// start heartbeats, fences and looks for jobs of dead nodes until stop,
// each on a goroutine of its own, so that a slow rescue never delays a
// heartbeat, nor a hung heartbeat the fence.
func (sq *sharedQueue) start(o *Orchestrator) {
	ctx, cancel := context.WithCancel(context.Background())
	sq.cancel = cancel
	sq.wg.Go(func() {
		failing := false
		every(ctx, sq.interval(), true, func() {
			// A heartbeat slower than fenceAfter could not lift the
			// fence anyway: it is stamped when it was sent.
			c, cancel := context.WithTimeout(ctx, sq.fenceAfter())
			err := sq.beat(c)
			cancel()
			if err != nil {
				err = fmt.Errorf("write heartbeat: %w", err)
			}
			failing = logChange(ctx, o.log, failing, err, "job queue heartbeat back")
		})
	})
	sq.wg.Go(func() {
		fenced := false
		every(ctx, sq.fenceCheck(), false, func() {
			switch silence := sq.silence(); {
			case silence > sq.fenceAfter() && !fenced:
				fenced = true
				n := o.stopRuns(fencedError{grace: sq.fenceGrace()})
				o.log.Warn(fmt.Sprintf("job queue unreachable for %s: stopped %d running jobs so no other node runs them twice",
					silence.Round(10*time.Millisecond), n), "node", sq.id, "node_timeout", sq.timeout)
			case silence <= sq.fenceAfter() && fenced:
				fenced = false
				o.log.Info("job queue reachable again: running jobs again", "node", sq.id)
			}
		})
	})
	sq.wg.Go(func() {
		failing := false
		every(ctx, sq.interval(), false, func() {
			c, cancel := context.WithTimeout(ctx, sq.timeout)
			defer cancel()
			err := o.rescueDeadNodes(c)
			if err != nil {
				err = fmt.Errorf("rescue jobs of dead nodes: %w", err)
			} else if _, err = sq.pool.Exec(c, `DELETE FROM `+heartbeatTable+` WHERE seen_at < now() - interval '1 day'`); err != nil {
				// Rows of nodes gone for a day: their jobs were rescued
				// long ago (a missing row counts as dead too).
				err = fmt.Errorf("prune heartbeats: %w", err)
			}
			failing = logChange(ctx, o.log, failing, err, "")
		})
	})
}

// every calls fn every d (at once too if now) until ctx ends.
func every(ctx context.Context, d time.Duration, now bool, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	if now {
		fn()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}

// logChange logs the first error of a run of failures as a warning and,
// if back is set, the first success after them; it returns whether this
// call failed.
func logChange(ctx context.Context, log *slog.Logger, failing bool, err error, back string) bool {
	switch {
	case err != nil && ctx.Err() == nil && !failing:
		log.Warn("job queue", "err", err)
		return true
	case err == nil && failing && back != "":
		log.Info(back)
	}
	return err != nil
}

// stopRuns cancels every attempt running here with cause and returns how
// many there were. An attempt that registers after this sees the fence
// itself (work checks it after register; the fence is up before this
// takes the lock).
func (o *Orchestrator) stopRuns(cause error) int {
	o.mu.Lock()
	cancels := make([]context.CancelCauseFunc, 0, len(o.runs))
	for _, cancel := range o.runs {
		cancels = append(cancels, cancel)
	}
	o.mu.Unlock()
	for _, cancel := range cancels {
		cancel(cause)
	}
	return len(cancels)
}

// fencedResult is what an attempt stopped or refused by the fence returns
// to River (see the top of this file). It waits until heartbeats succeed
// again, then: a zero snooze if the row is still this attempt's (the job
// runs again without using up an attempt); nil once the row is settled
// elsewhere (River writes nothing on a row that is not running); and
// meanwhile, while a later attempt runs elsewhere or waits to, it waits.
// If River stops it first (a shutdown), it decides on one last look.
func (o *Orchestrator) fencedResult(ctx context.Context, job *river.Job[pipelineArgs], log *slog.Logger) error {
	sq := o.shared
	t := time.NewTicker(sq.interval())
	defer t.Stop()
	for {
		if !sq.fenced() {
			switch sq.rowOf(ctx, job) {
			case rowOurs:
				log.Info("job queue reachable again and no other node took the job: it runs again from its first stage")
				return river.JobSnooze(0)
			case rowSettled:
				log.Info("job queue reachable again: another node took the job over")
				return nil
			}
		}
		select {
		case <-ctx.Done():
			c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			switch sq.rowOf(c, job) {
			case rowOurs:
				return river.JobSnooze(0) // runs again, like a job handed back
			case rowSettled:
				return nil
			}
			return river.JobSnooze(lateSnooze)
		case <-t.C:
		}
	}
}

// rowState is what a fenced attempt finds of its queue row.
type rowState int

const (
	rowUnknown   rowState = iota // the database did not answer
	rowOurs                      // running, and this attempt's
	rowSettled                   // finished (completed, discarded, cancelled) or gone
	rowElsewhere                 // running another attempt, or waiting to
)

func (sq *sharedQueue) rowOf(ctx context.Context, job *river.Job[pipelineArgs]) rowState {
	var state string
	var ours bool
	err := sq.pool.QueryRow(ctx, `
		SELECT state::text, state = 'running' AND attempt = $2 AND coalesce(attempted_by[cardinality(attempted_by)] = $3, false)
		FROM river_job WHERE id = $1`, job.ID, job.Attempt, sq.id).Scan(&state, &ours)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return rowSettled
	case err != nil:
		return rowUnknown
	case ours:
		return rowOurs
	}
	switch rivertype.JobState(state) {
	case rivertype.JobStateCompleted, rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
		return rowSettled
	}
	return rowElsewhere
}

// stop ends the heartbeat and removes this node's row: its jobs were
// handed back.
func (sq *sharedQueue) stop() {
	if sq.cancel != nil {
		sq.cancel()
		sq.wg.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = sq.pool.Exec(ctx, `DELETE FROM `+heartbeatTable+` WHERE id = $1`, sq.id)
}

func (sq *sharedQueue) close() {
	sq.beatPool.Close()
	sq.pool.Close()
}

func (sq *sharedQueue) ping(ctx context.Context) error {
	var n int
	if err := sq.pool.QueryRow(ctx, "SELECT count(*) FROM (SELECT 1 FROM river_job LIMIT 1) AS j").Scan(&n); err != nil {
		return fmt.Errorf("job queue (postgres): %w", err)
	}
	return nil
}

// rescueDeadNodes retries or fails the running rows of nodes whose
// heartbeat is older than NodeTimeout (or gone).
func (o *Orchestrator) rescueDeadNodes(ctx context.Context) error {
	sq := o.shared
	secs := sq.timeout.Seconds()
	rows, err := sq.pool.Query(ctx, `
		SELECT j.id, j.attempt, j.max_attempts, j.args, j.attempted_by[cardinality(j.attempted_by)]
		FROM river_job j
		LEFT JOIN `+heartbeatTable+` n ON n.id = j.attempted_by[cardinality(j.attempted_by)]
		WHERE j.state = 'running' AND j.kind = $1
		  AND j.attempted_at < now() - make_interval(secs => $2)
		  AND (n.id IS NULL OR n.seen_at < now() - make_interval(secs => $2))
		ORDER BY j.id LIMIT $3`, pipelineArgs{}.Kind(), secs, recoverBatch)
	if err != nil {
		return err
	}
	type stuck struct {
		row  rivertype.JobRow
		node *string
	}
	var found []stuck
	for rows.Next() {
		var s stuck
		if err := rows.Scan(&s.row.ID, &s.row.Attempt, &s.row.MaxAttempts, &s.row.EncodedArgs, &s.node); err != nil {
			rows.Close()
			return err
		}
		found = append(found, s)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var errs []error
	for _, s := range found {
		node := "?"
		if s.node != nil {
			node = *s.node
		}
		why := fmt.Sprintf("the node running it (%s) stopped responding: no heartbeat for %s", node, sq.timeout)
		now := time.Now().UTC()
		state, finalized, effect := o.orphanDecision(ctx, &s.row, now, why)
		errData, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(s.row.Attempt, 0), Error: orphanError})
		if err != nil {
			return err
		}
		tag, err := sq.pool.Exec(ctx, `
			UPDATE river_job SET state = $2::river_job_state, finalized_at = $3, scheduled_at = now(),
				errors = array_append(errors, $4::jsonb)
			WHERE id = $1 AND state = 'running' AND attempt = $5`,
			s.row.ID, string(state), finalized, errData, s.row.Attempt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if tag.RowsAffected() == 1 { // else another node got there first
			effect()
		}
	}
	return errors.Join(errs...)
}
