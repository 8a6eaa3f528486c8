package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

// BenchmarkBatchHTTP (issue 12): 10,000 jobs each reporting 20 times over
// HTTP (19 progress reports, then succeeded), as children of one parent
// and, for comparison, without a parent. It reports the process CPU per
// report (server and the in-process HTTP clients alike: the same client
// work in both, so the difference is the aggregation's), and for the
// batch how often the parent's snapshot was published (the most in any
// one second, and on average) and whether its final snapshot is exact.
// b.N is ignored: run with -benchtime 1x. PROGRESSD_BENCH_CHILDREN sets
// the number of jobs (default 10,000).
func BenchmarkBatchHTTP(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("PROGRESSD_BENCH_CHILDREN")); err == nil && v > 0 {
		n = v
	}
	for _, withParent := range []bool{false, true} {
		name := "parentless"
		if withParent {
			name = "children"
		}
		b.Run(name, func(b *testing.B) { benchBatch(b, n, withParent) })
	}
}

func benchBatch(b *testing.B, count int, withParent bool) {
	const reports = 20
	node := startNodeB(b)
	ctx := context.Background()
	var parent progress.Snapshot
	var err error
	if withParent {
		parent, err = node.Jobs.Create(ctx, "local", jobs.CreateRequest{Project: "bench", ExpectedChildren: count})
		if err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, count)
	for i := range ids {
		req := jobs.CreateRequest{Project: "bench"}
		if withParent {
			req = jobs.CreateRequest{ParentID: parent.JobID}
		}
		s, err := node.Jobs.Create(ctx, "local", req)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = s.JobID
	}

	// The parent's publications, by second.
	var mu sync.Mutex
	perSecond := map[int64]int{}
	published := 0
	cancel := node.broker.Subscribe(func(u broker.Update) {
		if withParent && u.Snapshot.JobID == parent.JobID {
			mu.Lock()
			perSecond[time.Now().Unix()]++
			published++
			mu.Unlock()
		}
	})
	defer cancel()

	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var next atomic.Int64
	cpu0, start := cpuTime(), time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= count*reports {
					return
				}
				job, step := ids[i%count], i/count+1 // every job's k-th report before any job's k+1-th
				body := fmt.Sprintf(`{"progress":%g}`, float64(step)/reports)
				if step == reports {
					body = `{"state":"succeeded"}`
				}
				resp, err := hc.Post(node.URL()+"/api/v1/jobs/"+job+"/progress", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("report: %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	total := float64(count * reports)
	b.ReportMetric(cpu.Seconds()*1e6/total, "cpu-µs/report")
	b.ReportMetric(total/elapsed.Seconds(), "reports/s")
	if !withParent {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	var p progress.Snapshot
	for {
		if p, err = node.Jobs.Get(ctx, parent.JobID); err == nil && p.State.Terminal() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := progress.Children{Total: count, Succeeded: count}
	if p.State != progress.Succeeded || p.Children == nil || *p.Children != want || p.Progress != 1 {
		b.Fatalf("parent at the end: %s %v %+v", p.State, p.Progress, p.Children)
	}
	mu.Lock()
	most := 0
	for _, c := range perSecond {
		most = max(most, c)
	}
	b.ReportMetric(float64(most), "parent-max-pub/s")
	b.ReportMetric(float64(published)/elapsed.Seconds(), "parent-pub/s")
	mu.Unlock()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
