package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/gateway"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/origin"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/webhook"
)

// Config is everything `progressd serve` can be told. Its zero value is not
// usable; start from Defaults.
type Config struct {
	Addr    string // listen address, host:port
	DataDir string // where the SQLite file lives
	DB      string // "" (SQLite in DataDir), a file path, or postgres://…
	Redis   string // "" (in memory) or redis://…
	// Snapshots says where the latest snapshots live: "memory" (one node)
	// or "redis" (on Redis, shared by the nodes). Broker says how updates
	// reach the other nodes: "local" (one node) or "redis" (Redis pub/sub).
	// "" follows Redis: "redis" when it is set. They are separate so that
	// a broker on another system is a package, a value here and its flag,
	// not an untangling of Redis.
	Snapshots      string
	Broker         string
	RedisPrefix    string        // starts every Redis key and the pub/sub channel; nodes that work together share it
	AuthSecret     string        // "" is single-user mode (loopback only)
	AllowedOrigins []string      // browser origins allowed besides the server's own: WebSocket, CORS, writes
	Pipelines      string        // YAML pipelines file; "" gives the built-in demo
	LogLevel       string        // debug, info, warn, error
	FlushInterval  time.Duration // write-behind interval for intermediate progress and log lines
	LogLines       int           // log lines kept per job (--log-lines)
	Retention      time.Duration // finished jobs older than this are deleted; 0 keeps all (--retention)
	AbandonAfter   time.Duration // unfinished jobs silent this long fail; 0 never (--abandon-after)
	ShutdownGrace  time.Duration // how long SIGTERM may take in all

	MaxFrameBytes    int // WebSocket frame limit
	MaxSubscriptions int // per connection
	MaxConnsPerUser  int // per user (not admins, not single-user mode)
	Workers          int // pipeline jobs run at once on this node
	// MinWriteInterval spaces the writes to one client (gateway.Config).
	MinWriteInterval time.Duration

	// WebhookURLs receive every terminal state and stall as a signed event
	// (package webhook); WebhookSecret signs them, required with a URL.
	WebhookURLs   []string
	WebhookSecret string

	// KillGrace is how long a stopped stage command's process group has
	// between SIGTERM and SIGKILL.
	KillGrace time.Duration
	// NodeTimeout (PostgreSQL queue only): a node silent this long is taken
	// for dead and its running jobs are retried or failed by another node.
	NodeTimeout time.Duration

	// Knobs for tests, which start nodes the way the product does (package
	// nodetest) rather than wiring the parts by hand. No flag sets them;
	// zero values are the product's.
	//
	// QueueRetryBackoff and QueuePollInterval shorten the orchestrator's
	// waits between a job's attempts and between its queue polls.
	QueueRetryBackoff time.Duration
	QueuePollInterval time.Duration
	// WebhookRetryBackoff, WebhookPollInterval and WebhookTimeout shorten
	// the webhook queue's first retry wait, its polls and one try's bound.
	WebhookRetryBackoff time.Duration
	WebhookPollInterval time.Duration
	WebhookTimeout      time.Duration
	// LapseInterval is how often the node looks for stalled and
	// abandoned jobs (default: every second).
	LapseInterval time.Duration
	// NoWebSocket leaves /ws unmounted, like a server without the gateway,
	// for the clients' HTTP fallback.
	NoWebSocket bool
}

// Defaults returns the configuration `progressd serve` starts from.
func Defaults() Config {
	return Config{
		Addr:             "127.0.0.1:8000",
		DataDir:          "./progressd-data",
		LogLevel:         "info",
		RedisPrefix:      "progressd:",
		FlushInterval:    time.Second,
		Retention:        720 * time.Hour,
		AbandonAfter:     jobs.DefaultAbandonAfter,
		LogLines:         progress.DefaultLogLines,
		ShutdownGrace:    14 * time.Second,
		MaxFrameBytes:    64 << 10,
		MaxSubscriptions: 1000,
		MaxConnsPerUser:  1000,
		Workers:          4,
		KillGrace:        5 * time.Second,
		NodeTimeout:      20 * time.Second,
		MinWriteInterval: gateway.DefaultMinWriteInterval,
	}
}

