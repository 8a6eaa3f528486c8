package loadtest

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Result is what a Run measured. Counts of messages are summed over
// clients: one report seen by 1,000 clients is 1,000 deliveries.
type Result struct {
	Scenario  Scenario `json:"scenario"`
	ServerURL string   `json:"server_url"`
	// ReportServerURL is the node reports went to, if not ServerURL.
	ReportServerURL string `json:"report_server_url,omitempty"`

	// What was asked for: Rate (Fanout) and ReportsPerJob (PerJob) are
	// before the final report.
	Duration      time.Duration `json:"duration_ns"`
	Rate          float64       `json:"rate,omitempty"`
	ReportsPerJob int           `json:"reports_per_job,omitempty"`
	// Via is how Ingest, Fanout or KeepCurrent sent its reports, or Logs
	// its lines.
	Via Via `json:"via,omitempty"`
	// LogTick is how often Logs via batch sent the lines due.
	LogTick time.Duration `json:"log_tick_ns,omitempty"`
	// Requests (Logs) is how many HTTP requests carried the lines.
	Requests int64 `json:"requests,omitempty"`
	// Truncated (Logs) counts log frames that said lines were dropped
	// before the follower got them (it fell behind the kept lines).
	Truncated uint64 `json:"truncated,omitempty"`

	Clients        int     `json:"clients"`         // asked for
	Connected      int     `json:"connected"`       // subscribed (or, with no job, answered a ping)
	ConnectFailed  int     `json:"connect_failed"`  // gave up after the retries
	ConnectSeconds float64 `json:"connect_seconds"` // the whole connect phase
	Jobs           int     `json:"jobs"`

	Reports      int64 `json:"reports"`       // answered 200, final ones included
	ReportErrors int64 `json:"report_errors"` // failed, final ones included
	// ReportsSkipped were not sent: the server answered the others so
	// slowly that the publishing deadline (2×Duration + PublishGrace)
	// passed.
	ReportsSkipped   int64         `json:"reports_skipped"`
	ReportsPerSecond float64       `json:"reports_per_second"` // achieved, over the publishing time
	PublishLagMax    time.Duration `json:"publish_lag_max_ns"` // worst lateness against the schedule: the tool or the API could not keep up

	// WindowSeconds is the measured window: from the first report to the
	// last delivery (Fanout, PerJob), or the hold (Idle).
	WindowSeconds float64 `json:"window_seconds"`

	// Expected is, summed over connected clients, how many reports their
	// job got: Delivered + Coalesced + Lost.
	Expected  uint64 `json:"expected"`
	Delivered uint64 `json:"delivered"`
	// Coalesced snapshots were never received, but a newer one of the
	// same job was (SPEC.md allows the server to replace an unsent older
	// snapshot): not a loss.
	Coalesced uint64 `json:"coalesced"`
	// Lost snapshots were not received and nothing newer was either.
	Lost uint64 `json:"lost"`
	// Stale counts updates older than or equal to one the client already
	// had; the server should never send them (a bug if not 0).
	Stale uint64 `json:"stale"`
	// Unexpected counts updates no report of this run produced (someone
	// else reported on the run's jobs, or a report's reply was lost).
	Unexpected         uint64  `json:"unexpected"`
	DeliveredPerSecond float64 `json:"delivered_per_second"`
	// MissedFinal counts connected clients that did not end with their
	// job's final snapshot. It must be 0.
	MissedFinal int `json:"missed_final"`
	// MissedInitial counts subscribed Idle clients that never got their
	// job's current snapshot after subscribing (SPEC.md: the server sends
	// it after the reply). Only checked in Idle, where no report can
	// replace it.
	MissedInitial int `json:"missed_initial"`
	// Disconnected counts clients whose connection ended before the run
	// closed it; CloseCodes says how ("4008": too slow, "none": no close
	// frame).
	Disconnected int            `json:"disconnected"`
	CloseCodes   map[string]int `json:"close_codes,omitempty"`

	// Latency is report sent → update received, per delivery.
	Latency LatencyStats `json:"latency"`
	// LatencyUpdateOrNewer is, for every report a client had in the end
	// (delivered or coalesced), report sent → the client first held it or
	// a newer snapshot of the job: what a progress bar shows, coalesced
	// updates included. Not measured (zero) past maxLoggedDeliveries.
	LatencyUpdateOrNewer LatencyStats `json:"latency_update_or_newer"`

	// Staleness (KeepCurrent) is, sampled every StalenessEvery for every
	// viewer from the first report until every viewer has the final
	// snapshot, how long the viewer has been behind: 0 while it holds
	// the newest answered report, else the age of the oldest report it
	// does not have (time since that report was sent).
	Staleness LatencyStats `json:"staleness"`

	Server ServerStats `json:"server_process"`
	// ToolCPUSeconds is this process's CPU time in the window: on one
	// machine the tool competes with the server for the CPUs.
	ToolCPUSeconds float64 `json:"tool_cpu_seconds"`

	// Errors lists the first distinct errors, with counts.
	Errors []string `json:"errors,omitempty"`
	// OK says nothing went wrong: every client connected and stayed, no
	// report failed, and (Fanout, PerJob) every client ended with the final
	// snapshot, with nothing lost and nothing stale.
	OK bool `json:"ok"`
}

