package redisbroker_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/testsvc"
)

// BenchmarkFanOutNodes is how the Redis broker's cost grows with the
// number of nodes: every update is PUBLISHed once and Redis writes it to
// every node, each of which decodes it. One node publishes b.N updates
// (8 goroutines); the others receive them all. Metrics: redis-µs/update,
// the Redis server's CPU (INFO cpu) per update published; redis-µs/copy,
// per copy written to a node; node-µs/copy, this process's CPU (every
// node is in it) per copy received, the publishing included. The Redis
// server is shared with whatever else runs on it: read the figures of a
// quiet machine.
//
//	go test -run '^$' -bench FanOutNodes -benchtime 20000x ./internal/broker/redisbroker
func BenchmarkFanOutNodes(b *testing.B) {
	for _, n := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			nodes := sharedNodes(b, n)
			var received atomic.Int64
			for _, nd := range nodes[1:] {
				nd.Subscribe(func(broker.Update) { received.Add(1) })
			}
			opt, err := redis.ParseURL(testsvc.RedisURL(b))
			if err != nil {
				b.Fatal(err)
			}
			rc := redis.NewClient(opt)
			defer rc.Close()
			u := update(b, "job-1", 1)
			redis0, self0 := redisCPU(b, rc), selfCPU()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := nodes[0].Publish(b.Context(), u); err != nil {
						b.Error(err)
						return
					}
				}
			})
			want := int64(b.N) * int64(n-1)
			if err := testsvc.WaitFor(60*time.Second, func() error {
				if received.Load() < want {
					return testsvc.ErrNotYet
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			redisUsed, selfUsed := redisCPU(b, rc)-redis0, selfCPU()-self0
			b.ReportMetric(redisUsed.Seconds()*1e6/float64(b.N), "redis-µs/update")
			b.ReportMetric(redisUsed.Seconds()*1e6/float64(want), "redis-µs/copy")
			b.ReportMetric(selfUsed.Seconds()*1e6/float64(want), "node-µs/copy")
		})
	}
}

// redisCPU is the Redis server's CPU time so far (INFO cpu).
func redisCPU(b *testing.B, rc *redis.Client) time.Duration {
	info, err := rc.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
