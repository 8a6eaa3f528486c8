package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/progressd/progressd/internal/loadtest"
)

func newBench() *cobra.Command {
	cfg := loadtest.Defaults()
	var (
		scenario  string
		asJSON    bool
		quiet     bool
		serveArgs []string
		serverLog string
		via       string
		floor     bool
		floorPeer string
	)
	cmd := &cobra.Command{
		Use:   "bench [--scenario fanout|perjob|idle|ingest|keepcurrent|logs] [--clients N] [--duration D] [--server URL]",
		Short: "Load-test a server on this machine: delivery rate, latency, losses, server CPU and memory",
		Long: `Load-test progressd over its real protocol, on this machine only.

By default bench starts a server itself (this binary, "serve" on a free
127.0.0.1 port with a temporary data directory) so it can read the server's
CPU time and memory from /proc. --server uses a running server instead
(loopback addresses only); give --server-pid to measure it too.

Scenarios:
  fanout  --clients WebSocket clients subscribe to one job; --rate reports a
          second go to it for --duration, then "succeeded".
  perjob  every client subscribes to its own job; each job gets --reports
          reports spread over --duration, then "succeeded".
  idle    the clients connect (each subscribed to a job of its own unless
          --idle-subscribe=false) and stay for --duration: server memory
          and goroutines per connection.
  ingest  --jobs jobs each get --reports reports and then "succeeded", as
          fast as the server takes them: reports/s and server CPU per
          report, once per way of reporting (--via http: one per request;
          batch: --batch per POST /api/v1/reports; ws: report frames on a
          WebSocket), each against a fresh server. --clients viewers (0
          allowed) watch the jobs in turn and must end on the terminal
          snapshot.
  keepcurrent
          fanout that samples every 10 ms how far behind the newest report
          each viewer is (staleness), run twice: with --min-write-interval
          0 (every update written: the yardstick) and with the server's
          defaults (or --serve-arg flags), each against a fresh server.
          Both runs report the same way (--via ws by default: report
          frames on one WebSocket, as a worker reporting 100 times a
          second should; --via http: one request per report), so the
          ratio compares delivery only.

  logs    every client follows the log lines of a job of its own (logs:);
          each job gets --line-rate lines a second for --duration, --via
          http (one line per POST /api/v1/jobs/{id}/logs, as a plain worker)
          or batch (every --log-tick the lines due, one report with "log"
          per job in POST /api/v1/reports, as the SDKs): lag from a line's
          send to its arrival, lines lost, server CPU per line.

ingest and keepcurrent also measure this machine's floor (--floor): a bare
program doing only the system calls the same work cannot avoid, so a
figure can be read against what the machine charges.

Every report carries its send time, so each delivery gives an end-to-end
latency (HTTP report to WebSocket update); "update or newer" also counts
the reports a client got a newer snapshot in place of, each until that
newer one arrived — what a progress bar shows. A snapshot a client never got
counts as coalesced if it later got a newer one of the job (the server may
replace an unsent older snapshot), lost otherwise. bench exits 1 unless
every client connected, stayed, and ended with its job's final snapshot.

The open-files limit is per process: the server and bench each need one
descriptor per client, hence at most 19,000 clients.`,
		Example: `  progressd bench --scenario fanout --clients 10000 --rate 50 --duration 20s
  progressd bench --scenario perjob --clients 5000 --reports 20 --json
  progressd bench --scenario idle --clients 19000 --duration 30s
  progressd bench --server http://127.0.0.1:8000 --server-pid $(pgrep -n progressd)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if floorPeer != "" { // the other process of a floor measurement
				if code := loadtest.RunFloorPeer(floorPeer); code != 0 {
					return &exitError{code: code, err: errors.New("bench: the floor's peer failed")}
				}
				return nil
			}
			cfg.Scenario = loadtest.Scenario(scenario)
			level := slog.LevelInfo
			if quiet {
				level = slog.LevelWarn
			}
			cfg.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			// A variable of its own: the server bench starts inherits the
			// environment, and PROGRESSD_CPUPROFILE profiles that server.
			stopProfile, err := startCPUProfile("PROGRESSD_BENCH_CPUPROFILE")
			if err != nil {
				return err
			}
			defer stopProfile()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Scenario == loadtest.Ingest || cfg.Scenario == loadtest.KeepCurrent {
				return runComparison(ctx, cmd.OutOrStdout(), cfg, comparison{
					serveArgs: serveArgs, serverLog: serverLog, via: via, floor: floor, json: asJSON,
				})
			}
			if via != "" && (cfg.Scenario == loadtest.PerJob || cfg.Scenario == loadtest.Idle) {
				return fmt.Errorf("--via applies to fanout, keepcurrent, ingest and logs, not %s", cfg.Scenario)
			}
			cfg.Via = loadtest.Via(cmp.Or(via, string(cfg.Scenario.DefaultVia())))
			res, err := runBench(ctx, cfg, serveArgs, serverLog)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				printBenchResult(cmd.OutOrStdout(), res)
			}
			if !res.OK {
				return &exitError{code: 1, err: errors.New("bench: " + strings.Join(res.Problems(), "; "))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", string(cfg.Scenario), "fanout, perjob, idle, ingest, keepcurrent or logs")
	f.IntVar(&cfg.Clients, "clients", cfg.Clients, fmt.Sprintf("WebSocket clients (at most %d)", loadtest.MaxClients))
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, fmt.Sprintf("how long reports are sent (idle: how long connections are held), at most %v", loadtest.MaxDuration))
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "fanout: reports per second to the one job")
	f.IntVar(&cfg.Reports, "reports", cfg.Reports, "perjob: reports per job before the final one")
	f.IntVar(&cfg.Jobs, "jobs", cfg.Jobs, "ingest: jobs reported on")
	f.StringVar(&via, "via", "", "how reports are sent: ws (report frames on one WebSocket) or http (one request each); "+
		"keepcurrent: ws by default, what a worker reporting 100 times a second should use, so the run measures delivery, not one HTTP request per report; "+
		"fanout: http by default, as its published figures; ingest: http, batch or ws, empty runs all three; logs: http (default) or batch")
	f.Float64Var(&cfg.LineRate, "line-rate", cfg.LineRate, "logs: lines per second to each job")
	f.DurationVar(&cfg.LogTick, "log-tick", cfg.LogTick, "logs --via batch: how often the lines due are sent")
	f.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, fmt.Sprintf("ingest --via batch: reports per request (at most %d)", loadtest.MaxBatch))
	f.BoolVar(&floor, "floor", true, "ingest, keepcurrent: also measure this machine's floor")
	f.StringVar(&floorPeer, "floor-peer", "", "internal: be the other process of a floor measurement")
	_ = f.MarkHidden("floor-peer")
	f.BoolVar(&cfg.IdleSubscribe, "idle-subscribe", cfg.IdleSubscribe, "idle: subscribe each connection to a job of its own")
	f.StringVar(&cfg.Server, "server", "", "a running server, http://127.0.0.1:PORT (loopback only); empty: start one")
	f.StringVar(&cfg.ReportServer, "report-server", "", "with --server: create and report jobs on this other node of the same system (shared --db and --redis), to measure delivery across nodes")
	f.IntVar(&cfg.ServerPID, "server-pid", 0, "with --server: its process id, to measure its CPU and memory")
	f.StringVar(&cfg.Token, "token", "", "with --server on a server with --auth-secret: a token (an admin token avoids the per-user connection limit)")
	f.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "HTTP connections sending reports in parallel")
	f.IntVar(&cfg.DialConcurrency, "dial-concurrency", cfg.DialConcurrency, "WebSocket handshakes in flight at once (keeps the server's accept backlog from overflowing)")
	f.IntVar(&cfg.DialRetries, "dial-retries", cfg.DialRetries, "retries of a failed handshake, with backoff")
	f.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "how long clients may take to get the final snapshot after it is sent")
	f.StringArrayVar(&serveArgs, "serve-arg", nil, "extra flag for the server bench starts, e.g. --serve-arg=--log-level=info (repeatable)")
	f.StringVar(&serverLog, "server-log", "", "write the output of the server bench starts to this file")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	return cmd
}

// runBench runs cfg, against a server it starts unless cfg.Server is set.
func runBench(ctx context.Context, cfg loadtest.Config, serveArgs []string, serverLog string) (*loadtest.Result, error) {
	if cfg.Server != "" {
		if len(serveArgs) > 0 || serverLog != "" {
			return nil, errors.New("--serve-arg and --server-log only apply to the server bench starts, not with --server")
		}
		return loadtest.Run(ctx, cfg)
	}
	if cfg.ServerPID != 0 || cfg.Token != "" || cfg.ReportServer != "" {
		return nil, errors.New("--server-pid, --token and --report-server only apply with --server")
	}
	// Check the settings before starting anything.
	check := cfg
	check.Server = "http://127.0.0.1:1"
	if err := check.Validate(); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start the server: %w", err)
	}
	opts := loadtest.ServerOptions{Executable: exe, MaxConnsPerUser: cfg.Clients + 100, Args: serveArgs}
	if serverLog != "" {
		f, err := os.Create(serverLog)
		if err != nil {
			return nil, fmt.Errorf("--server-log: %w", err)
		}
		defer f.Close()
		opts.Output = f
	}
	srv, err := loadtest.StartServer(ctx, opts)
	if err != nil {
		return nil, err
	}
	cfg.Log.Info("server started", "url", srv.URL, "pid", srv.PID)
	cfg.Server, cfg.ServerPID = srv.URL, srv.PID
	res, runErr := loadtest.Run(ctx, cfg)
	if runErr != nil && srv.Exited() {
		runErr = fmt.Errorf("%w\nthe server bench started has exited; see its output below", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Stop(sctx); err != nil { // the exit status and the end of the output
		cfg.Log.Warn("the server bench started did not stop cleanly", "err", err)
	}
	return res, runErr
}

func printBenchResult(w io.Writer, r *loadtest.Result) {
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-18s %s\n", label, fmt.Sprintf(format, args...))
	}
	load := ""
	switch r.Scenario {
	case loadtest.Fanout, loadtest.KeepCurrent:
		load = fmt.Sprintf(", %g reports/s via %s", r.Rate, r.Via)
	case loadtest.PerJob:
		load = fmt.Sprintf(", %d reports per job", r.ReportsPerJob)
	case loadtest.Ingest:
		load = fmt.Sprintf(", %d jobs × %d reports + the final one, via %s", r.Jobs, r.ReportsPerJob, r.Via)
	case loadtest.Logs:
		load = fmt.Sprintf(", %d jobs × %g lines/s via %s", r.Jobs, r.Rate, r.Via)
		if r.Via == loadtest.ViaBatch {
			load += fmt.Sprintf(" every %v", r.LogTick)
		}
	}
	via := ""
	if r.ReportServerURL != "" {
		via = ", reports via " + r.ReportServerURL
	}
	fmt.Fprintf(w, "progressd bench: %s, %d clients%s for %v, %s%s\n", r.Scenario, r.Clients, load, r.Duration, r.ServerURL, via)
	p("connected", "%d of %d in %.1f s (%d jobs)", r.Connected, r.Clients, r.ConnectSeconds, r.Jobs)
	if r.Scenario != loadtest.Idle {
		skipped := ""
		if r.ReportsSkipped > 0 {
			skipped = fmt.Sprintf(", %s skipped at the publishing deadline", benchComma(uint64(r.ReportsSkipped)))
		}
		p("reports", "%s sent (%.1f/s), %d failed%s, worst lag behind schedule %s",
			benchComma(uint64(r.Reports)), r.ReportsPerSecond, r.ReportErrors, skipped, benchDuration(r.PublishLagMax))
		if r.ScheduleSlipped() {
			p("note", "reports fell %s behind schedule: the server answered them more slowly than asked, so it got less load than configured", benchDuration(r.PublishLagMax))
		}
		p("window", "%.2f s, first report to last delivery", r.WindowSeconds)
		p("delivered", "%s updates, %s/s", benchComma(r.Delivered), benchComma(uint64(r.DeliveredPerSecond)))
		if r.Scenario == loadtest.Logs {
			p("log lines", "reports above are lines; %s requests carried them; %d frames said lines were dropped before the follower got them", benchComma(uint64(r.Requests)), r.Truncated)
		}
		l := r.Latency
		p("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%s samples)",
			benchDuration(l.P50), benchDuration(l.P90), benchDuration(l.P99), benchDuration(l.P999), benchDuration(l.Max), benchComma(l.Samples))
		if f := r.LatencyUpdateOrNewer; f.Samples > 0 {
			p("update or newer", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (every report, coalesced ones by the delivery that replaced them)",
				benchDuration(f.P50), benchDuration(f.P90), benchDuration(f.P99), benchDuration(f.P999), benchDuration(f.Max))
		}
		if st := r.Staleness; st.Samples > 0 {
			p("staleness", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%s samples of how far behind the newest report a viewer was, every %v)",
				benchDuration(st.P50), benchDuration(st.P90), benchDuration(st.P99), benchDuration(st.P999), benchDuration(st.Max), benchComma(st.Samples), loadtest.StalenessEvery)
		}
		p("accounting", "expected %s = delivered %s + coalesced %s + lost %s",
			benchComma(r.Expected), benchComma(r.Delivered), benchComma(r.Coalesced), benchComma(r.Lost))
		p("final snapshot", "missed by %d clients", r.MissedFinal)
		if r.Stale > 0 || r.Unexpected > 0 {
			p("odd updates", "%d stale, %d from no report of this run", r.Stale, r.Unexpected)
		}
	} else {
		p("held", "%.1f s", r.WindowSeconds)
		if r.Jobs > 0 {
			p("initial snapshot", "missed by %d clients", r.MissedInitial)
		}
	}
	codes := ""
	if len(r.CloseCodes) > 0 {
		b, _ := json.Marshal(r.CloseCodes)
		codes = " " + string(b)
	}
	p("disconnected", "%d%s", r.Disconnected, codes)
	s := r.Server
	if s.Measured {
		cpu := fmt.Sprintf("%.2f s", s.CPUSeconds)
		if r.Delivered > 0 {
			cpu += fmt.Sprintf(" (%.3f s per 100k deliveries)", s.CPUSecondsPer100k)
		}
		if r.Scenario == loadtest.Ingest && r.Reports > 0 {
			cpu += fmt.Sprintf(" (%.3f s per 100k reports)", s.CPUSecondsPer100kReports)
		}
		if r.Scenario == loadtest.Logs && r.Reports > 0 {
			cpu += fmt.Sprintf(" (%.1f µs per line sent)", s.CPUSecondsPer100kReports*10)
		}
		p("server CPU", "%s, pid %d", cpu, s.PID)
		p("server RSS", "%s before, %s connected (%+.1f KiB per connection), peak %s, end %s",
			benchMiB(s.RSSBefore), benchMiB(s.RSSConnected), s.RSSPerConn/1024, benchMiB(s.RSSPeak), benchMiB(s.RSSEnd))
	} else if s.PID != 0 {
		p("server", "CPU and memory of pid %d could not be read (see the errors)", s.PID)
	} else {
		p("server", "CPU and memory not measured (give --server-pid)")
	}
	if s.GoroutinesBefore > 0 && s.GoroutinesConnected > 0 {
		p("server goroutines", "%d before, %d connected (%.2f per connection)", s.GoroutinesBefore, s.GoroutinesConnected, s.GoroutinesPerConn)
	}
	p("bench CPU", "%.2f s (shares the machine with the server)", r.ToolCPUSeconds)
	for _, e := range r.Errors {
		p("error", "%s", e)
	}
	if r.OK {
		p("result", "OK")
	} else {
		p("result", "FAILED: %s", strings.Join(r.Problems(), "; "))
	}
}

func benchDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func benchMiB(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// benchComma writes n with thousands separators.
func benchComma(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
