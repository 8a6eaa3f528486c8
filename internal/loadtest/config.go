package loadtest

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"time"
)

// Scenario is the shape of load a Run applies.
type Scenario string

// The scenarios of `progressd bench --scenario`.
const (
	// Fanout: every client subscribes to one job; Rate reports a second go
	// to that job for Duration, then one `succeeded`.
	Fanout Scenario = "fanout"
	// PerJob: every client subscribes to its own job; each job gets
	// Reports reports spread over Duration, then one `succeeded`.
	PerJob Scenario = "perjob"
	// Idle: the clients connect (each subscribed to its own job when
	// IdleSubscribe is set), stay for Duration and receive nothing else;
	// the point is the server's memory per connection.
	Idle Scenario = "idle"
	// Ingest: Jobs jobs each get Reports reports and then `succeeded`,
	// sent as fast as the server takes them through Via (one per HTTP
	// request, batches, or WebSocket frames); the point is reports per
	// second and the server's CPU per report. Clients viewers (0 is
	// allowed) subscribe to the jobs in turn and must each end on their
	// job's terminal snapshot.
	Ingest Scenario = "ingest"
	// Logs: every client follows the logs: channel of a job of its own;
	// each job is appended LineRate lines a second for Duration, through
	// Via: http, one line per POST /api/v1/jobs/{id}/logs; batch, every
	// LogTick the lines due, one report with "log" per job in POST
	// /api/v1/reports (logs.go). Latency is line sent → received.
	Logs Scenario = "logs"
	// KeepCurrent is Fanout that also samples, every StalenessEvery, how
	// far behind the newest report each viewer is (Result.Staleness).
	KeepCurrent Scenario = "keepcurrent"
)

// Scenarios lists every Scenario, for help texts.
var Scenarios = []Scenario{Fanout, PerJob, Idle, Ingest, KeepCurrent, Logs}

// DefaultVia is how `progressd bench` sends the scenario's reports when
// --via is not given. KeepCurrent: ws, what a worker reporting 100 times a
// second should use (SPEC.md "Reporting at high rates"), so the run
// measures delivery rather than one HTTP request per report. Fanout stays
// on http, one request per report, as its published figures and the
// comparisons with other servers were taken. Ingest runs every Via when
// none is given; the others send over http.
func (s Scenario) DefaultVia() Via {
	if s == KeepCurrent {
		return ViaWebSocket
	}
	return ViaHTTP
}

// fanout reports whether the scenario sends Rate reports a second to one
// job.
func (s Scenario) fanout() bool { return s == Fanout || s == KeepCurrent }

// Bounds of Config. MaxClients comes from the open-files limit of 20,000
// per process on the machines we measure on: the server and this tool each
// hold one descriptor per connection, and both need some to spare.
const (
	MaxClients     = 19_000
	MaxDuration    = 10 * time.Minute
	MaxRate        = 100_000 // reports per second (fanout)
	MaxReports     = 100_000 // reports per job (perjob)
	MaxLineRate    = 1_000   // lines per second per job (logs)
	MaxTotalReport = 5_000_000
	MaxPublishers  = 256
	MaxDialWorkers = 1024
	MaxDialRetries = 10
)

