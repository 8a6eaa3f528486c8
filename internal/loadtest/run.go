package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// run is the state of one Run.
type run struct {
	cfg         Config
	log         *slog.Logger
	api         *apiClient // the clients' server
	pub         *apiClient // where jobs are created and reported: api, or Config.ReportServer's
	wsURL       string     // the clients' /ws
	pubWSURL    string     // /ws of the server reports go to
	wsTransport *http.Transport
	dialOpts    *websocket.DialOptions

	jobs    []*job
	clients []*client
	readers sync.WaitGroup
	latency latencyShards
	// logCap is how many deliveries each client may log for the "update
	// or newer" latency (maxLoggedDeliveries shared out); a client that
	// had more leaves that latency unmeasured.
	logCap int
	errs   errorLog

	requests   atomic.Int64 // Logs: HTTP requests that carried lines
	reportsOK  atomic.Int64
	reportErrs atomic.Int64
	skipped    atomic.Int64
	lastReply  atomic.Int64 // unix nanos
	maxLag     atomic.Int64 // nanos
}

// Run applies cfg's scenario to its server and returns what it measured.
// An error means the run could not be made (bad config, server down, a
// permanent refusal such as no /ws endpoint); problems of the measured
// system itself (lost updates, disconnects) are in the Result, with OK
// false. Run returns when every goroutine and connection it made is gone.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkOpenFiles(cfg.Clients + cfg.Publishers + 64); err != nil {
		return nil, err
	}
	if cfg.ServerPID > 0 {
		if _, err := ReadProc(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("--server-pid %d: %w", cfg.ServerPID, err)
		}
	}
	r := newRun(cfg)
	defer r.api.close()
	defer r.pub.close()
	defer r.wsTransport.CloseIdleConnections()

	return r.run(ctx)
}

func newRun(cfg Config) *run {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := strings.TrimRight(cfg.Server, "/")
	wsTransport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4, // only failed handshakes come back to the pool
	}
	header := http.Header{}
	if cfg.Token != "" {
		header.Set("Authorization", "Bearer "+cfg.Token)
	}
	api := newAPIClient(base, cfg.Token, cfg.Publishers)
	pub, pubBase := api, base
	if cfg.ReportServer != "" {
		pubBase = strings.TrimRight(cfg.ReportServer, "/")
		pub = newAPIClient(pubBase, cfg.Token, cfg.Publishers)
	}
	r := &run{
		cfg:         cfg,
		log:         log,
		api:         api,
		pub:         pub,
		wsURL:       "ws" + strings.TrimPrefix(base, "http") + "/ws",
		pubWSURL:    "ws" + strings.TrimPrefix(pubBase, "http") + "/ws",
		wsTransport: wsTransport,
		dialOpts: &websocket.DialOptions{
			HTTPClient:      &http.Client{Transport: wsTransport},
			HTTPHeader:      header,
			CompressionMode: websocket.CompressionDisabled,
		},
		latency: newLatencyShards(),
	}
	r.logCap = maxLoggedDeliveries / max(cfg.Clients, 1)
	return r
}

