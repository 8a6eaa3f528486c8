package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		base int
		live uint64
		want int
	}{
		{100, 4 << 20, 800},          // 4 MiB live: 32 MiB of room
		{100, 32 << 20, 100},         // GOGC's room is as much
		{100, 150 << 20, 100},        // a large heap: GOGC as set
		{400, 16 << 20, 400},         // GOGC set higher: kept
		{100, 1 << 10, maxGCPercent}, // almost nothing live: bounded
		{100, 0, maxGCPercent},       // before any cycle
		{50, 64 << 20, 50},           // a lower GOGC over a large heap is honoured
	} {
		if got := gcPercentFor(tc.base, tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d, %d) = %d, want %d", tc.base, tc.live, got, tc.want)
		}
	}
}

// TestGCFloorRaisesGOGC: after a cycle over a small live heap (a test
// binary's), GOGC's percentage leaves gcHeadroom of room; stop puts it
// back.
func TestGCFloorRaisesGOGC(t *testing.T) {
	gogc := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set for this test run: the floor leaves it alone")
	}
	stop := startGCFloor()
	for deadline := time.Now().Add(10 * time.Second); gogc() == 100 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := gogc(); p <= 100 {
		t.Errorf("GOGC %d%% after a cycle over a small heap, want more", p)
	}
	stop()
	if p := gogc(); p != 100 {
		t.Errorf("GOGC %d%% after stop, want 100", p)
	}
}
