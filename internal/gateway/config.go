package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/origin"
	"github.com/progressd/progressd/internal/progress"
)

// Jobs is what the gateway reads to send a new subscriber the current
// state, and applies a WebSocket report frame with. *jobs.Service
// implements it (package node checks that); Get returns an error matching
// progress.ErrNotFound for an unknown job. Recent takes a Filter with
// Project and Owner both set as that owner's jobs of the project.
// ReportMany applies reports in order for a caller that may change only
// the jobs allow accepts (another job: progress.ErrNotFound), each as if
// alone; a refused report's Outcome.Err is a *progress.Error.
type Jobs interface {
	Get(ctx context.Context, id string) (progress.Snapshot, error)
	Recent(ctx context.Context, f progress.Filter, limit int) ([]progress.Snapshot, error)
	// Logs reads a job's kept log lines after after (< 0: from the first
	// kept one), for logs: subscribers.
	Logs(ctx context.Context, id string, after int64, limit int) (progress.LogPage, error)
	ReportMany(ctx context.Context, reports []progress.JobReport, allow func(progress.Snapshot) bool) []progress.Outcome
}

// Defaults of Config; SPEC.md fixes the limits.
const (
	DefaultMaxFrameBytes    = 64 << 10
	DefaultMaxSubscriptions = 1000
	DefaultMaxConnsPerUser  = 1000
	DefaultMaxQueuedFrames  = 10_000
	DefaultMaxQueuedBytes   = 16 << 20
	DefaultSendBuffer       = 8 << 10
	DefaultRecentLimit      = 50
	DefaultAuthTimeout      = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultPongTimeout      = 15 * time.Second
	// DefaultMinWriteInterval is the write spacing `progressd serve`
	// starts with (Config's zero value stays "no spacing"). 85 ms: with
	// the flush clock's slot (an eighth) writes come ~94 ms apart, about
	// 11 a second per connection, which a person watching a bar cannot
	// tell from instant (~100 ms is where a delay starts to be seen). A
	// job reporting 100 times a second costs each viewer 11 writes, not
	// 100, and a viewer's staleness stays inside issue 17's 100 ms goal:
	// keepcurrent on the quiet machine measured p99 81 ms at 75 ms, 91 ms
	// at 85, 100.1 ms at 90 (too close), while the server CPU fell ~8%
	// from 75 to 85 ms (docs/benchmarks.md). State changes, replies and
	// the first write after a quiet period are never held back.
	DefaultMinWriteInterval = 85 * time.Millisecond
	// MaxWriteInterval bounds MinWriteInterval: a close frame or a pong
	// may wait that long behind it.
	MaxWriteInterval         = time.Second
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
)

