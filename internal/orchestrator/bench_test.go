package orchestrator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// BenchmarkShortJobs measures how many short pipeline jobs one node
// completes a second: create (store + queue insert), River fetch, one
// process (`true`), four reports (running, stage done, succeeded) and
// River completion. It is the queue's overhead per job, plus a fork/exec.
func BenchmarkShortJobs(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			s := nodetest.Start(b, nodetest.Options{Workers: workers, Pipelines: `
pipelines:
  short:
    stages:
      - name: run
        run: ["true"]
`})
			done := make(chan struct{}, 1024)
			stop := s.Broker().Subscribe(func(u broker.Update) {
				if u.Snapshot.State.Terminal() {
					done <- struct{}{}
				}
			})
			defer stop()
			b.ResetTimer()
			start := time.Now()
			go func() {
				for range b.N {
					if _, err := s.Jobs.Create(context.Background(), "local", jobs.CreateRequest{Project: "bench", Pipeline: "short"}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
			timeout := time.After(5 * time.Minute)
			for range b.N {
				select {
				case <-done:
				case <-timeout:
					b.Fatal("jobs did not finish")
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}
