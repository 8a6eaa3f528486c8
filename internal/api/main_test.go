package api

import (
	"testing"

	"go.uber.org/goleak"
)

// The pipelines test runs a job service, which starts goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
