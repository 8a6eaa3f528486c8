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
	// opened counts breakers this node opened; probes, probe tries by
	// result.
	opened prometheus.Counter
	probes *prometheus.CounterVec
}

// waitingTimeout bounds the count behind progressd_webhook_queue, so a
// slow database cannot hold a scrape.
const waitingTimeout = 2 * time.Second

// newMetrics makes the series; waiting counts the deliveries waiting and
// open the URLs whose breaker is open, for the gauges.
func newMetrics(reg prometheus.Registerer, waiting, open func(context.Context) (int, error)) (*metrics, error) {
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
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_webhook_breaker_opened_total",
			Help: "Times a failed try on this node opened its URL's breaker: that URL's other deliveries wait until a probe gets through.",
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_webhook_probes_total",
			Help: "Probes of an open breaker (one delivery tried on the retry schedule) run by this node, by result: ok (received: the breaker closes), failed.",
		}, []string{"result"}),
	}
	for _, r := range reasons {
		m.failures.WithLabelValues(r)
	}
	m.probes.WithLabelValues("ok")
	m.probes.WithLabelValues("failed")
	if reg == nil {
		return m, nil
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "progressd_webhook_queue",
		Help: "Webhook deliveries (one per event and URL) waiting or being tried, in the database this node works (on PostgreSQL, every node's).",
	}, gauge(waiting))
	breakers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "progressd_webhook_breakers_open",
		Help: "Webhook URLs of this node whose breaker is open: a try failed, and their deliveries wait for a probe to get through (on PostgreSQL, opened by any node).",
	}, gauge(open))
	return m, errors.Join(reg.Register(m.delivered), reg.Register(m.failures), reg.Register(m.gaveUp),
		reg.Register(m.opened), reg.Register(m.probes), reg.Register(queue), reg.Register(breakers))
}

// gauge reads a count from the database for a scrape, bounded in time.
func gauge(count func(context.Context) (int, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), waitingTimeout)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return math.NaN() // unknown, rather than a wrong number
		}
		return float64(n)
	}
}
