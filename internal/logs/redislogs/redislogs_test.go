package redislogs_test

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/logs/logstest"
	"github.com/progressd/progressd/internal/logs/redislogs"
	"github.com/progressd/progressd/internal/testsvc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	prefixes := map[*testing.T]string{}
	logstest.Run(t, func(t *testing.T) logs.Store {
		url := testsvc.RedisURL(t)
		mu.Lock()
		prefix, ok := prefixes[t]
		if !ok {
			prefix = testsvc.RedisPrefix(t, url)
			prefixes[t] = prefix
		}
		mu.Unlock()
		// Each call is a node with a client of its own.
		return redislogs.New(testsvc.RedisClient(t, url), redislogs.Options{
			Prefix: prefix, Keep: logstest.Keep, DropGrace: time.Millisecond})
	})
}
