package loadtest

import (
	"context"
	"testing"
)

// BenchmarkIngestWebSocket runs the ingest scenario's WebSocket way (1,000
// jobs × 100 reports and the final one, 8 publishers) against a server in
// this process, for -memprofile and -cpuprofile of the report path: the
// load tool's own share is in the profile too, under internal/loadtest
// and coder/websocket. b.N is ignored: run with -benchtime 1x.
func BenchmarkIngestWebSocket(b *testing.B) {
	n := startNode(b)
	cfg := Defaults()
	cfg.Scenario, cfg.Via, cfg.Server = Ingest, ViaWebSocket, n.URL()
	cfg.Jobs, cfg.Reports, cfg.Clients = 1000, 100, 0
	b.ReportAllocs()
	for b.Loop() {
		res, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if !res.OK {
			b.Fatalf("run failed: %q %q", res.Problems(), res.Errors)
		}
	}
}