// Validate says exactly which setting is wrong.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("--addr is empty; use host:port such as 127.0.0.1:8000"))
	}
	if c.DB == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty and no --db is set: one of them must say where jobs are kept"))
	}
	if c.Postgres() {
		if _, err := pgxpool.ParseConfig(c.DB); err != nil {
			errs = append(errs, fmt.Errorf("--db: %w (use postgres://user:password@host:5432/database)", err))
		}
	}
	if c.Redis != "" {
		if _, err := redis.ParseURL(c.Redis); err != nil {
			errs = append(errs, fmt.Errorf("--redis: %w (use redis://[user:password@]host:6379/0, or rediss:// for TLS)", err))
		}
		if c.RedisPrefix == "" {
			errs = append(errs, errors.New("--redis-prefix is empty; nodes that work together need the same non-empty prefix, such as \"progressd:\""))
		}
	}
	for _, k := range []struct{ flag, value, one string }{
		{"--snapshots", c.SnapshotStore(), SnapshotsMemory},
		{"--broker", c.BrokerKind(), BrokerLocal},
	} {
		switch {
		case k.value != k.one && k.value != "redis":
			errs = append(errs, fmt.Errorf("%s %q: use %s or redis", k.flag, k.value, k.one))
		case k.value == "redis" && c.Redis == "":
			errs = append(errs, fmt.Errorf("%s redis needs --redis (redis://host:6379/0)", k.flag))
		}
	}
	if err := auth.CheckSecret(c.AuthSecret); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("--allowed-origins: %q is not an origin such as https://app.example.com", o))
		}
	}
	if err := origin.Check(c.AllowedOrigins); err != nil {
		errs = append(errs, fmt.Errorf("--allowed-origins: %w (use origins such as https://app.example.com)", err))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, errors.New("--flush-interval must be positive"))
	}
	if c.AbandonAfter < 0 {
		errs = append(errs, fmt.Errorf("--abandon-after %s is negative: give how long an unfinished job may go without a report (e.g. 24h), or 0 never to fail one for it", c.AbandonAfter))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("--retention %s is negative: give how long finished jobs are kept (e.g. 720h), or 0 to keep them all", c.Retention))
	}
	if err := c.webhooks().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MinWriteInterval < 0 || c.MinWriteInterval > gateway.MaxWriteInterval {
		errs = append(errs, fmt.Errorf("--min-write-interval %s: use 0 (write at once) up to %s", c.MinWriteInterval, gateway.MaxWriteInterval))
	}
	if c.KillGrace <= 0 {
		errs = append(errs, errors.New("--kill-grace must be positive"))
	}
	if c.NodeTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--node-timeout %s is too short: nodes heartbeat every fifth of it; use 1s or more", c.NodeTimeout))
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"--max-frame-bytes", c.MaxFrameBytes}, {"--max-subscriptions", c.MaxSubscriptions}, {"--max-conns-per-user", c.MaxConnsPerUser}, {"--workers", c.Workers}, {"--log-lines", c.LogLines}} {
		if l.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", l.name, l.v))
		}
	}
	return errors.Join(errs...)
}

// webhooks is the webhook queue's configuration, without the node's
// metrics and log.
func (c *Config) webhooks() webhook.Config {
	return webhook.Config{
		URLs: c.WebhookURLs, Secret: c.WebhookSecret,
		RetryBackoff: c.WebhookRetryBackoff, PollInterval: c.WebhookPollInterval, Timeout: c.WebhookTimeout,
	}
}

// Values of Config.Snapshots and Config.Broker besides "redis".
const (
	SnapshotsMemory = "memory"
	BrokerLocal     = "local"
)

// SnapshotStore is where the latest snapshots live: Snapshots, or, when it
// is "", "redis" with --redis and "memory" without.
func (c *Config) SnapshotStore() string {
	switch {
	case c.Snapshots != "":
		return c.Snapshots
	case c.Redis != "":
		return "redis"
	}
	return SnapshotsMemory
}

// BrokerKind is how updates reach the other nodes: Broker, or, when it is
// "", "redis" with --redis and "local" without.
func (c *Config) BrokerKind() string {
	switch {
	case c.Broker != "":
		return c.Broker
	case c.Redis != "":
		return "redis"
	}
	return BrokerLocal
}

// Postgres reports whether DB selects PostgreSQL.
func (c *Config) Postgres() bool {
	return strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://")
}

// DBPath is the SQLite file the node uses.
func (c *Config) DBPath() string {
	if c.DB != "" {
		return strings.TrimPrefix(c.DB, "sqlite://")
	}
	return filepath.Join(c.DataDir, "progressd.db")
}

// ParseLevel reads a --log-level value.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level %q must be debug, info, warn or error", s)
	}
	return l, nil
}
