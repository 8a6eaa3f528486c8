package loadtest

import (
	"context"
	"testing"
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
}
