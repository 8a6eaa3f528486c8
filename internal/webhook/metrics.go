package webhook

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the webhook series (SPEC.md: progressd_webhook_*).
type metrics struct {
	delivered prometheus.Counter
	failures  *prometheus.CounterVec
	gaveUp    prometheus.Counter
}

// waitingTimeout bounds the count behind progressd_webhook_queue, so a
// slow database cannot hold a scrape.
const waitingTimeout = 2 * time.Second

func newMetrics(reg prometheus.Registerer, waiting func(context.Context) (int, error)) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_webhook_deliveries_total",
			Help: "Webhook events delivered by this node (answered with a 2xx).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_webhook_failures_total",
			Help: "Webhook tries by this node that failed and will be retried, by reason: timeout (no answer within 10 s), connection (refused, reset, DNS), redirect (a 3xx: never followed), status (any other answer but a 2xx).",
		}, []string{"reason"}),
		gaveUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_webhook_given_up_total",
			Help: "Webhook events this node stopped retrying: no 2xx answer within 24 h of the event.",
		}),
	}
	for _, r := range reasons {
		m.failures.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "progressd_webhook_queue",
		Help: "Webhook deliveries (one per event and URL) waiting or being tried, in the queue this node works (on PostgreSQL, every node's).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), waitingTimeout)
		defer cancel()
		n, err := waiting(ctx)
		if err != nil {
			return math.NaN() // unknown, rather than a wrong number
		}
		return float64(n)
	})
	return m, errors.Join(reg.Register(m.delivered), reg.Register(m.failures), reg.Register(m.gaveUp), reg.Register(queue))
}