// Config wires a Gateway. Broker, Jobs and Auth are required; every other
// zero value means its default.
type Config struct {
	Broker broker.Broker
	Jobs   Jobs
	Auth   *auth.Authenticator

	// Origins says which browser origins may open a WebSocket: the
	// server's own (from its listen address, never from the Host header)
	// and those of --allowed-origins. A request with no Origin header (not
	// a browser) is always allowed; with Origins nil, only such requests.
	Origins *origin.Policy

	// MaxFrameBytes is the largest client frame; a larger one closes the
	// connection with 1009.
	MaxFrameBytes int64
	// MaxSubscriptions is the channels one connection or stream may hold.
	MaxSubscriptions int
	// MaxConnsPerUser is the open connections and streams one user may
	// hold; it applies neither to admin tokens nor in single-user mode.
	MaxConnsPerUser int
	// MaxQueuedFrames and MaxQueuedBytes bound one connection's unsent
	// frames after coalescing; over either, the client is too slow (4008).
	MaxQueuedFrames int
	MaxQueuedBytes  int
	// SendBuffer is the kernel send buffer (SO_SNDBUF) of every WebSocket
	// connection and SSE stream, in bytes; Linux allots twice that, part
	// of it for its own bookkeeping. It bounds what the server has
	// written but a slow peer has not taken, so coalescing reaches the
	// socket: a slow reader gets the newest snapshot of each job next,
	// not seconds of stale ones queued in the kernel (see sendbuf.go).
	SendBuffer int
	// RecentLimit is how many finished jobs a project: or user: subscriber
	// is sent first, besides every active one.
	RecentLimit int

	// AuthTimeout is how long a connection without a token may take to
	// send its auth frame.
	AuthTimeout time.Duration
	// WriteTimeout bounds every write to a client.
	WriteTimeout time.Duration
	// PingInterval is how often an idle WebSocket is pinged; a peer that
	// does not answer within PongTimeout is dropped.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// HeartbeatInterval is how often an SSE stream gets a ": ping" comment.
	HeartbeatInterval time.Duration
	// RequestTimeout bounds each read of the job store on subscribe.
	RequestTimeout time.Duration
	// MinWriteInterval spaces the writes to one connection or stream: a
	// write comes at least this long after the previous one, and what was
	// queued meanwhile goes in it, each job's updates coalesced to its
	// newest (a terminal snapshot is never dropped). An update to a
	// connection written to longer ago than this goes out at once, and so
	// does a state change (a job queued, started or finished: the
	// terminal snapshot is never delayed) and a reply (with a subscribe's
	// first snapshots). It trades at most this much delay (plus an eighth
	// of it, the flush clock's slot) on a burst for fewer writes: a job
	// reporting 100 times a second reaches a browser, which draws at most
	// 60 frames a second, MinWriteInterval apart. A connection waiting out
	// the spacing holds no timer: one flush clock per gateway ends them
	// all (spacing.go). 0 writes as soon as possible; at most
	// MaxWriteInterval.
	MinWriteInterval time.Duration
	// clock times MinWriteInterval; nil is the real one. Tests give a
	// fake, so spacing is checked by what was written, not by how long
	// it took.
	clock clock

	// Registerer receives the gateway's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// withDefaults returns c with every zero setting at its default.
func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxConnsPerUser == 0 {
		c.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	if c.MaxQueuedFrames == 0 {
		c.MaxQueuedFrames = DefaultMaxQueuedFrames
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.RecentLimit == 0 {
		c.RecentLimit = DefaultRecentLimit
	}
	def(&c.AuthTimeout, DefaultAuthTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PongTimeout, DefaultPongTimeout)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	return c
}

// Validate says which setting is wrong, if any.
func (c Config) Validate() error {
	var errs []error
	if c.Broker == nil {
		errs = append(errs, errors.New("gateway: Config.Broker is required"))
	}
	if c.Jobs == nil {
		errs = append(errs, errors.New("gateway: Config.Jobs is required"))
	}
	if c.Auth == nil {
		errs = append(errs, errors.New("gateway: Config.Auth is required"))
	}
	for name, v := range map[string]int64{
		"MaxFrameBytes": c.MaxFrameBytes, "MaxSubscriptions": int64(c.MaxSubscriptions),
		"MaxConnsPerUser": int64(c.MaxConnsPerUser), "MaxQueuedFrames": int64(c.MaxQueuedFrames),
		"MaxQueuedBytes": int64(c.MaxQueuedBytes), "RecentLimit": int64(c.RecentLimit),
		"SendBuffer": int64(c.SendBuffer),
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("gateway: Config.%s is %d; it must be positive (0 means the default)", name, v))
		}
	}
	for name, v := range map[string]time.Duration{
		"AuthTimeout": c.AuthTimeout, "WriteTimeout": c.WriteTimeout, "PingInterval": c.PingInterval,
		"PongTimeout": c.PongTimeout, "HeartbeatInterval": c.HeartbeatInterval, "RequestTimeout": c.RequestTimeout,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("gateway: Config.%s is %v; it must be positive (0 means the default)", name, v))
		}
	}
	if c.MinWriteInterval < 0 || c.MinWriteInterval > MaxWriteInterval {
		errs = append(errs, fmt.Errorf("gateway: Config.MinWriteInterval is %v; it must be between 0 and %v", c.MinWriteInterval, MaxWriteInterval))
	}
	return errors.Join(errs...)
}
