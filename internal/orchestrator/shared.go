package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
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
// A live node cut off from PostgreSQL for longer than NodeTimeout looks
// dead too, and its jobs run again elsewhere; its own attempt keeps
// running until it finishes or notices the job ended (watch).

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
	pool    *pgxpool.Pool
	id      string // this node's River client ID
	timeout time.Duration
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

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
	sq := &sharedQueue{pool: pool, timeout: o.cfg.NodeTimeout, id: nodeID()}
	o.shared = sq
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: o.quietLog()})
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	// River's migrations need a transaction each (one adds an enum value
	// the next uses), so the lock is a session one on a connection of its own.
	err = func() error {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		const key = `hashtextextended('progressd river migrate ' || coalesce(current_schema(), ''), 0)`
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`); err != nil {
			return err
		}
		defer func() {
			if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+key+`)`); err != nil {
				conn.Conn().Close(context.Background()) // ends the session, and the lock
			}
		}()
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return err
		}
		_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+heartbeatTable+` (
			id text PRIMARY KEY,
			seen_at timestamptz NOT NULL)`)
		return err
	}()
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

func (sq *sharedQueue) interval() time.Duration { return max(sq.timeout/5, 50*time.Millisecond) }

func (sq *sharedQueue) beat(ctx context.Context) error {
	_, err := sq.pool.Exec(ctx, `INSERT INTO `+heartbeatTable+` (id, seen_at) VALUES ($1, now())
		ON CONFLICT (id) DO UPDATE SET seen_at = now()`, sq.id)
	return err
}

// start heartbeats and looks for jobs of dead nodes until stop.
func (sq *sharedQueue) start(o *Orchestrator) {
	ctx, cancel := context.WithCancel(context.Background())
	sq.cancel = cancel
	sq.wg.Go(func() {
		t := time.NewTicker(sq.interval())
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := func() error {
				c, cancel := context.WithTimeout(ctx, sq.timeout)
				defer cancel()
				if err := sq.beat(c); err != nil {
					return fmt.Errorf("write heartbeat: %w", err)
				}
				if err := o.rescueDeadNodes(c); err != nil {
					return fmt.Errorf("rescue jobs of dead nodes: %w", err)
				}
				// Rows of nodes gone for a day: their jobs were rescued
				// long ago (a missing row counts as dead too).
				if _, err := sq.pool.Exec(c, `DELETE FROM `+heartbeatTable+` WHERE seen_at < now() - interval '1 day'`); err != nil {
					return fmt.Errorf("prune heartbeats: %w", err)
				}
				return nil
			}()
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				o.log.Warn("job queue", "err", err)
				failing = true
			case err == nil && failing:
				o.log.Info("job queue heartbeat back")
				failing = false
			}
		}
	})
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

func (sq *sharedQueue) close() { sq.pool.Close() }

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
