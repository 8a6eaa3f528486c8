package webhook

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/progressd/progressd/internal/riverdb"
	"github.com/progressd/progressd/internal/store"
)

// Queue records events in the durable store's transactions and delivers
// them. TTx is the store's transaction type: *sql.Tx for SQLite, pgx.Tx for
// PostgreSQL.
type Queue[TTx any] struct {
	cfg     Config
	client  *river.Client[TTx]
	w       *worker
	metrics *metrics
	log     *slog.Logger
	close   func()
	// insert, with SQLite, writes deliveries with a prepared statement;
	// nil with PostgreSQL (River's InsertManyTx, whose statement pgx
	// caches).
	insert func(context.Context, TTx, []river.InsertManyParams) error
	// orphans, with SQLite, puts back the deliveries and probes a dead
	// process left running; nil with PostgreSQL.
	orphans func(context.Context) (int64, error)
	// urls maps each delivery queue this node works to its URL ("" for a
	// queue of deliveries to a URL no longer configured, still sent).
	urls map[string]string

	mu       sync.Mutex
	probed   map[string]int64     // per queue, the delivery its last probe here tried
	failedAt map[string]time.Time // per queue, when a try here last failed (holding)
}

// waitingStates are the states of a delivery not yet done with.
const waitingStates = `('available', 'pending', 'retryable', 'running', 'scheduled')`

// Counts for the gauges and for Open, in SQLite's and PostgreSQL's words.
const (
	waitingSQL      = `SELECT count(*) FROM river_job WHERE kind = '` + kind + `' AND state IN ` + waitingStates
	queuesSQL       = `SELECT DISTINCT queue FROM river_job WHERE kind = '` + kind + `' AND state IN ` + waitingStates
	openSQLiteSQL   = `SELECT count(*) FROM river_queue WHERE paused_at IS NOT NULL AND name IN (SELECT value FROM json_each(?))`
	openPostgresSQL = `SELECT count(*) FROM river_queue WHERE paused_at IS NOT NULL AND name = ANY($1)`
	// orphansSQL puts back what a process that died was trying (SQLite).
	orphansSQL = `UPDATE river_job SET state = 'available' WHERE state = 'running' AND kind IN ('` + kind + `', '` + probeKind + `')`
)

