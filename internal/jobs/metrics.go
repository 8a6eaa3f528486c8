package jobs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/progressd/progressd/internal/progress"
)

// Metrics are the Service's Prometheus series.
type Metrics struct {
	created     prometheus.Counter
	replayed    prometheus.Counter
	accepted    prometheus.Counter
	rejected    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	jobs        *prometheus.GaugeVec
	logLines    prometheus.Counter
	deleted     *prometheus.CounterVec
	lapsed      *prometheus.CounterVec
}

// NewMetrics makes the series and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_jobs_created_total", Help: "Jobs created on this node.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_jobs_create_replayed_total", Help: "Creates answered with an earlier create's job because they repeated its Idempotency-Key.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_reports_accepted_total", Help: "Progress reports applied.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_reports_rejected_total", Help: "Reports and job requests rejected, by error code.",
		}, []string{"reason"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_job_transitions_total", Help: "Job state changes on this node, by new state.",
		}, []string{"state"}),
		jobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "progressd_jobs", Help: "Jobs by state: those created on this node or unfinished when it started, as they changed here. With several nodes, sum over nodes.",
		}, []string{"state"}),
		logLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_log_lines_total", Help: "Log lines kept (from stages, POST .../logs and reports) on this node.",
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_jobs_deleted_total", Help: "Finished jobs deleted on this node, by why: request (DELETE /api/v1/jobs/{id}) or retention (--retention).",
		}, []string{"reason"}),
		lapsed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_jobs_lapsed_total", Help: "Jobs marked stalled (stall_after_seconds) or failed as abandoned (--abandon-after, abandon_after_seconds) by this node's sweep.",
		}, []string{"reason"}),
	}
	m.lapsed.WithLabelValues("stalled")
	m.lapsed.WithLabelValues("abandoned")
	m.deleted.WithLabelValues("request")
	m.deleted.WithLabelValues("retention")
	for _, st := range progress.States {
		m.transitions.WithLabelValues(string(st))
		m.jobs.WithLabelValues(string(st))
	}
	if reg != nil {
		reg.MustRegister(m.created, m.replayed, m.accepted, m.rejected, m.transitions, m.jobs, m.logLines, m.deleted, m.lapsed)
	}
	return m
}

// added counts a job this node created or loaded at start.
func (m *Metrics) added(st progress.State) { m.jobs.WithLabelValues(string(st)).Inc() }

func (m *Metrics) stateChanged(from, to progress.State) {
	m.transitions.WithLabelValues(string(to)).Inc()
	m.jobs.WithLabelValues(string(from)).Dec()
	m.jobs.WithLabelValues(string(to)).Inc()
}
