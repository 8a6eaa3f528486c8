// Package node turns a Config into one running progressd node: it opens the
// stores, wires the one path every update takes (jobs → snapshot store →
// durable store → broker → gateway), serves HTTP, and on shutdown stops
// everything in the reverse order, flushing what is pending.
package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/progressd/progressd/internal/api"
	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/broker/redisbroker"
	"github.com/progressd/progressd/internal/gateway"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/logs/redislogs"
	"github.com/progressd/progressd/internal/orchestrator"
	"github.com/progressd/progressd/internal/origin"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/snapshot/redissnap"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/postgres"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/webhook"
	"github.com/progressd/progressd/web"
)

// The parts a node hands each other, checked here where they are wired so
// that the packages using them need not import the implementations.
var (
	_ gateway.Jobs       = (*jobs.Service)(nil)
	_ broker.Pinger      = (*redisbroker.Broker)(nil)
	_ broker.Reconnecter = (*redisbroker.Broker)(nil)
)

// Version is set at build time with -ldflags "-X …/node.Version=…".
var Version = "dev"

// Node is one running progressd process.
type Node struct {
	cfg    Config
	log    *slog.Logger
	db     store.Store
	wb     *store.WriteBehind
	snaps  snapshot.Store
	logs   logs.Store // log lines, in the snapshot store's tier
	broker broker.Broker
	rdb    *redis.Client // shared by the Redis snapshot store and broker; nil without --redis
	Jobs   *jobs.Service
	gw     *gateway.Gateway
	orch   *orchestrator.Orchestrator
	// webhooks delivers the events the durable store records; nil without
	// --webhook-url.
	webhooks interface {
		Start(context.Context) error
		Stop(context.Context) error
	}
	// stopKeys ends the housekeeping (expiry of old idempotency keys, the
	// retention sweep) and waits for it.
	stopKeys func()
	authn    *auth.Authenticator
	// origins holds the node's own origins and the allowed ones.
	origins *origin.Policy
	// ready is what /readyz checks, one entry per part added as it opens.
	ready []api.Checker
	reg   *prometheus.Registry
	ln    net.Listener
	srv   *http.Server

	serveErr chan error
	stopOnce sync.Once
	stopErr  error
}

// Start opens the stores, listens on cfg.Addr and serves in the background.
// Call Shutdown to stop. Its steps run in the order the parts depend on
// each other, each a method below: stores, jobs, listener, orchestrator,
// fan-out (gateway), routes.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	authn := auth.New(cfg.AuthSecret)
	if err := auth.CheckListen(cfg.Addr, authn); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, authn: authn, reg: prometheus.NewRegistry(), serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			if n.ln != nil {
				_ = n.ln.Close()
			}
			n.closeStores(context.Background())
		}
	}()
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := n.openStores(ctx); err != nil {
		return nil, err
	}
	if err := n.startJobs(ctx); err != nil {
		return nil, err
	}
	// Listen before the orchestrator starts: its stages are told this
	// node's real address (with --addr :0 the port is known only now).
	n.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another progressd running? pick another --addr)", cfg.Addr, err)
	}
	if err := n.startOrchestrator(ctx); err != nil {
		return nil, err
	}
	if n.webhooks != nil {
		if err := n.webhooks.Start(ctx); err != nil {
			return nil, err
		}
	}
	if err := n.startFanOut(); err != nil {
		return nil, err
	}
	n.serve()
	dbDesc := cfg.DBPath()
	if cfg.Postgres() {
		dbDesc = "postgres"
	}
	log.Info("progressd serving", "addr", n.Addr(), "db", dbDesc, "redis", cfg.Redis != "", "auth", authn.Enabled(),
		"own_origins", n.origins.Own(), "allowed_origins", cfg.AllowedOrigins, "version", Version)
	return n, nil
}

// openStores opens the durable store with its write-behind, the snapshot
// store and the broker, and records how /readyz checks each.
func (n *Node) openStores(ctx context.Context) (err error) {
	cfg, log := n.cfg, n.log
	var db store.Store
	if cfg.Postgres() {
		db, err = postgres.Open(ctx, cfg.DB)
	} else {
		db, err = sqlite.Open(ctx, cfg.DBPath())
	}
	if err != nil {
		return err
	}
	n.db = db
	db.SetIdleStep(store.IdleStep(cfg.AbandonAfter)) // the sweep's margin (jobs.SweepLapses)
	if err := n.openWebhooks(ctx); err != nil {
		return err
	}
	n.wb = store.NewWriteBehind(db, cfg.FlushInterval, log)
	n.ready = []api.Checker{{Name: "database", Ping: n.wb.Ready}}
	if cfg.Redis != "" && !cfg.Postgres() {
		log.Warn("--redis without a postgres:// --db: this node's jobs are recorded in its own SQLite file, " +
			"so jobs created on other nodes are not kept durably here; point every node at one PostgreSQL to scale out")
	}
	if err := n.openSnapshots(ctx); err != nil {
		return err
	}
	return n.openBroker(ctx)
}

