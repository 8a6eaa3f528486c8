package orchestrator_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// BenchmarkLineToWebSocket measures the delay from a line a stage command
// prints to the snapshot carrying it arriving at a WebSocket client: the
// command stamps each line with the time it prints it (date +%s%N), and the
// client compares on arrival. Lines go out every 20 ms, under the runner's
// coalescing rate, so every line is a delivery. b.N is ignored; run with
// -benchtime 1x. Reports p50, p99 and max in ms.
func BenchmarkLineToWebSocket(b *testing.B) {
	const lines = 200
	s := nodetest.Start(b, nodetest.Options{Workers: 1, Pipelines: `
pipelines:
  stamped:
    stages:
      - name: print
        run: ["sh", "-c", "i=0; while [ $i -lt ` + strconv.Itoa(lines) + ` ]; do i=$((i+1)); echo \"{\\\"current\\\": $i, \\\"total\\\": ` + strconv.Itoa(lines) + `, \\\"message\\\": \\\"t=$(date +%s%N)\\\"}\"; sleep 0.02; done"]
`})
	job := s.Create(b, "bench", "stamped", nil)
	var lat []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(s.URL, "")
	if err != nil {
		b.Fatal(err)
	}
	_, err = c.Watch(ctx, job.JobID, func(snap client.Snapshot) {
		at := time.Now()
		v, ok := strings.CutPrefix(snap.Message, "t=")
		if !ok {
			return
		}
		ns, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			lat = append(lat, at.Sub(time.Unix(0, ns)))
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(lat) < lines/2 {
		b.Fatalf("only %d of %d lines arrived as their own update", len(lat), lines)
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(len(lat)), "samples")
}