func (r *run) run(ctx context.Context) (_ *Result, err error) {
	cfg := r.cfg
	res := &Result{Scenario: cfg.Scenario, ServerURL: cfg.Server, ReportServerURL: cfg.ReportServer, Clients: cfg.Clients, Duration: cfg.Duration}
	switch cfg.Scenario {
	case Fanout, KeepCurrent:
		res.Rate, res.Via = cfg.Rate, cfg.Via
	case PerJob:
		res.ReportsPerJob = cfg.Reports
	case Ingest:
		res.ReportsPerJob, res.Via = cfg.Reports, cfg.Via
	case Logs:
		res.Rate, res.Via, res.LogTick = cfg.LineRate, cfg.Via, cfg.LogTick
	}
	if err := r.api.healthy(ctx); err != nil {
		return nil, err
	}
	if r.pub != r.api {
		if err := r.pub.healthy(ctx); err != nil {
			return nil, fmt.Errorf("--report-server: %w", err)
		}
	}

	// Jobs first, so their memory is not counted as the connections'.
	var nJobs int
	switch {
	case cfg.Scenario.fanout():
		nJobs = 1
	case cfg.Scenario == PerJob, cfg.Scenario == Logs, cfg.Scenario == Idle && cfg.IdleSubscribe:
		nJobs = cfg.Clients
	case cfg.Scenario == Ingest:
		nJobs = cfg.Jobs
	}
	if nJobs > 0 {
		r.log.Info("creating jobs", "jobs", nJobs)
		if r.jobs, err = r.createJobs(ctx, nJobs); err != nil {
			return nil, err
		}
		if cfg.Scenario == Logs {
			for _, j := range r.jobs {
				j.channel = "logs:" + j.id
			}
		}
	}
	res.Jobs = nJobs
	r.clients = make([]*client, cfg.Clients)
	for i := range r.clients {
		c := &client{id: i}
		if nJobs > 0 {
			c.job = r.jobs[i%nJobs]
		}
		r.clients[i] = c
	}

	sampler := r.startSampler()
	defer sampler.stop()
	before := r.sampleServer(ctx)
	res.Server.RSSBefore, res.Server.GoroutinesBefore = before.RSS, before.goroutines

	r.log.Info("connecting", "clients", cfg.Clients, "url", r.wsURL, "dial_concurrency", cfg.DialConcurrency)
	connectStart := time.Now()
	// From here on every path must close the connections and wait for
	// their readers.
	defer func() { r.closeAll(ctx) }()
	if err := r.connectAll(ctx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.ConnectSeconds = time.Since(connectStart).Seconds()
	r.log.Info("connected", "clients", r.connectedCount(), "seconds", fmt.Sprintf("%.1f", res.ConnectSeconds))
	if r.connectedCount() == 0 && cfg.Clients > 0 {
		return nil, fmt.Errorf("no client could connect to %s: %s", r.wsURL, strings.Join(r.errs.list(), "; "))
	}

	var start, end time.Time
	var cpu0, cpu1, tool0, tool1 serverSample
	if cfg.Scenario == Idle {
		cpu0, tool0 = r.sampleProc(), sampleSelf()
		start = time.Now()
		r.log.Info("holding connections", "duration", cfg.Duration)
		if err := sleepCtx(ctx, cfg.Duration); err != nil {
			return nil, err
		}
		end = time.Now()
		cpu1, tool1 = r.sampleServer(ctx), sampleSelf()
		res.Server.RSSConnected, res.Server.GoroutinesConnected = cpu1.RSS, cpu1.goroutines
	} else {
		connected := r.sampleServer(ctx)
		res.Server.RSSConnected, res.Server.GoroutinesConnected = connected.RSS, connected.goroutines
		cpu0, tool0 = r.sampleProc(), sampleSelf() // no /metrics scrape inside the window
		pub, stopPublishing := r.startPublishing(ctx)
		start = pub.start
		r.log.Info("publishing", "scenario", cfg.Scenario, "duration", cfg.Duration)
		var stale *staleSampler
		switch cfg.Scenario {
		case Fanout:
			r.publishFanout(pub, r.jobs[0])
		case KeepCurrent:
			stale = r.startStaleness(r.jobs[0])
			r.publishFanout(pub, r.jobs[0])
		case Ingest:
			r.publishIngest(pub)
		case Logs:
			r.publishLogs(pub)
		default:
			r.publishPerJob(pub)
		}
		stopPublishing()
		if err := ctx.Err(); err != nil {
			stale.stop()
			return nil, err
		}
		if cfg.Scenario == Logs {
			r.drainLogs(ctx)
		} else {
			r.drain(ctx)
		}
		cpu1, tool1 = r.sampleProc(), sampleSelf()
		res.Staleness = stale.stop()
	}
	res.Server.RSSEnd = cpu1.RSS
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Close before tallying: the counters are read once the readers are
	// gone.
	r.closeAll(ctx)
	res.Server.RSSPeak = max(sampler.stop(), res.Server.RSSEnd, res.Server.RSSConnected)

	res.Reports, res.ReportErrors, res.ReportsSkipped = r.reportsOK.Load(), r.reportErrs.Load(), r.skipped.Load()
	res.PublishLagMax = time.Duration(max(r.maxLag.Load(), 0))
	var lastDelivery int64
	if cfg.Scenario == Logs {
		r.tallyLogs(res)
	} else {
		lastDelivery = r.tallyClients(res)
	}
	if cfg.Scenario != Idle {
		if last := r.lastReply.Load(); last > 0 {
			res.ReportsPerSecond = float64(res.Reports) / time.Unix(0, last).Sub(start).Seconds()
			lastDelivery = max(lastDelivery, last)
		}
		end = start
		if lastDelivery > 0 {
			end = time.Unix(0, lastDelivery)
		}
	}
	res.WindowSeconds = end.Sub(start).Seconds()
	if res.WindowSeconds > 0 {
		res.DeliveredPerSecond = float64(res.Delivered) / res.WindowSeconds
	}
	res.Latency = r.latency.merged().Stats()

	s := &res.Server
	s.PID = cfg.ServerPID
	s.Measured = cpu0.ok && cpu1.ok
	if s.Measured {
		s.CPUSeconds = (cpu1.CPU - cpu0.CPU).Seconds()
		if res.Delivered > 0 {
			s.CPUSecondsPer100k = s.CPUSeconds / float64(res.Delivered) * 100_000
		}
		if res.Reports > 0 {
			s.CPUSecondsPer100kReports = s.CPUSeconds / float64(res.Reports) * 100_000
		}
		if res.Connected > 0 && s.RSSBefore > 0 {
			s.RSSPerConn = (float64(s.RSSConnected) - float64(s.RSSBefore)) / float64(res.Connected)
		}
	}
	if res.Connected > 0 && s.GoroutinesBefore > 0 && s.GoroutinesConnected > 0 {
		s.GoroutinesPerConn = float64(s.GoroutinesConnected-s.GoroutinesBefore) / float64(res.Connected)
	}
	if tool0.ok && tool1.ok {
		res.ToolCPUSeconds = (tool1.CPU - tool0.CPU).Seconds()
	}
	res.Errors = r.errs.list()
	res.OK = res.ok()
	return res, nil
}

// connectedCount is how many clients are connected; valid after the
// connect phase.
func (r *run) connectedCount() int {
	n := 0
	for _, c := range r.clients {
		if c.connected {
			n++
		}
	}
	return n
}

// drain waits until every connected client has its job's final snapshot,
// or DrainTimeout.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	lastLog := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := r.pendingFinal()
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.log.Warn("clients still without the final snapshot at the end of the drain", "clients", pending, "drain_timeout", r.cfg.DrainTimeout)
			return
		}
		if time.Since(lastLog) >= 2*time.Second {
			r.log.Info("waiting for the final snapshot", "clients", pending)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pendingFinal counts connected clients, still connected, whose job has a
// final seq they have not reached.
func (r *run) pendingFinal() int {
	n := 0
	for _, c := range r.clients {
		if !c.connected || c.job == nil || c.exited.Load() {
			continue
		}
		if f := c.job.final.Load(); f != 0 && c.maxSeq.Load() < f {
			n++
		}
	}
	return n
}

// serverSample is a ProcSample of the server (ok false if not measured)
// plus its goroutine count from /metrics.
type serverSample struct {
	ProcSample
	ok         bool
	goroutines int
}

// sampleServer reads /proc, then /metrics.
func (r *run) sampleServer(ctx context.Context) serverSample {
	s := r.sampleProc()
	s.goroutines = r.api.goroutines(ctx)
	return s
}

// sampleProc reads the server's /proc entries only.
func (r *run) sampleProc() serverSample {
	var s serverSample
	if r.cfg.ServerPID > 0 {
		p, err := ReadProc(r.cfg.ServerPID)
		if err != nil {
			r.errs.add("measure server", err)
		} else {
			s.ProcSample, s.ok = p, true
		}
	}
	return s
}

func sampleSelf() serverSample {
	p, err := ReadProc(os.Getpid())
	return serverSample{ProcSample: p, ok: err == nil}
}

// sampler records the server's highest RSS, four times a second.
type sampler struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	peak     atomic.Uint64
}

