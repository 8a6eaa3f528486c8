package loadtest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/node"
	"github.com/progressd/progressd/internal/testsvc"
)

// startNode runs a real server in this process on a free loopback port,
// in single-user mode, with its data in a temp dir.
func startNode(t testing.TB, mods ...func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.FlushInterval = 50 * time.Millisecond
	for _, mod := range mods {
		mod(&cfg)
	}
	n, err := node.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}

// benchConfig is a small run against n. The server runs in this process,
// so its CPU and memory are this process's: measured only to exercise
// the /proc path.
func benchConfig(t *testing.T, n *node.Node, s Scenario) Config {
	cfg := Defaults()
	cfg.Scenario = s
	cfg.Server = n.URL()
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		cfg.ServerPID = os.Getpid()
	}
	cfg.Clients = 20
	cfg.Duration = time.Second
	cfg.DrainTimeout = 10 * time.Second
	cfg.ConnectTimeout = 30 * time.Second
	cfg.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// checkDelivery asserts what every Fanout and PerJob run must show.
func checkDelivery(t *testing.T, res *Result, reports int64) {
	t.Helper()
	if !res.OK {
		t.Errorf("not OK: %s; errors: %q", strings.Join(res.Problems(), "; "), res.Errors)
	}
	if res.Connected != res.Clients || res.Reports != reports || res.ReportErrors != 0 {
		t.Errorf("connected %d/%d, reports %d (want %d), report errors %d",
			res.Connected, res.Clients, res.Reports, reports, res.ReportErrors)
	}
	if res.Delivered+res.Coalesced+res.Lost != res.Expected || res.Lost != 0 || res.MissedFinal != 0 {
		t.Errorf("expected %d = delivered %d + coalesced %d + lost %d; missed final %d",
			res.Expected, res.Delivered, res.Coalesced, res.Lost, res.MissedFinal)
	}
	if res.Latency.Samples != res.Delivered || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Errorf("latency %+v for %d deliveries", res.Latency, res.Delivered)
	}
	if res.DeliveredPerSecond <= 0 || res.WindowSeconds <= 0 {
		t.Errorf("delivered/s %v over %v s", res.DeliveredPerSecond, res.WindowSeconds)
	}
	if res.Server.PID != 0 && (!res.Server.Measured || res.Server.RSSEnd == 0) {
		t.Errorf("server not measured: %+v", res.Server)
	}
	// The server shares this process with parallel tests, so only check
	// that the count was read, not how it moved.
	if res.Server.GoroutinesConnected <= 0 {
		t.Errorf("goroutines %d before, %d connected: /metrics not read?", res.Server.GoroutinesBefore, res.Server.GoroutinesConnected)
	}
}

func TestRunFanout(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, Fanout)
	cfg.Rate = 50 // × 1 s: 50 updates, then the final one
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, res, 51)
	if res.Jobs != 1 || res.Expected != 20*51 {
		t.Errorf("jobs %d expected %d, want 1 and %d", res.Jobs, res.Expected, 20*51)
	}
}

func TestRunPerJob(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, PerJob)
	cfg.Reports = 5
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, res, 20*6)
	if res.Jobs != 20 || res.Expected != 20*6 {
		t.Errorf("jobs %d expected %d, want 20 and %d", res.Jobs, res.Expected, 20*6)
	}
}

func TestRunIdle(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	for _, subscribe := range []bool{true, false} {
		cfg := benchConfig(t, n, Idle)
		cfg.Duration = 200 * time.Millisecond
		cfg.IdleSubscribe = subscribe
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Connected != 20 || res.Delivered != 0 {
			t.Errorf("subscribe=%v: ok %v connected %d delivered %d problems %q", subscribe, res.OK, res.Connected, res.Delivered, res.Problems())
		}
		if want := map[bool]int{true: 20, false: 0}[subscribe]; res.Jobs != want {
			t.Errorf("subscribe=%v: %d jobs, want %d", subscribe, res.Jobs, want)
		}
	}
}

// TestRunPublishingDeadline asks for far more reports than the server can
// answer in time: the run must end on time, skip the reports it could not
// send, and still bring every client the final snapshot.
func TestRunPublishingDeadline(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, Fanout)
	cfg.Rate = MaxRate // 100k reports in 1 s: no server here answers that many
	cfg.Duration = time.Second
	cfg.PublishGrace = 100 * time.Millisecond
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the run took %v: the publishing deadline did not hold", d)
	}
	if res.ReportsSkipped == 0 || !res.ScheduleSlipped() {
		t.Errorf("skipped %d reports of %d; want some skipped", res.ReportsSkipped, cfg.FanoutReports())
	}
	if res.Reports+res.ReportsSkipped != cfg.FanoutReports()+1 {
		t.Errorf("sent %d + skipped %d != %d reports + the final", res.Reports, res.ReportsSkipped, cfg.FanoutReports())
	}
	if res.MissedFinal != 0 || res.Lost != 0 || !res.OK {
		t.Errorf("missed final %d, lost %d, problems %q", res.MissedFinal, res.Lost, res.Problems())
	}
}