// openWebhooks opens the webhook queue in the durable store's database and
// has the store record every change in it, in the change's transaction.
// Deliveries start with startWebhooks.
func (n *Node) openWebhooks(ctx context.Context) error {
	if len(n.cfg.WebhookURLs) == 0 {
		return nil
	}
	whCfg := n.cfg.webhooks()
	whCfg.Registerer, whCfg.Log = n.reg, n.log
	switch db := n.db.(type) {
	case *postgres.Store:
		q, err := webhook.OpenPostgres(ctx, whCfg, n.cfg.DB)
		if err != nil {
			return err
		}
		db.SetOnChange(q.Record)
		n.webhooks = q
	case *sqlite.Store:
		q, err := webhook.OpenSQLite(ctx, whCfg, db.DB())
		if err != nil {
			return err
		}
		db.SetOnChange(q.Record)
		n.webhooks = q
	}
	return nil
}

// openSnapshots opens the snapshot store Config.SnapshotStore names, and
// the log line store of the same tier.
func (n *Node) openSnapshots(ctx context.Context) error {
	if n.cfg.SnapshotStore() == SnapshotsMemory {
		n.snaps = snapshot.NewMemory(snapshot.MemoryOptions{})
		n.logs = logs.NewMemory(n.cfg.LogLines)
		n.ready = append(n.ready, api.Checker{Name: "snapshots", Ping: n.snaps.Ping})
		return nil
	}
	rdb, err := n.redisClient(ctx)
	if err != nil {
		return err
	}
	n.snaps = redissnap.New(rdb, redissnap.Options{Prefix: n.cfg.RedisPrefix})
	n.logs = redislogs.New(rdb, redislogs.Options{Prefix: n.cfg.RedisPrefix, Keep: n.cfg.LogLines})
	n.ready = append(n.ready, api.Checker{Name: "redis", Ping: n.snaps.Ping})
	return nil
}

// openBroker opens the broker Config.BrokerKind names. A new broker is a
// case here (and its flag in Config); the rest of the node finds its
// extras (broker.Pinger, broker.Reconnecter) by type assertion.
func (n *Node) openBroker(ctx context.Context) error {
	switch n.cfg.BrokerKind() {
	case BrokerLocal:
		n.broker = broker.NewLocal()
	default: // "redis", checked by Validate
		rdb, err := n.redisClient(ctx)
		if err != nil {
			return err
		}
		if n.broker, err = redisbroker.New(ctx, rdb, redisbroker.Options{Prefix: n.cfg.RedisPrefix, Log: n.log}); err != nil {
			return err
		}
	}
	if p, ok := n.broker.(broker.Pinger); ok {
		n.ready = append(n.ready, api.Checker{Name: n.cfg.BrokerKind() + "_pubsub", Ping: p.Ping})
	}
	return nil
}

// redisClient returns the node's one Redis client, connecting on first
// use: the snapshot store and the broker share it when both are on Redis.
func (n *Node) redisClient(ctx context.Context) (*redis.Client, error) {
	if n.rdb != nil {
		return n.rdb, nil
	}
	redis.SetLogger(redisLogger{n.log})
	opt, err := redis.ParseURL(n.cfg.Redis) // checked by Validate
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	n.rdb = redis.NewClient(opt)
	if err := n.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w (is Redis running there? check --redis)", opt.Addr, err)
	}
	return n.rdb, nil
}

