package progress

import (
	"testing"
	"time"
)

// BenchmarkApply is the common case: a job with three stages, a report with
// stage, progress and message, the estimator warmed up.
func BenchmarkApply(b *testing.B) {
	prev := applyAll(b, newJob(b, st("fetch"), ws("encode", 8), st("upload")),
		Report{Stage: sp("fetch"), Progress: fp(1)},
		Report{Stage: sp("encode"), Progress: fp(0.1)},
		Report{Stage: sp("encode"), Progress: fp(0.2)},
	)
	r := Report{Stage: sp("encode"), Progress: fp(0.35), Message: sp("frame 420/1200")}
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(prev, r, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyNoStages is a job without stages reporting current/total.
func BenchmarkApplyNoStages(b *testing.B) {
	prev := applyAll(b, newJob(b), Report{Current: fp(10), Total: fp(1200)}, Report{Current: fp(20)})
	r := Report{Current: fp(420), Message: sp("frame 420/1200")}
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(prev, r, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyRejected is a report refused for a bad value.
func BenchmarkApplyRejected(b *testing.B) {
	prev := applyAll(b, newJob(b, st("a"), st("b")), Report{Stage: sp("a"), Progress: fp(0.5)})
	r := Report{Stage: sp("nope"), Progress: fp(0.6)}
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(prev, r, now); err == nil {
			b.Fatal("accepted")
		}
	}
}