// Config is one load test. Start from Defaults; Validate says which
// setting is wrong.
type Config struct {
	Scenario Scenario
	// Server is the server's base URL, http://host:port; host must be a
	// loopback address (127.0.0.0/8, ::1) or "localhost".
	Server string
	// ReportServer, if set, is another node of the same system (shared
	// database and Redis): jobs are created and reported there while the
	// clients stay on Server, so delivery latency includes the hop between
	// nodes. Same loopback rule as Server.
	ReportServer string
	// Token, if set, is sent as Authorization: Bearer on every request and
	// WebSocket handshake (a server with --auth-secret). Without auth, every
	// connection is user "local" and no per-user connection limit applies.
	Token string
	// ServerPID is the server's process id on this machine, for CPU and
	// memory figures from /proc; 0 measures nothing.
	ServerPID int

	Clients  int
	Duration time.Duration
	// Rate is reports per second to the one job of Fanout.
	Rate float64
	// Reports is reports per job in PerJob, besides the final `succeeded`.
	Reports int
	// Jobs is how many jobs Ingest reports on.
	Jobs int
	// Via is how Ingest, Fanout and KeepCurrent send their reports (Fanout
	// and KeepCurrent: http or ws), and Logs its lines (http or batch).
	Via Via
	// BatchSize is how many reports Ingest puts in one POST
	// /api/v1/reports (Via batch).
	BatchSize int
	// LineRate is lines a second to each job of Logs; LogTick how often
	// Logs via batch sends the lines due.
	LineRate float64
	LogTick  time.Duration
	// IdleSubscribe makes each Idle client subscribe to a job of its own;
	// without it Idle clients subscribe to nothing.
	IdleSubscribe bool
	// Project is the project the run's jobs are created in.
	Project string

	// Publishers is how many HTTP connections send reports in parallel.
	// Reports to one job in PerJob always come from the same publisher, in
	// order; in Fanout they interleave, and the final report is sent after
	// all the others have been answered.
	Publishers int
	// DialConcurrency bounds the WebSocket handshakes in flight, so the
	// server's accept backlog never overflows: each dial worker connects
	// one client, waits for its subscribe reply, then takes the next.
	DialConcurrency int
	// DialRetries is how many more times a failed handshake is tried (with
	// backoff) before the client counts as failed. A refusal that cannot
	// change (a 4xx other than 429) is not retried and ends the run.
	DialRetries int
	// ConnectTimeout bounds the whole connect phase.
	ConnectTimeout time.Duration
	// DrainTimeout is how long after the final report clients may take to
	// receive the final snapshot before they count as having missed it.
	DrainTimeout time.Duration
	// PublishGrace bounds a server that answers reports slowly: progress
	// reports not sent by start + 2×Duration + PublishGrace are skipped,
	// and final reports not sent a minute after that are failed.
	PublishGrace time.Duration

	// Log receives progress of the phases (info) and per-client trouble
	// (debug); nil logs nothing.
	Log *slog.Logger
}

// Defaults returns the configuration `progressd bench` starts from.
func Defaults() Config {
	return Config{
		Scenario:        Fanout,
		Clients:         1000,
		Duration:        10 * time.Second,
		Rate:            100,
		Reports:         10,
		Jobs:            1000,
		Via:             ViaHTTP,
		BatchSize:       MaxBatch,
		LineRate:        10,
		LogTick:         100 * time.Millisecond,
		IdleSubscribe:   true,
		Project:         "bench",
		Publishers:      8,
		DialConcurrency: 128,
		DialRetries:     3,
		ConnectTimeout:  3 * time.Minute,
		DrainTimeout:    15 * time.Second,
		PublishGrace:    30 * time.Second,
	}
}