// startJobs makes the job service over the stores and loads the
// unfinished jobs into the snapshot store.
func (n *Node) startJobs(ctx context.Context) error {
	n.Jobs = jobs.New(jobs.Config{
		Snapshots: n.snaps, DB: n.wb, Broker: n.broker,
		Logs: n.logs, LogLines: n.cfg.LogLines, LogFlushInterval: n.cfg.FlushInterval,
		Metrics: jobs.NewMetrics(n.reg), Log: n.log,
		GroupRecheck: time.Second,
	})
	// Housekeeping: expired idempotency keys, and finished jobs past
	// --retention (SPEC.md part two, "Lifecycle").
	keysCtx, cancelKeys := context.WithCancel(context.WithoutCancel(ctx))
	var housekeeping sync.WaitGroup
	housekeeping.Go(func() { n.Jobs.ExpireKeysEvery(keysCtx, keyExpiryInterval) })
	if n.cfg.Retention > 0 {
		housekeeping.Go(func() { n.Jobs.RetainFor(keysCtx, n.cfg.Retention) })
	}
	// Stalls and abandoned jobs: always on, since a job's own
	// stall_after_seconds or abandon_after_seconds needs it even with
	// --abandon-after 0.
	lapseEvery := cmp.Or(n.cfg.LapseInterval, time.Second)
	housekeeping.Go(func() { n.Jobs.WatchLapses(keysCtx, lapseEvery, n.cfg.AbandonAfter) })
	n.stopKeys = func() { cancelKeys(); housekeeping.Wait() }
	return n.Jobs.Warm(ctx)
}

// keyExpiryInterval is how often expired idempotency keys are deleted.
// Creates ignore them from the moment they expire; this reclaims space.
const keyExpiryInterval = 10 * time.Minute

// startOrchestrator starts the pipelines' queue and workers. The job
// service and the orchestrator need each other (jobs start pipelines, the
// orchestrator reports on jobs): the service is made first and given the
// orchestrator's runner here, before anything is served — the one place
// that late binding happens.
func (n *Node) startOrchestrator(ctx context.Context) (err error) {
	cfg := n.cfg
	queueDir := cfg.DataDir
	if queueDir == "" {
		queueDir = filepath.Dir(cfg.DBPath())
	}
	orchCfg := orchestrator.Config{
		Jobs: n.Jobs, PipelinesFile: cfg.Pipelines, DataDir: queueDir, Workers: cfg.Workers,
		ServerURL: stageServerURL(n.ln.Addr()), AuthSecret: cfg.AuthSecret, Registerer: n.reg, Log: n.log,
		KillGrace: cfg.KillGrace, NodeTimeout: cfg.NodeTimeout,
		RetryBackoff: cfg.QueueRetryBackoff, PollInterval: cfg.QueuePollInterval,
		// Webhook deliveries share River's tables on PostgreSQL; whether
		// this node sends any or not, its client may lead there.
		MoreKinds: webhook.AddKind,
	}
	if cfg.Postgres() {
		orchCfg.Postgres = cfg.DB // one queue for every node of the database
	}
	n.orch, err = orchestrator.New(orchCfg)
	if err != nil {
		return err
	}
	n.Jobs.SetRunner(n.orch.Runner())
	n.ready = append(n.ready, api.Checker{Name: "queue", Ping: n.orch.Ping})
	return n.orch.Start(ctx)
}

// startFanOut makes the gateway, which hears every update from the
// broker. A broker that can lose updates while it reconnects (a
// broker.Reconnecter: Redis) is told, now that the gateway exists, what
// to do when it is back: updates from other nodes were lost meanwhile, so
// every subscriber is resent its channels' current snapshots; the store
// may have restarted empty too, so the unfinished jobs are loaded back
// first (Warm skips those it holds), so project: and user: subscribers
// see them.
func (n *Node) startFanOut() (err error) {
	cfg := n.cfg
	// The server's own origins come from the address it is bound to (the
	// real port with --addr :0), never from a request's Host header.
	n.origins, err = origin.New(origin.Config{
		Listen: n.ln.Addr(), Allowed: cfg.AllowedOrigins, SingleUser: !n.authn.Enabled(), Registerer: n.reg, Log: n.log,
	})
	if err != nil {
		return fmt.Errorf("--allowed-origins: %w", err)
	}
	n.gw, err = gateway.New(gateway.Config{
		Broker: n.broker, Jobs: n.Jobs, Auth: n.authn,
		Origins:          n.origins,
		MaxFrameBytes:    int64(cfg.MaxFrameBytes),
		MaxSubscriptions: cfg.MaxSubscriptions,
		MaxConnsPerUser:  cfg.MaxConnsPerUser,
		MinWriteInterval: cfg.MinWriteInterval,
		Registerer:       n.reg, Log: n.log,
	})
	if err != nil {
		return err
	}
	if r, ok := n.broker.(broker.Reconnecter); ok {
		gw := n.gw
		r.OnReconnect(func() {
			n.rewarm(n.log)
			gw.Resync()
		})
	}
	return nil
}

