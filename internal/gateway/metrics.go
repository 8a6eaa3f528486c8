package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Transport label values.
const (
	transportWS  = "ws"
	transportSSE = "sse"
)

// Refusal reasons, the label of progressd_gateway_refused_total. Each is
// also what the client was told: an HTTP status before the upgrade, or a
// close code after it.
const (
	refusedOrigin       = "origin"        // 403: Origin not allowed
	refusedShutdown     = "shutting_down" // 503, or 1001 right after Accept
	refusedHandshake    = "handshake"     // not a valid WebSocket upgrade
	refusedUnauthorized = "unauthorized"  // 4001 / 401: no, bad or expired token
	refusedAuthTimeout  = "auth_timeout"  // 4001: no auth frame in time
	refusedTooManyConns = "too_many_conns"
	refusedBadRequest   = "bad_request" // SSE: bad channel list
	refusedForbidden    = "forbidden"   // SSE: channel not allowed
	refusedNotFound     = "not_found"   // SSE: unknown job
	refusedInternal     = "internal"    // SSE: the job store failed
)

// metrics are the gateway's Prometheus series.
type metrics struct {
	connections   *prometheus.GaugeVec
	subscriptions prometheus.Gauge
	sent          *prometheus.CounterVec
	sentWS        prometheus.Counter // sent{transport="ws"}, resolved once: it is hit per batch
	coalesced     prometheus.Counter
	stale         prometheus.Counter
	slowCloses    *prometheus.CounterVec
	duplicates    prometheus.Counter
	refused       *prometheus.CounterVec
	expired       prometheus.Counter
	revoked       prometheus.Counter
}

// newMetrics makes the series and registers them with reg (nil: none).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "progressd_gateway_connections", Help: "Open WebSocket connections and SSE streams, by transport.",
		}, []string{"transport"}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "progressd_gateway_subscriptions", Help: "Channel subscriptions of all open connections.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_gateway_messages_sent_total", Help: "Frames and events written to clients, by transport.",
		}, []string{"transport"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_gateway_updates_coalesced_total", Help: "Unsent snapshots replaced by a newer one of the same job for a slow client.",
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_gateway_updates_stale_total", Help: "Updates dropped because the connection already had that job at the same or a higher seq.",
		}),
		slowCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_gateway_slow_client_closes_total", Help: "Connections closed because the client could not keep up, by transport and reason (queue_full: 4008; write_timeout).",
		}, []string{"transport", "reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_gateway_duplicate_connections_total", Help: "Connections opened while another with the same user and client_id was open.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "progressd_gateway_refused_total", Help: "WebSocket upgrades and SSE streams refused or closed at admission, by reason.",
		}, []string{"reason"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_gateway_token_expired_closes_total", Help: "Connections closed because their token expired.",
		}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "progressd_gateway_subscriptions_revoked_total", Help: "Subscriptions ended because a refreshed token no longer allowed them.",
		}),
	}
	m.sentWS = m.sent.WithLabelValues(transportWS)
	for _, t := range []string{transportWS, transportSSE} {
		m.connections.WithLabelValues(t)
		m.sent.WithLabelValues(t)
		m.slowCloses.WithLabelValues(t, "queue_full")
		m.slowCloses.WithLabelValues(t, "write_timeout")
	}
	for _, r := range []string{refusedOrigin, refusedShutdown, refusedHandshake, refusedUnauthorized,
		refusedAuthTimeout, refusedTooManyConns, refusedBadRequest, refusedForbidden, refusedNotFound, refusedInternal} {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		all := []prometheus.Collector{m.connections, m.subscriptions, m.sent, m.coalesced,
			m.stale, m.slowCloses, m.duplicates, m.refused, m.expired, m.revoked}
		for i, c := range all {
			if err := reg.Register(c); err != nil {
				for _, done := range all[:i] {
					reg.Unregister(done) // all or nothing
				}
				return nil, fmt.Errorf("gateway: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
