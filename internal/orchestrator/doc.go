// Package orchestrator runs pipeline jobs: each stage of a pipeline (from
// the --pipelines YAML file, or the built-in demo) is a real process whose
// stdout lines are parsed into progress reports and sent through
// jobs.Service.Report — the same path as an HTTP report.
//
// # Life of a job
//
// jobs.Service.Create asks Runner.Stages to validate the pipeline and its
// params, stores the job, and calls Runner.Start, which inserts a River job
// holding the progressd job id into the durable queue: queue.db in the data
// directory, or, with Config.Postgres, River's tables in the node's
// PostgreSQL database, one queue for every node, so any node may run any
// job (shared.go). A River worker (at most Config.Workers at once) reads the
// snapshot, runs the stages in order and reports the outcome: succeeded;
// failed with an error naming the stage, its exit status and the last line
// of stderr; or, with max_attempts > 1, a retry after a doubling backoff.
// An outcome that cannot be recorded at once is held in the River row and
// retried until it lands (outcome.go).
//
// Commands run without a shell, argv exactly as the pipeline declares it
// with {{param}} replaced by the param's bytes, each in a process group of
// its own. A cancel, a stage timeout or a shutdown sends SIGTERM to the
// whole group and SIGKILL after Config.KillGrace; when a stage's command
// exits, whatever it left running in its group is killed.
//
// # Stopping and crashing
//
// Stop hands running jobs back: their commands are stopped and River makes
// them available again without counting an attempt, so they run again from
// the first stage at the next start. A node that dies instead leaves queue
// rows marked running; the next Orchestrator on the same data directory
// kills the commands the dead one left (their process groups are recorded
// under running/), then retries those jobs or, with no attempts left, fails
// them with an error that says the node stopped (recover.go). One process
// at a time may use a data directory: New takes an exclusive lock on it.
// On the shared PostgreSQL queue, rows marked running may belong to live
// nodes, so that start-time step is skipped: every node heartbeats, and the
// running jobs of a node silent for Config.NodeTimeout are retried or
// failed by another node within about 1.2·NodeTimeout (shared.go). A live
// node that cannot reach the database fences itself first: by
// 0.85·NodeTimeout its commands are stopped, so a job never runs on two
// nodes at once.
//
// # Concurrency
//
// Orchestrator and Runner are safe for concurrent use. Each running job
// has one goroutine from River, two reading its command's output, one
// passing reports on (merging lines that come faster than ~100 a second)
// and one watching for a cancel on another node; all end before the job's
// worker returns, and Stop returns after every worker has.
package orchestrator