// ServerStats is the server process as seen from /proc (when Measured)
// and from its /metrics (goroutines, when it serves them).
type ServerStats struct {
	PID      int  `json:"pid,omitempty"`
	Measured bool `json:"measured"`
	// CPUSeconds is the server's user+system CPU time in the window.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUSecondsPer100k is CPUSeconds per 100,000 deliveries.
	CPUSecondsPer100k float64 `json:"cpu_seconds_per_100k_deliveries"`
	// CPUSecondsPer100kReports is CPUSeconds per 100,000 reports answered.
	CPUSecondsPer100kReports float64 `json:"cpu_seconds_per_100k_reports"`
	// RSS in bytes: before connecting; with every client connected (Idle:
	// at the end of the hold); the highest sampled; at the end of the
	// window.
	RSSBefore    uint64 `json:"rss_before_bytes"`
	RSSConnected uint64 `json:"rss_connected_bytes"`
	RSSPeak      uint64 `json:"rss_peak_bytes"`
	RSSEnd       uint64 `json:"rss_end_bytes"`
	// RSSPerConn is (RSSConnected − RSSBefore) / Connected.
	RSSPerConn float64 `json:"rss_per_conn_bytes"`
	// Goroutines before connecting and with every client connected; 0
	// when /metrics is not available.
	GoroutinesBefore    int     `json:"goroutines_before,omitempty"`
	GoroutinesConnected int     `json:"goroutines_connected,omitempty"`
	GoroutinesPerConn   float64 `json:"goroutines_per_conn,omitempty"`
}

// errorLog keeps the first few distinct errors of a run, with counts, so a
// run where 19,000 clients fail the same way prints one line.
type errorLog struct {
	mu     sync.Mutex
	order  []string
	counts map[string]int
}

const maxDistinctErrors = 10

func (l *errorLog) add(what string, err error) {
	msg := what + ": " + err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[string]int)
	}
	if _, seen := l.counts[msg]; !seen && len(l.order) >= maxDistinctErrors {
		msg = "(more errors of other kinds)"
	}
	if _, seen := l.counts[msg]; !seen {
		l.order = append(l.order, msg)
	}
	l.counts[msg]++
}

func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.order))
	for _, m := range l.order {
		if n := l.counts[m]; n > 1 {
			m = strconv.Itoa(n) + "× " + m
		}
		out = append(out, m)
	}
	return out
}

// tallyClients fills in the per-message accounting, and the "update or
// newer" latency, once every reader has returned.
// tallyConnection counts connected client c, and how it ended if the
// run did not end it.
func (r *run) tallyConnection(res *Result, c *client) {
	res.Connected++
	if c.endErr == nil {
		return
	}
	res.Disconnected++
	code := "none"
	if s := websocket.CloseStatus(c.endErr); s != -1 {
		code = strconv.Itoa(int(s))
	}
	if res.CloseCodes == nil {
		res.CloseCodes = make(map[string]int)
	}
	res.CloseCodes[code]++
	r.errs.add("connection ended", c.endErr)
}

func (r *run) tallyClients(res *Result) (lastDelivery int64) {
	seqs := make(map[*job][]uint64, len(r.jobs))
	for _, j := range r.jobs {
		seqs[j] = j.seqs()
	}
	fresh := r.cfg.Scenario != Idle
	for _, c := range r.clients {
		fresh = fresh && !c.logFull // every delivery was logged
	}
	freshness := NewHistogram()
	for _, c := range r.clients {
		if !c.connected {
			continue
		}
		r.tallyConnection(res, c)
		res.Stale += c.stale
		if c.job == nil {
			continue
		}
		if r.cfg.Scenario == Idle {
			if c.initial == 0 {
				res.MissedInitial++
			}
			continue
		}
		pub := seqs[c.job]
		t := account(pub, c.job.final.Load(), receipt{received: c.received, maxSeq: c.maxSeq.Load()})
		res.Expected += uint64(len(pub))
		res.Delivered += t.delivered
		res.Coalesced += t.coalesced
		res.Lost += t.lost
		res.Unexpected += t.unexpected
		if fresh {
			recordFreshness(pub, c.job.sentTimes(), c.log, freshness)
		}
		if !t.gotFinal {
			res.MissedFinal++
		}
		lastDelivery = max(lastDelivery, c.advancedAt.Load())
	}
	res.ConnectFailed = res.Clients - res.Connected
	if fresh {
		res.LatencyUpdateOrNewer = freshness.Stats()
	}
	return lastDelivery
}

// ScheduleSlipped reports whether reports went out much later than
// planned (by more than a tenth of the duration, and at least a second):
// the server answered reports more slowly than the load asked for, so the
// offered load was lower than configured.
func (res *Result) ScheduleSlipped() bool {
	return res.Scenario != Idle && (res.ReportsSkipped > 0 || res.PublishLagMax > max(time.Second, res.Duration/10))
}

// ok decides Result.OK.
func (res *Result) ok() bool {
	good := res.Connected == res.Clients && res.Disconnected == 0 && res.Stale == 0
	if res.Scenario == Idle {
		return good && res.MissedInitial == 0
	}
	return good && res.ReportErrors == 0 && res.MissedFinal == 0 && res.Lost == 0
}

// Problems lists, in words, why OK is false.
func (res *Result) Problems() []string {
	var p []string
	add := func(cond bool, format string, args ...any) {
		if cond {
			p = append(p, fmt.Sprintf(format, args...))
		}
	}
	add(res.ConnectFailed > 0, "%d of %d clients could not connect", res.ConnectFailed, res.Clients)
	add(res.Disconnected > 0, "%d clients were disconnected during the run (close codes %s)", res.Disconnected, formatCodes(res.CloseCodes))
	add(res.Stale > 0, "%d stale updates (older than one already delivered)", res.Stale)
	add(res.MissedInitial > 0, "%d subscribed clients never got the job's current snapshot", res.MissedInitial)
	if res.Scenario != Idle {
		add(res.ReportErrors > 0, "%d reports failed", res.ReportErrors)
		add(res.MissedFinal > 0, "%d clients did not receive the final snapshot", res.MissedFinal)
		add(res.Lost > 0, "%d updates lost", res.Lost)
	}
	return p
}

func formatCodes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