func (r *run) startSampler() *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	if r.cfg.ServerPID <= 0 {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if p, err := ReadProc(r.cfg.ServerPID); err == nil && p.RSS > s.peak.Load() {
				s.peak.Store(p.RSS)
			}
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampler, waits for it and returns the peak.
func (s *sampler) stop() uint64 {
	s.stopOnce.Do(func() { close(s.quit) })
	<-s.done
	return s.peak.Load()
}

// latencyShards spreads latency samples over several histograms so that
// thousands of readers do not all hit the same counters.
type latencyShards []*Histogram

func newLatencyShards() latencyShards {
	n := min(max(4*runtime.GOMAXPROCS(0), 8), 64)
	s := make(latencyShards, n)
	for i := range s {
		s[i] = NewHistogram()
	}
	return s
}

func (s latencyShards) record(client int, d time.Duration) { s[client%len(s)].Record(d) }

func (s latencyShards) merged() *Histogram {
	h := NewHistogram()
	for _, x := range s {
		h.Merge(x)
	}
	return h
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errTooFewFiles is returned when this process may not open enough files.
var errTooFewFiles = errors.New("open-files limit too low")

func checkOpenFiles(need int) error {
	limit, err := openFilesLimit()
	if err != nil || limit == 0 {
		return nil // unknown: let the dials say so
	}
	if uint64(need) > limit {
		return fmt.Errorf("%w: this process may open %d files (ulimit -n) and the clients need about %d; lower --clients or raise the limit",
			errTooFewFiles, limit, need)
	}
	return nil
}