// Validate says exactly which setting is wrong.
func (c *Config) Validate() error {
	var errs []error
	switch c.Scenario {
	case Fanout, PerJob, Idle, Ingest, KeepCurrent, Logs:
	default:
		errs = append(errs, fmt.Errorf("--scenario %q: use fanout, perjob, idle, ingest, keepcurrent or logs", c.Scenario))
	}
	if err := CheckLoopback(c.Server); err != nil {
		errs = append(errs, err)
	}
	if c.ReportServer != "" {
		if err := CheckLoopback(c.ReportServer); err != nil {
			errs = append(errs, fmt.Errorf("--report-server: %w", err))
		}
	}
	switch {
	case c.Clients == 0 && c.Scenario == Ingest: // reports with nobody watching
	case c.Clients <= 0:
		errs = append(errs, fmt.Errorf("--clients must be positive, got %d", c.Clients))
	case c.Clients > MaxClients:
		errs = append(errs, fmt.Errorf("--clients %d is over %d: the open-files limit is 20,000 per process, "+
			"and the server and this tool each hold one descriptor per connection plus some to spare", c.Clients, MaxClients))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("--duration %v must be positive and at most %v", c.Duration, MaxDuration))
	}
	switch c.Scenario {
	case Fanout, KeepCurrent:
		if c.Via != ViaHTTP && c.Via != ViaWebSocket {
			errs = append(errs, fmt.Errorf("--via %q: %s reports via http (one request per report) or ws (report frames on one WebSocket)", c.Via, c.Scenario))
		}
		if !(c.Rate > 0) || c.Rate > MaxRate || math.IsInf(c.Rate, 0) {
			errs = append(errs, fmt.Errorf("--rate %v must be positive and at most %d reports per second", c.Rate, MaxRate))
		} else if n := c.FanoutReports(); n > MaxTotalReport {
			errs = append(errs, fmt.Errorf("--rate × --duration is %d reports; at most %d", n, MaxTotalReport))
		}
	case PerJob:
		if c.Reports <= 0 || c.Reports > MaxReports {
			errs = append(errs, fmt.Errorf("--reports %d must be between 1 and %d", c.Reports, MaxReports))
		} else if n := int64(c.Reports) * int64(c.Clients); n > MaxTotalReport {
			errs = append(errs, fmt.Errorf("--reports × --clients is %d reports; at most %d", n, MaxTotalReport))
		}
	case Logs:
		if !(c.LineRate > 0) || c.LineRate > MaxLineRate || math.IsInf(c.LineRate, 0) {
			errs = append(errs, fmt.Errorf("--line-rate %v must be positive and at most %d lines per second per job", c.LineRate, MaxLineRate))
		} else if n := int64(c.LogLinesPerJob()) * int64(c.Clients); n > MaxTotalReport {
			errs = append(errs, fmt.Errorf("--line-rate × --duration × --clients is %d lines; at most %d", n, MaxTotalReport))
		}
		if c.Via != ViaHTTP && c.Via != ViaBatch {
			errs = append(errs, fmt.Errorf("--via %q: logs sends lines via http (one per request) or batch (per --log-tick)", c.Via))
		}
		if c.LogTick < time.Millisecond || c.LogTick > c.Duration {
			errs = append(errs, fmt.Errorf("--log-tick %v must be at least 1ms and at most --duration", c.LogTick))
		}
	case Ingest:
		switch {
		case c.Jobs <= 0 || c.Jobs > MaxClients:
			errs = append(errs, fmt.Errorf("--jobs %d must be between 1 and %d", c.Jobs, MaxClients))
		case c.Reports <= 0 || c.Reports > MaxReports:
			errs = append(errs, fmt.Errorf("--reports %d must be between 1 and %d", c.Reports, MaxReports))
		case int64(c.Reports+1)*int64(c.Jobs) > MaxTotalReport:
			errs = append(errs, fmt.Errorf("(--reports + 1) × --jobs is %d reports; at most %d", int64(c.Reports+1)*int64(c.Jobs), MaxTotalReport))
		}
		if c.Via != ViaHTTP && c.Via != ViaBatch && c.Via != ViaWebSocket {
			errs = append(errs, fmt.Errorf("--via %q: use http, batch or ws", c.Via))
		}
		if c.BatchSize < 1 || c.BatchSize > MaxBatch {
			errs = append(errs, fmt.Errorf("--batch %d must be between 1 and %d", c.BatchSize, MaxBatch))
		}
	}
	if c.Project == "" || len(c.Project) > 128 || strings.ContainsAny(c.Project, " \t\r\n") {
		errs = append(errs, fmt.Errorf("project %q must be 1–128 bytes without spaces", c.Project))
	}
	bounds := []struct {
		name      string
		v, lo, hi int
	}{
		{"--publishers", c.Publishers, 1, MaxPublishers},
		{"--dial-concurrency", c.DialConcurrency, 1, MaxDialWorkers},
		{"--dial-retries", c.DialRetries, 0, MaxDialRetries},
	}
	for _, b := range bounds {
		if b.v < b.lo || b.v > b.hi {
			errs = append(errs, fmt.Errorf("%s %d must be between %d and %d", b.name, b.v, b.lo, b.hi))
		}
	}
	if c.ConnectTimeout <= 0 || c.DrainTimeout <= 0 || c.PublishGrace <= 0 {
		errs = append(errs, errors.New("the connect and drain timeouts and the publish grace must be positive"))
	}
	if c.ServerPID < 0 {
		errs = append(errs, fmt.Errorf("--server-pid %d is not a process id", c.ServerPID))
	}
	return errors.Join(errs...)
}

// LogLinesPerJob is how many lines Logs sends each job: LineRate ×
// Duration, at least one.
func (c *Config) LogLinesPerJob() int {
	return max(int(math.Round(c.LineRate*c.Duration.Seconds())), 1)
}

// FanoutReports is how many progress reports Fanout sends before the
// final one: Rate × Duration, at least one.
func (c *Config) FanoutReports() int64 {
	n := int64(math.Round(c.Rate * c.Duration.Seconds()))
	return max(n, 1)
}

// CheckLoopback accepts a server base URL only if it is http(s) on a
// loopback host: 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or
// "localhost". A load tool that could be aimed at any host is a
// denial-of-service tool; this one is for measuring our own server.
func CheckLoopback(server string) error {
	if server == "" {
		return errors.New("--server is empty; give http://127.0.0.1:PORT or leave it out to start a server")
	}
	u, err := url.Parse(server)
	if err != nil {
		return fmt.Errorf("--server %q: %w", server, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--server %q must be an http:// or https:// URL such as http://127.0.0.1:8000", server)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("--server %q must be a base URL (scheme://host:port) without user, path or query", server)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--server %q is not on this machine's loopback: bench only runs against 127.0.0.0/8, ::1 or localhost", server)
}
