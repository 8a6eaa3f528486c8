package logs_test

import (
	"sync"
	"testing"

	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/logs/logstest"
)

func TestMemoryConformance(t *testing.T) {
	var mu sync.Mutex
	stores := map[*testing.T]logs.Store{}
	logstest.Run(t, func(t *testing.T) logs.Store {
		mu.Lock()
		defer mu.Unlock()
		// Two stores of one test are two nodes sharing data: in memory,
		// that is the same store.
		if s, ok := stores[t]; ok {
			return s
		}
		s := logs.NewMemory(logstest.Keep)
		stores[t] = s
		return s
	})
}