// OpenSQLite opens the queue in db, the job store's own SQLite database
// (store/sqlite.Store.DB), creating River's tables there. The worker
// shares the store's one connection: its statements then queue with the
// store's writes for that connection, each a few milliseconds, instead of
// taking SQLite's write lock from a second connection, whose waiters back
// off in sleeps of up to 100 ms — the tail latency of reports. Give Record
// to the store's SetOnChange.
func OpenSQLite(ctx context.Context, cfg Config, db *sql.DB) (*Queue[*sql.Tx], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	driver, err := riverdb.MigrateSQLite(ctx, db, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("webhook queue: %w", err)
	}
	existing, err := waitingQueues(ctx, func(ctx context.Context) (rows, error) { return db.QueryContext(ctx, queuesSQL) })
	if err != nil {
		return nil, fmt.Errorf("webhook queue: %w", err)
	}
	q, err := newQueue(cfg, driver, false, existing, func(ctx context.Context) (n int, err error) {
		err = db.QueryRowContext(ctx, waitingSQL).Scan(&n)
		return n, err
	}, func(ctx context.Context, names []string) (n int, err error) {
		list, _ := json.Marshal(names)
		err = db.QueryRowContext(ctx, openSQLiteSQL, string(list)).Scan(&n)
		return n, err
	})
	if err != nil {
		return nil, err
	}
	stmt, err := db.PrepareContext(ctx, sqliteInsertSQL)
	if err != nil {
		return nil, fmt.Errorf("webhook queue: %w", err)
	}
	q.insert = sqliteInsert(stmt)
	q.close = func() { _ = stmt.Close() } // the store closes db
	q.orphans = func(ctx context.Context) (int64, error) {
		res, err := db.ExecContext(ctx, orphansSQL)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	return q, nil
}

// OpenPostgres opens the queue in the PostgreSQL database at url (--db),
// shared by every node: River's tables in the first schema of its
// search_path, as the orchestrator's. Give Record to the store's
// SetOnChange.
func OpenPostgres(ctx context.Context, cfg Config, url string) (*Queue[pgx.Tx], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("webhook queue: %w (check --db)", err)
	}
	pcfg.MaxConns = int32(max(4, cfg.Workers/4)) // deliveries hold a connection only to fetch and finish
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("webhook queue: %w (check --db)", err)
	}
	if err := riverdb.MigratePostgres(ctx, pool, cfg.Log, nil); err != nil {
		pool.Close()
		return nil, fmt.Errorf("webhook queue: migrate River's tables in PostgreSQL: %w (the user needs the CREATE privilege on the schema)", err)
	}
	existing, err := waitingQueues(ctx, func(ctx context.Context) (rows, error) {
		r, err := pool.Query(ctx, queuesSQL)
		return pgxRows{r}, err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("webhook queue: %w", err)
	}
	q, err := newQueue(cfg, riverpgxv5.New(pool), true, existing, func(ctx context.Context) (n int, err error) {
		err = pool.QueryRow(ctx, waitingSQL).Scan(&n)
		return n, err
	}, func(ctx context.Context, names []string) (n int, err error) {
		err = pool.QueryRow(ctx, openPostgresSQL, names).Scan(&n)
		return n, err
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	q.close = pool.Close
	return q, nil
}

// newQueue makes the River client that delivers, and the metrics. shared
// says the tables are shared with the orchestrator's client (PostgreSQL):
// this client then never leads (see the package doc). existing are the
// delivery queues holding deliveries already (some perhaps to URLs no
// longer configured: they are worked too, so nothing recorded is dropped).
func newQueue[TTx any](cfg Config, driver riverdriver.Driver[TTx], shared bool, existing []string,
	waiting func(context.Context) (int, error), open func(context.Context, []string) (int, error),
) (*Queue[TTx], error) {
	urls := map[string]string{}
	for _, name := range existing {
		urls[name] = ""
	}
	for _, u := range cfg.URLs {
		urls[queueFor(u)] = u
	}
	names := slices.Sorted(maps.Keys(urls))
	m, err := newMetrics(cfg.Registerer, waiting, func(ctx context.Context) (int, error) { return open(ctx, names) })
	if err != nil {
		return nil, fmt.Errorf("webhook metrics: %w", err)
	}
	w := newWorker(cfg, m)
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	river.AddWorker(workers, &prober{w: w})
	queues := map[string]river.QueueConfig{ProbeQueue: {MaxWorkers: max(1, len(urls))}}
	for name := range urls {
		queues[name] = river.QueueConfig{MaxWorkers: cfg.Workers}
	}
	client, err := river.NewClient(driver, &river.Config{
		Queues:                 queues,
		Workers:                workers,
		PollOnly:               true,
		FetchPollInterval:      cfg.PollInterval,
		FetchCooldown:          min(50*time.Millisecond, cfg.PollInterval),
		MaxAttempts:            maxAttempts,
		JobTimeout:             cfg.Timeout + timeoutMargin,
		RescueStuckJobsAfter:   max(time.Minute, 2*(cfg.Timeout+timeoutMargin)),
		LeaderElectionDisabled: shared,
		Logger:                 riverdb.QuietLog(cfg.Log),
	})
	if err != nil {
		return nil, fmt.Errorf("webhook queue client: %w", err)
	}
	q := &Queue[TTx]{cfg: cfg, client: client, w: w, metrics: m, log: w.log, urls: urls, probed: map[string]int64{}, failedAt: map[string]time.Time{}}
	w.brk = q
	return q, nil
}

// rows is what waitingQueues reads of *sql.Rows and pgx.Rows.
type rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}

type pgxRows struct{ pgx.Rows }

func (r pgxRows) Close() error { r.Rows.Close(); return nil }

// waitingQueues lists the queues holding deliveries not yet done with.
func waitingQueues(ctx context.Context, query func(context.Context) (rows, error)) ([]string, error) {
	r, err := query(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the queues with deliveries waiting: %w", err)
	}
	defer func() { _ = r.Close() }()
	var names []string
	for r.Next() {
		var name string
		if err := r.Scan(&name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, r.Err()
}

// Record queues changes as events, one delivery per URL, in tx: it is the
// store's OnChange. It only inserts rows; nothing is sent before tx
// commits.
func (q *Queue[TTx]) Record(ctx context.Context, tx TTx, changes []store.Change) error {
	params := make([]river.InsertManyParams, 0, len(changes)*len(q.cfg.URLs))
	for _, c := range changes {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("webhook event id: %w", err)
		}
		typ := eventType(c)
		body := eventBody(id.String(), typ, c.JSON)
		for _, u := range q.cfg.URLs {
			params = append(params, river.InsertManyParams{
				Args:       deliveryArgs{Event: id.String(), Type: typ, URL: u, Body: body},
				InsertOpts: &river.InsertOpts{Queue: queueFor(u), MaxAttempts: maxAttempts},
			})
		}
	}
	if len(params) == 0 {
		return nil
	}
	if q.insert != nil {
		return q.insert(ctx, tx, params)
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("queue %d webhook deliveries: %w", len(params), err)
	}
	return nil
}

// sqliteInsertSQL writes a new delivery as River's own insert on SQLite
// does (riversqlite's JobInsertFastMany, for the columns a delivery sets;
// River's times are datetime('now', 'subsec')). Prepared once: River's
// insert is parsed anew on every call, which was most of what an event
// added to the terminal write (BenchmarkTerminalSave). It follows River's
// schema at the version go.mod pins: were a River upgrade to change the
// table, every test that delivers an event would fail.
const sqliteInsertSQL = `INSERT INTO river_job (args, created_at, kind, max_attempts, metadata, priority, queue, scheduled_at, state, tags)
	VALUES (jsonb(?), datetime('now', 'subsec'), '` + kind + `', ?, jsonb('{}'), 1, ?, datetime('now', 'subsec'), 'available', jsonb('[]'))`

// sqliteInsert inserts deliveries in tx with stmt (sqliteInsertSQL).
func sqliteInsert(stmt *sql.Stmt) func(context.Context, *sql.Tx, []river.InsertManyParams) error {
	return func(ctx context.Context, tx *sql.Tx, params []river.InsertManyParams) error {
		st := tx.StmtContext(ctx, stmt)
		for _, p := range params {
			args, err := json.Marshal(p.Args)
			if err != nil {
				return fmt.Errorf("queue a webhook delivery: %w", err)
			}
			if _, err := st.ExecContext(ctx, string(args), p.InsertOpts.MaxAttempts, p.InsertOpts.Queue); err != nil {
				return fmt.Errorf("queue %d webhook deliveries: %w", len(params), err)
			}
		}
		return nil
	}
}

// Start starts delivering. The queue's lifetime is Stop's to end, not
// ctx's.
//
// With SQLite, deliveries left running are put back first: a node holds
// its data directory's lock (the orchestrator's), so no other process
// works this file, and those tries died with the process that made them
// (a kill -9, a crash). River's rescuer would find them too, but only
// after a minute and a retry delay.
func (q *Queue[TTx]) Start(ctx context.Context) error {
	if q.orphans != nil {
		n, err := q.orphans(ctx)
		if err != nil {
			return fmt.Errorf("webhook queue: put back deliveries a stopped process left running: %w", err)
		}
		if n > 0 {
			q.log.Info("webhook deliveries left running by a process that stopped are tried again", "deliveries", n)
		}
	}
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start the webhook queue: %w", err)
	}
	if err := q.reprobe(ctx); err != nil {
		q.log.Error("webhook breakers: could not check for paused queues without a probe; a node started later will", "err", err)
	}
	q.log.Info("webhooks on", "urls", len(q.cfg.URLs))
	return nil
}

// Stop lets the tries in flight end (each is bounded by Config.Timeout),
// cancelling them if ctx ends first (they are retried later), then closes
// the queue's database handle. Deliveries left in the queue are sent when
// a node starts again (on PostgreSQL, by the other nodes meanwhile).
func (q *Queue[TTx]) Stop(ctx context.Context) error {
	err := q.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = q.client.StopAndCancel(cctx)
		cancel()
	}
	q.close()
	if err != nil {
		return fmt.Errorf("stop the webhook queue: %w", err)
	}
	return nil
}

// AddKind registers the delivery kind on another River client's workers
// (the orchestrator's, on the PostgreSQL tables shared with this package):
// when that client leads, River's rescuer then retries a delivery stuck on
// a dead node instead of discarding it as an unknown kind. That client
// only works its own queues, so it never delivers.
func AddKind(workers *river.Workers) {
	w := newWorker(Config{}.withDefaults(), nil)
	river.AddWorker(workers, w)
	river.AddWorker(workers, &prober{w: w})
}
