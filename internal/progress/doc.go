// Package progress is the model every update in progressd passes through:
// jobs, stages, states, the normalized job snapshot, progress reports, and
// Apply, the message adapter that turns a report into the next snapshot.
//
// It does no I/O and holds no locks: every function here is pure, so the
// snapshot stores (memory, Redis) decide how a job is updated atomically and
// this package decides only what the next snapshot is. Callers pass the clock
// in, which keeps Apply deterministic in tests and fuzzing.
package progress
