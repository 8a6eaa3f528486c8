package loadtest

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/progressd/progressd/internal/node"
)

// TestRunIngest: each way of reporting gets every report of every job
// answered with a seq, the viewers end on their job's terminal snapshot,
// and the server's CPU per report is computed.
func TestRunIngest(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	for _, via := range Vias {
		t.Run(string(via), func(t *testing.T) {
			cfg := benchConfig(t, n, Ingest)
			cfg.Via = via
			cfg.Jobs, cfg.Reports, cfg.Clients = 30, 7, 10
			cfg.BatchSize = 50 // several batches per publisher
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkDelivery(t, res, 30*8)
			if res.Via != via || res.Jobs != 30 || res.Expected != 10*8 {
				t.Errorf("via %s jobs %d expected %d, want %s, 30 and %d", res.Via, res.Jobs, res.Expected, via, 10*8)
			}
			if res.Server.Measured && res.Server.CPUSecondsPer100kReports <= 0 && res.Server.CPUSeconds > 0 {
				t.Errorf("CPU per report not computed: %+v", res.Server)
			}
		})
	}
}

// TestRunIngestNoViewers: reports with nobody watching are a valid run.
func TestRunIngestNoViewers(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, Ingest)
	cfg.Via, cfg.Jobs, cfg.Reports, cfg.Clients = ViaBatch, 20, 3, 0
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Reports != 20*4 || res.Connected != 0 {
		t.Fatalf("ok %v reports %d connected %d: %q %q", res.OK, res.Reports, res.Connected, res.Problems(), res.Errors)
	}
}

// TestRunKeepCurrent: fanout with the staleness sampled for every viewer.
func TestRunKeepCurrent(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, KeepCurrent)
	cfg.Rate = 50
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, res, 51)
	if res.Staleness.Samples == 0 || res.Staleness.Max < res.Staleness.P99 {
		t.Errorf("staleness %+v: nothing sampled", res.Staleness)
	}
	if got := singleReports(t, n); res.Via != ViaHTTP || got != 51 {
		t.Errorf("via %q: the server answered %d single-report requests, want 51", res.Via, got)
	}
}

// TestRunKeepCurrentViaWebSocket: the keepcurrent publisher reporting as
// a worker in a loop, `report` frames on one WebSocket, each as it falls
// due: every report answered with a seq, in schedule, and every viewer
// ends on the terminal snapshot.
func TestRunKeepCurrentViaWebSocket(t *testing.T) {
	t.Parallel()
	n := startNode(t)
	cfg := benchConfig(t, n, KeepCurrent)
	cfg.Via, cfg.Rate = ViaWebSocket, 50
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkDelivery(t, res, 51)
	if res.Via != ViaWebSocket || res.MissedFinal != 0 || res.Connected != cfg.Clients {
		t.Errorf("via %q, final snapshot missed by %d, %d of %d connected", res.Via, res.MissedFinal, res.Connected, cfg.Clients)
	}
	if res.Staleness.Samples == 0 || res.Staleness.Max < res.Staleness.P99 {
		t.Errorf("staleness %+v: nothing sampled", res.Staleness)
	}
	if got := singleReports(t, n); got != 0 {
		t.Errorf("the server answered %d single-report requests; all 51 should have come as WebSocket frames", got)
	}
	if res.ReportsSkipped != 0 || res.PublishLagMax <= 0 {
		t.Errorf("%d reports skipped, worst lag %v: the schedule was not followed", res.ReportsSkipped, res.PublishLagMax)
	}
}

// singleReports is how many POST /api/v1/jobs/{id}/progress requests n
// has answered, from its /metrics.
func singleReports(t *testing.T, n *node.Node) int {
	t.Helper()
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "progressd_http_request_duration_seconds_count{") || !strings.Contains(line, `/progress"`) {
			continue
		}
		v, err := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		total += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}
