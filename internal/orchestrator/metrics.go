package orchestrator

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the orchestrator's Prometheus series.
type metrics struct {
	attempts *prometheus.CounterVec
}

// outcomes label attempts.
var outcomes = []string{"succeeded", "failed", "retried", "canceled", "handed_back", "fenced", "held"}

func newMetrics(reg prometheus.Registerer, running func() int) (*metrics, error) {
	m := &metrics{attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "progressd_pipeline_attempts_total",
		Help: "Pipeline job attempts run on this node, by outcome (succeeded, failed, retried, canceled, handed_back, fenced: stopped because the node lost the shared job queue; held: ended, but the outcome could not be recorded yet and is held in the queue row, retried until it lands).",
	}, []string{"outcome"})}
	for _, o := range outcomes {
		m.attempts.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "progressd_pipeline_jobs_running",
		Help: "Pipeline jobs running on this node now.",
	}, func() float64 { return float64(running()) })
	return m, errors.Join(reg.Register(m.attempts), reg.Register(gauge))
}

func (m *metrics) attempt(outcome string) { m.attempts.WithLabelValues(outcome).Inc() }
