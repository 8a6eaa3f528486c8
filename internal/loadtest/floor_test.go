package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// The floor benchmarks run floor.go's measurements (what this machine
// charges before any progressd code) as Go benchmarks:
//
//	go test -run '^$' -bench Floor -benchtime 20x ./internal/loadtest
//
// `progressd bench --scenario ingest|keepcurrent` prints the same floor
// beside its figures.

// floorEnv makes the test binary the reading side of a floor benchmark
// (RunFloorPeer's spec).
const floorEnv = "LOADTEST_FLOOR_PEER"

// testPeer runs this test binary as the floor's other process.
func testPeer(spec string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), floorEnv+"="+spec)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd
}

// BenchmarkFloorWriteSize is BenchmarkFloorFanoutWrites' 1,000 × 100/s
// with 1-byte and 3,000-byte messages: what a write costs hardly depends
// on its size, so only fewer writes would lower the floor.
//
//	go test -run '^$' -bench FloorWriteSize -benchtime 10x ./internal/loadtest
func BenchmarkFloorWriteSize(b *testing.B) {
	for _, size := range []int{1, 3000} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			floorFanout(b, 1000, 100, bytes.Repeat([]byte("x"), size))
		})
	}
}

// BenchmarkFloorFanoutWrites is the bench's fanout scenario with nothing
// but the writes: each op is one second of R rounds, a round writing one
// 300-byte message to each of C connections (FloorFanout). Metrics:
// server-s/100k and peer-s/100k, the writing and the reading process's
// CPU time per 100,000 writes; round-p50-ms and round-p99-ms, how long a
// round takes from its start until its last write returned — the least
// a fanout update's p99 latency can be here.
//
//	go test -run '^$' -bench FloorFanout -benchtime 20x ./internal/loadtest
func BenchmarkFloorFanoutWrites(b *testing.B) {
	// 1000x12 is keepcurrent's run with spacing on: 1,000 viewers written
	// 10–12 times a second each (75–85 ms, rounded up to the flush
	// clock's slot).
	for _, sc := range []struct{ conns, rate int }{{1000, 100}, {1000, 12}, {10000, 10}} {
		b.Run(fmt.Sprintf("%dx%d", sc.conns, sc.rate), func(b *testing.B) {
			floorFanout(b, sc.conns, sc.rate, floorPayload)
		})
	}
}

func floorFanout(b *testing.B, conns, rate int, payload []byte) {
	f, err := FloorFanout(context.Background(), testPeer, conns, rate, b.N*rate, payload)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(f.ServerPer100k, "server-s/100k")
	b.ReportMetric(f.PeerPer100k, "peer-s/100k")
	b.ReportMetric(float64(f.RoundP50)/1e6, "round-p50-ms")
	b.ReportMetric(float64(f.RoundP99)/1e6, "round-p99-ms")
}

// BenchmarkFloorHTTPReport is 1,000 HTTP reports per op to a bare net/http
// server (FloorHTTP): the least a report that reaches one WebSocket client
// costs. server-s/100k is the server process's CPU time per 100,000
// reports.
//
//	go test -run '^$' -bench FloorHTTP -benchtime 100x ./internal/loadtest
func BenchmarkFloorHTTPReport(b *testing.B) {
	f, err := FloorHTTP(context.Background(), testPeer, b.N*1000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(f.ServerPer100k, "server-s/100k")
}

// TestFloorSmall runs both floor measurements on a few connections, so
// the code bench runs is exercised by the test suite.
func TestFloorSmall(t *testing.T) {
	f, err := FloorFanout(context.Background(), testPeer, 10, 100, 20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.RoundP99 <= 0 {
		t.Errorf("fanout floor timed no round: %+v", f)
	}
	if _, err := FloorHTTP(context.Background(), testPeer, 200); err != nil {
		t.Fatal(err)
	}
}
