package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/protocol"
)

// Gateway fans job updates out to WebSocket connections and SSE streams.
// Create it with New, mount ServeWS, ServeJobEvents and ServeEvents, and
// call Shutdown before closing the broker.
type Gateway struct {
	cfg  Config
	hub  *hub
	m    *metrics
	log  *slog.Logger
	warn rateLimiter
	// spacer ends the write spacing of every connection and stream
	// (Config.MinWriteInterval): one clock, not a timer per connection.
	spacer *flushClock

	// ctx is canceled by Shutdown: it ends SSE streams and job store reads.
	ctx    context.Context
	cancel context.CancelFunc
	// unsubscribe ends the broker subscription.
	unsubscribe func()

	mu      sync.Mutex
	closed  bool
	conns   map[*wsConn]struct{}
	perUser map[string]int // open connections and streams per user
	clients map[string]int // open connections per user + "\x00" + client id
	// wg counts every connection's reader goroutine and every SSE handler
	// in flight; Add happens under mu only while !closed.
	wg sync.WaitGroup

	shutdownOnce sync.Once
	drained      chan struct{} // closed when wg is done after Shutdown
}

// New returns a Gateway subscribed to cfg.Broker.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:     cfg,
		hub:     newHub(m),
		m:       m,
		log:     cfg.Log.With("component", "gateway"),
		ctx:     ctx,
		cancel:  cancel,
		conns:   make(map[*wsConn]struct{}),
		perUser: make(map[string]int),
		clients: make(map[string]int),
		drained: make(chan struct{}),
		spacer:  newFlushClock(cfg.clock, cfg.MinWriteInterval),
	}
	g.hub.warnf = g.warnf
	g.unsubscribe = cfg.Broker.Subscribe(g.hub.publish)
	return g, nil
}

// Shutdown stops the gateway: it stops taking updates and connections,
// closes every WebSocket with 1001 going away, ends every SSE stream, and
// waits for all their goroutines. If ctx ends first, the remaining
// connections are dropped without a close handshake and Shutdown returns
// ctx.Err() once their goroutines have returned (each is bounded by the
// write and close timeouts). It is safe to call more than once, from any
// goroutine; every call waits.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		conns := make([]*wsConn, 0, len(g.conns))
		for c := range g.conns {
			conns = append(conns, c)
		}
		g.mu.Unlock()
		g.unsubscribe()
		g.cancel()
		for _, c := range conns {
			c.closeWith(protocol.CloseGoingAway, "server going away")
		}
		go func() {
			g.wg.Wait()
			g.spacer.stop()
			close(g.drained)
		}()
		g.log.Info("gateway shutting down", "websockets", len(conns))
	})
	select {
	case <-g.drained:
		return nil
	case <-ctx.Done():
	}
	// Out of time: drop the rest without a close handshake.
	g.mu.Lock()
	conns := make([]*wsConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.drop()
	}
	<-g.drained
	return ctx.Err()
}

// track registers a connection or stream in flight; false after Shutdown.
func (g *Gateway) track(c *wsConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	if c != nil {
		g.conns[c] = struct{}{}
		g.m.connections.WithLabelValues(transportWS).Inc()
	} else {
		g.m.connections.WithLabelValues(transportSSE).Inc()
	}
	return true
}

// isClosed reports whether Shutdown has begun.
func (g *Gateway) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// untrack undoes track once the connection's goroutines are done.
func (g *Gateway) untrack(c *wsConn) {
	g.mu.Lock()
	if c != nil {
		delete(g.conns, c)
		g.m.connections.WithLabelValues(transportWS).Dec()
	} else {
		g.m.connections.WithLabelValues(transportSSE).Dec()
	}
	g.mu.Unlock()
	g.wg.Done()
}

// admission is one counted connection of a user.
type admission struct {
	user, client string
}

// admit counts a connection of p, refusing it over MaxConnsPerUser unless
// p is an admin or auth is off. A second open connection with the same
// user and client id is counted as a duplicate, not refused: a reloaded
// page may briefly hold both.
func (g *Gateway) admit(p auth.Principal, clientID string) (admission, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	limited := g.cfg.Auth.Enabled() && !p.Admin
	if limited && g.perUser[p.Subject] >= g.cfg.MaxConnsPerUser {
		return admission{}, false
	}
	g.perUser[p.Subject]++
	a := admission{user: p.Subject}
	if clientID != "" {
		a.client = p.Subject + "\x00" + clientID
		g.clients[a.client]++
		if g.clients[a.client] > 1 {
			g.m.duplicates.Inc()
		}
	}
	return a, true
}

// release undoes admit.
func (g *Gateway) release(a admission) {
	if a.user == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.perUser[a.user]--; g.perUser[a.user] <= 0 {
		delete(g.perUser, a.user)
	}
	if a.client != "" {
		if g.clients[a.client]--; g.clients[a.client] <= 0 {
			delete(g.clients, a.client)
		}
	}
}

// originAllowed applies the Origin check (SPEC.md, "Origins"): no
// Origin (not a browser), the server's own, or a listed one.
func (g *Gateway) originAllowed(o string) bool {
	if g.cfg.Origins == nil {
		return o == ""
	}
	return g.cfg.Origins.Allowed(o)
}

// rateLimiter lets a warning through at most once per interval, so one
// misbehaving client or a failing store cannot flood the log.
type rateLimiter struct {
	mu   sync.Mutex
	last time.Time
}

func (r *rateLimiter) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.last) >= time.Second {
		r.last = now
		return true
	}
	return false
}

// warnf logs a rate-limited warning.
func (g *Gateway) warnf(msg string, args ...any) {
	if g.warn.allow() {
		g.log.Warn(msg, args...)
	}
}