func TestRunRefusesRemoteServerBeforeDialing(t *testing.T) {
	t.Parallel()
	cfg := Defaults()
	cfg.Server = "http://192.0.2.1:8000" // TEST-NET-1: never routed
	start := time.Now()
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Run = %v, want a loopback refusal", err)
	}
	if time.Since(start) > time.Second {
		t.Error("the refusal took long enough to have dialed")
	}
}

func TestRunCanceled(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, Idle)
	cfg.Duration = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(300 * time.Millisecond) // cancel in the middle of the hold (or of connecting)
		cancel()
	}()
	start := time.Now()
	if _, err := Run(ctx, cfg); err == nil {
		t.Fatal("Run of a canceled context: want an error")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
	// goleak in TestMain checks that nothing it started is left
}

// TestStartServer runs a real server as a child process (this test binary
// in serve mode, see helperServe) and measures it.
func TestStartServer(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	t.Setenv("PROGRESSD_AUTH_SECRET", "must-not-reach-the-child") // helperServe fails if it does
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv, err := StartServer(ctx, ServerOptions{Executable: exe, MaxConnsPerUser: 50, Env: []string{helperEnv + "=1"}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Stop(ctx)
		}
	})
	if err := CheckLoopback(srv.URL); err != nil {
		t.Errorf("server URL: %v", err)
	}
	s, err := ReadProc(srv.PID)
	if err != nil || s.RSS == 0 {
		t.Errorf("ReadProc(child) = %+v, %v", s, err)
	}
	api := newAPIClient(srv.URL, "", 1)
	defer api.close()
	if err := api.healthy(ctx); err != nil {
		t.Error(err)
	}
	if g := api.goroutines(ctx); g <= 0 {
		t.Errorf("goroutines from the child's /metrics = %d", g)
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	stopped = true
	if err := srv.Stop(sctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Errorf("data dir %s left behind: %v", srv.dir, err)
	}
	if err := srv.Stop(sctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStartServerThatFails(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// serve mode with a flag the helper does not know: it exits at once
	_, err = StartServer(context.Background(), ServerOptions{
		Executable: exe, Env: []string{helperEnv + "=1"}, Args: []string{"--no-such-flag"}, ReadyTimeout: 10 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "exited while starting") {
		t.Fatalf("StartServer = %v, want an early-exit error", err)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestRunFanoutAcrossNodes: with ReportServer, jobs are created and
// reported on another node of the same system, and every update still
// reaches the clients of the first.
func TestRunFanoutAcrossNodes(t *testing.T) {
	t.Parallel()
	db := testsvc.PostgresSchema(t)
	redisURL := testsvc.RedisURL(t)
	prefix := testsvc.RedisPrefix(t, redisURL)
	shared := func(c *node.Config) { c.DB, c.Redis, c.RedisPrefix = db, redisURL, prefix }
	a, b := startNode(t, shared), startNode(t, shared)
	cfg := benchConfig(t, a, Fanout)
	cfg.ReportServer = b.URL()
	cfg.Rate = 50
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, res, 51)
	if res.ReportServerURL != b.URL() {
		t.Errorf("report server %q, want %q", res.ReportServerURL, b.URL())
	}
}

// TestLogsScenario: every line sent to a job reaches its follower once,
// one line per request and batched per tick alike; the counts add up and
// each line gives a latency sample.
func TestLogsScenario(t *testing.T) {
	n := startNode(t)
	for _, via := range []Via{ViaHTTP, ViaBatch} {
		t.Run(string(via), func(t *testing.T) {
			cfg := benchConfig(t, n, Logs)
			cfg.Via, cfg.LineRate, cfg.Project = via, 20, "logs-"+string(via)
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			lines := int64(cfg.Clients * cfg.LogLinesPerJob())
			checkDelivery(t, res, lines)
			if res.Requests == 0 || (via == ViaHTTP) != (res.Requests == lines) {
				t.Errorf("%d requests for %d lines via %s", res.Requests, lines, via)
			}
			if res.Truncated != 0 || res.Unexpected != 0 {
				t.Errorf("truncated %d, unexpected %d", res.Truncated, res.Unexpected)
			}
		})
	}
}