// serve mounts the routes and serves them on the listener in the
// background.
func (n *Node) serve() {
	mux := http.NewServeMux()
	if !n.cfg.NoWebSocket {
		mux.HandleFunc("GET /ws", n.gw.ServeWS)
	}
	mux.HandleFunc("GET /api/v1/events", n.gw.ServeEvents)
	mux.HandleFunc("GET /api/v1/jobs/{id}/events", n.gw.ServeJobEvents)
	api.New(mux, api.Config{Jobs: n.Jobs, Auth: n.authn, Version: Version, Log: n.log, Ready: n.ready})
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{Registry: n.reg}))
	mux.Handle("GET /", web.Handler())

	n.srv = &http.Server{
		Handler:           instrument(n.reg, n.origins.Guard(api.JSONByDefault(mux))),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext:       gateway.ConnContext, // SSE streams bound their send buffer
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	go func() { n.serveErr <- n.srv.Serve(n.ln) }()
}

// stageServerURL is the URL a stage's command reaches this node at
// (PROGRESSD_SERVER): the address listened on, with a wildcard host
// (--addr 0.0.0.0:8000 or :8000) replaced by loopback, since the commands
// run on this machine.
func stageServerURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // a "tcp" listener on [::] takes IPv4 too
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Broker is the broker the node publishes every update on, for tests that
// record what the node publishes.
func (n *Node) Broker() broker.Broker { return n.broker }

// Orchestrator is the node's pipeline runner, for tests that watch it.
func (n *Node) Orchestrator() *orchestrator.Orchestrator { return n.orch }

// Addr is the address the node listens on (useful with port 0).
func (n *Node) Addr() string { return n.ln.Addr().String() }

// URL is the node's base URL.
func (n *Node) URL() string { return "http://" + n.Addr() }

// rewarm loads the unfinished jobs a restarted Redis lost back into it.
func (n *Node) rewarm(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Jobs.Warm(ctx); err != nil {
		log.Warn("reloading unfinished jobs into Redis after it came back failed; they return with their next report", "err", err)
	}
}

// Done delivers, once, the error that ended serving: why the server stopped
// by itself, or http.ErrServerClosed after Shutdown. It is never closed.
func (n *Node) Done() <-chan error { return n.serveErr }

// Shutdown stops accepting, ends every connection, flushes pending writes
// and closes the stores. It is safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() {
		n.log.Info("shutting down")
		// WebSocket clients get 1001 and SSE streams end first: they are
		// hijacked or long-lived, so http.Server.Shutdown would not end
		// them, only wait for them.
		gwErr := n.gw.Shutdown(ctx)
		err := n.srv.Shutdown(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			n.log.Warn("open requests did not finish in time; closing them")
			err = n.srv.Close()
		}
		n.stopErr = errors.Join(gwErr, err, n.closeStores(ctx))
	})
	return n.stopErr
}

func (n *Node) closeStores(ctx context.Context) error {
	var errs []error
	if n.orch != nil {
		errs = append(errs, n.orch.Stop(ctx)) // hands running jobs back; before the stores they report to
	}
	if n.webhooks != nil {
		errs = append(errs, n.webhooks.Stop(ctx)) // tries in flight end; the rest stay queued
	}
	if n.stopKeys != nil {
		n.stopKeys()
	}
	if n.Jobs != nil {
		n.Jobs.Close() // children's changes still owed to their parents
	}
	if n.broker != nil {
		errs = append(errs, n.broker.Close())
	}
	if n.wb != nil {
		errs = append(errs, n.wb.Close(ctx)) // flushes pending progress
	}
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	if n.snaps != nil {
		errs = append(errs, n.snaps.Close())
	}
	if n.rdb != nil {
		errs = append(errs, n.rdb.Close()) // last: the broker and snapshot store use it
	}
	return errors.Join(errs...)
}

// instrument records request latency by route pattern.
func instrument(reg prometheus.Registerer, next http.Handler) http.Handler {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "progressd_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status class (streams excluded).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "method", "code"})
	reg.MustRegister(hist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rw, r)
		if rw.hijacked || r.Pattern == "" {
			return
		}
		hist.WithLabelValues(r.Pattern, r.Method, fmt.Sprintf("%dxx", rw.code/100)).Observe(time.Since(start).Seconds())
	})
}

// redisLogger sends go-redis's own messages (mostly failed dials while
// Redis is away) to the node's log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis client: " + fmt.Sprintf(format, v...))
}
