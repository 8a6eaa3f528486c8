package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

// BenchmarkReportService measures reports through the whole in-process path:
// adapter, memory snapshot store, write-behind, encode, broker. Run with
// -cpu 1 for the one-core figure.
func BenchmarkReportService(b *testing.B) {
	n := startNodeB(b)
	ctx := context.Background()
	const jobCount = 1000
	ids := make([]string, jobCount)
	for i := range ids {
		s, err := n.Jobs.Create(ctx, "local", jobs.CreateRequest{Project: "bench",
			Stages: []progress.StageSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}}})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = s.JobID
	}
	stage := "b"
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			p := float64(i%1000) / 1000
			msg := "working"
			if _, err := n.Jobs.Report(ctx, ids[i%jobCount], progress.Report{Stage: &stage, Progress: &p, Message: &msg}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkCreateService measures creates through the service (SQLite,
// memory snapshots), without and with an Idempotency-Key: the key is one
// more row in the create's transaction.
func BenchmarkCreateService(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("key=%v", keyed), func(b *testing.B) {
			n := startNodeB(b)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				req := jobs.CreateRequest{Project: "bench", Stages: []progress.StageSpec{{Name: "a"}}}
				if keyed {
					req.IdempotencyKey = "k" + strconv.Itoa(i)
				}
				i++
				if _, err := n.Jobs.Create(ctx, "local", req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// BenchmarkReportHTTP measures reports over HTTP with keep-alive, from
// parallel Go clients in the same process, SQLite write-behind on.
func BenchmarkReportHTTP(b *testing.B) {
	n := startNodeB(b)
	ctx := context.Background()
	const jobCount = 1000
	ids := make([]string, jobCount)
	for i := range ids {
		s, err := n.Jobs.Create(ctx, "local", jobs.CreateRequest{Project: "bench",
			Stages: []progress.StageSpec{{Name: "a"}, {Name: "b"}}})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = s.JobID
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var body bytes.Buffer
		for pb.Next() {
			i := next.Add(1)
			body.Reset()
			fmt.Fprintf(&body, `{"stage":"b","progress":%g,"message":"step %d"}`, float64(i%1000)/1000, i)
			resp, err := hc.Post(n.URL()+"/api/v1/jobs/"+ids[i%jobCount]+"/progress", "application/json", &body)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkFinishedJobsRSS creates and finishes 100,000 jobs in a node and
// reports the process RSS afterwards (after a GC). b.N is ignored: run with
// -benchtime 1x.
func BenchmarkFinishedJobsRSS(b *testing.B) {
	const total = 100_000
	n := startNodeB(b)
	ctx := context.Background()
	done := progress.Succeeded
	for i := 0; i < total; i++ {
		s, err := n.Jobs.Create(ctx, "local", jobs.CreateRequest{Project: fmt.Sprintf("p%d", i%100),
			Stages: []progress.StageSpec{{Name: "fetch"}, {Name: "encode"}}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.Jobs.Report(ctx, s.JobID, progress.Report{State: &done}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	b.ReportMetric(float64(rssKiB())/1024, "MiB-RSS")
	var heap runtime.MemStats
	runtime.ReadMemStats(&heap)
	b.ReportMetric(float64(heap.HeapInuse)/(1<<20), "MiB-heap")
}

func rssKiB() int {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

func startNodeB(b *testing.B) *Node {
	b.Helper()
	cfg := Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	n, err := Start(context.Background(), cfg, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n
}
