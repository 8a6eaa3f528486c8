// Package origin decides which browser pages may talk to this server. It
// holds the server's own origins (derived from the address it listens on,
// never from a request's Host header), the origins listed in
// --allowed-origins, and Guard: the HTTP middleware that answers CORS
// preflights, adds CORS headers for listed origins, refuses cross-site
// writes (and, in single-user mode, cross-site reads), and in single-user
// mode refuses a Host that is not this server's loopback address (DNS
// rebinding). The gateway asks the same Policy before a WebSocket upgrade.
//
// Why these signals: a browser always sends Origin on a POST, a CORS
// request and a WebSocket upgrade, and current browsers send Sec-Fetch-Site
// on every request to a loopback or https address; a page cannot remove or
// forge either. A client that sends neither (curl, the SDKs, the CLI) is not
// a browser, and is not acting for a page the user happens to visit, so it
// is not refused for its origin: `curl -d` keeps working.
//
// A Policy is immutable once made and safe for concurrent use.
package origin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config makes a Policy.
type Config struct {
	// Listen is the address the server is bound to (with --addr :0, the
	// port actually chosen). The own origins are derived from it.
	Listen net.Addr
	// Allowed is --allowed-origins: full origins ("https://app.example.com")
	// or host patterns ("app.example.com", "*.example.com", "localhost:*",
	// path.Match syntax), or "*" for any.
	Allowed []string
	// SingleUser is set when there is no auth secret: every request acts
	// as the local user, so network position is the only credential and
	// every cross-site request (reads too) and foreign Host is refused.
	SingleUser bool
	// Registerer receives progressd_http_refused_total; nil registers none.
	Registerer prometheus.Registerer
	// Log gets a warning per refusal, at most one a second: an unlisted
	// origin's page cannot read why it was refused, its operator can.
	Log *slog.Logger
}

// Policy is the origin and Host policy of one server.
type Policy struct {
	addr       net.Addr
	own        []string        // "http://127.0.0.1:8000", lower case
	hosts      map[string]bool // Host values served in single-user mode, host:port, lower case
	listed     []pattern
	singleUser bool
	refused    *prometheus.CounterVec
	log        *slog.Logger
	lastWarn   atomic.Int64 // unix nanoseconds of the last refusal logged
	now        func() time.Time
}

// Reasons of a refusal, the label of progressd_http_refused_total.
const (
	reasonHost      = "host"       // single-user mode, a Host not the server's (DNS rebinding)
	reasonCrossSite = "cross_site" // a cross-site write, or read in single-user mode
	reasonPreflight = "preflight"  // a CORS preflight from an origin not allowed
)

// New derives the own origins from cfg.Listen and parses cfg.Allowed.
func New(cfg Config) (*Policy, error) {
	listed, err := parsePatterns(cfg.Allowed)
	if err != nil {
		return nil, err
	}
	if cfg.Listen == nil {
		return nil, errors.New("origin: Config.Listen is required (the address the server is bound to)")
	}
	host, port, err := net.SplitHostPort(cfg.Listen.String())
	if err != nil {
		return nil, fmt.Errorf("origin: listen address %q: %w", cfg.Listen, err)
	}
	p := &Policy{addr: cfg.Listen, hosts: map[string]bool{}, listed: listed, singleUser: cfg.SingleUser, log: cfg.Log, now: time.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "progressd_http_refused_total",
		Help: "Browser requests refused by origin: host (single-user mode, a Host not the server's: DNS rebinding), cross_site, preflight.",
	}, []string{"reason"})
	for _, r := range []string{reasonHost, reasonCrossSite, reasonPreflight} {
		p.refused.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(p.refused); err != nil {
			return nil, fmt.Errorf("origin: register metrics: %w", err)
		}
	}
	for _, h := range ownHosts(host) {
		hp := strings.ToLower(net.JoinHostPort(h, port))
		if !p.hosts[hp] {
			p.hosts[hp] = true
			p.own = append(p.own, "http://"+hp)
		}
		if port == "80" { // a browser leaves the default port out of Host and Origin
			p.hosts[strings.ToLower(bracket(h))] = true
		}
	}
	return p, nil
}

// ownHosts are the names this server is reached at by a browser on this
// machine: for a loopback address 127.0.0.1, localhost and ::1 (and the
// address itself); for a wildcard address (0.0.0.0, ::) those and every
// address of the machine's interfaces; otherwise the address itself. A
// DNS name or a proxy's origin in front of the server is not derivable
// from the address: list it in --allowed-origins.
func ownHosts(host string) []string {
	loopback := []string{"127.0.0.1", "localhost", "::1"}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		out := loopback
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				out = append(out, n.IP.String())
			}
		}
		return out
	case host == "localhost":
		return loopback
	case ip != nil && ip.IsLoopback():
		return append([]string{ip.String()}, loopback...)
	}
	if ip != nil {
		return []string{ip.String()}
	}
	return []string{host}
}

func bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// Addr is the listen address the own origins were derived from.
func (p *Policy) Addr() net.Addr { return p.addr }

// Own lists the server's own origins, for the log and error messages.
func (p *Policy) Own() []string { return slices.Clone(p.own) }

// IsOwn reports whether origin is one of the server's own origins.
func (p *Policy) IsOwn(origin string) bool {
	scheme, host, ok := parseOrigin(origin)
	return ok && scheme == "http" && p.hosts[host]
}

// IsListed reports whether origin is allowed by --allowed-origins.
func (p *Policy) IsListed(origin string) bool {
	scheme, host, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	for _, l := range p.listed {
		if l.match(scheme, host) {
			return true
		}
	}
	return false
}

// Allowed reports whether a request with this Origin header may act here:
// no header (not a browser), the server's own origin, or a listed one.
func (p *Policy) Allowed(origin string) bool {
	return origin == "" || p.IsOwn(origin) || p.IsListed(origin)
}

// HostAllowed reports whether a request's Host header names this server
// as a browser on this machine reaches it. Only single-user mode checks
// it: there a page on a name rebound to 127.0.0.1 would otherwise be
// served as if it were the server's own.
func (p *Policy) HostAllowed(host string) bool {
	return p.hosts[strings.ToLower(host)]
}

// parseOrigin reads an Origin header value (scheme://host[:port]) into
// lower case. A browser leaves a default port out; New lists the own hosts
// without it for port 80.
// It runs on every request from a browser, so it splits the string
// rather than calling url.Parse (half the guard's cost, BenchmarkGuard):
// an origin has no path, query, fragment or user info, and anything else
// simply matches no own or listed origin.
func parseOrigin(origin string) (scheme, host string, ok bool) {
	scheme, host, ok = strings.Cut(origin, "://")
	if !ok || scheme == "" || host == "" || strings.ContainsAny(host, "/?#@ \\") {
		return "", "", false
	}
	return strings.ToLower(scheme), strings.ToLower(host), true
}

// pattern is one parsed --allowed-origins entry.
type pattern struct {
	scheme string // "" matches any scheme
	host   string // lower case, path.Match pattern
}

// Check says whether list is a valid --allowed-origins value.
func Check(list []string) error {
	_, err := parsePatterns(list)
	return err
}

func parsePatterns(list []string) ([]pattern, error) {
	var out []pattern
	for _, o := range list {
		o = strings.ToLower(strings.TrimSpace(o))
		if o == "" {
			continue
		}
		p := pattern{host: o}
		if strings.Contains(o, "://") {
			u, err := url.Parse(o)
			if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
				return nil, fmt.Errorf("allowed origin %q must be scheme://host[:port] or a host pattern", o)
			}
			p = pattern{scheme: u.Scheme, host: u.Host}
		}
		if _, err := path.Match(p.host, ""); err != nil {
			return nil, fmt.Errorf("allowed origin %q is not a valid pattern: %w", o, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// match reports whether an origin (parsed by parseOrigin) is allowed by p.
func (p pattern) match(scheme, host string) bool {
	if p.scheme != "" && p.scheme != scheme {
		return false
	}
	ok, _ := path.Match(p.host, host)
	return ok
}

// refuse answers 403 in the API's error shape, counts the refusal and
// logs it (rate-limited).
func (p *Policy) refuse(w http.ResponseWriter, r *http.Request, reason, msg string) {
	p.refused.WithLabelValues(reason).Inc()
	now := p.now().UnixNano()
	if last := p.lastWarn.Load(); now-last >= int64(time.Second) && p.lastWarn.CompareAndSwap(last, now) {
		p.log.Warn("refused a browser request (at most one such line a second)", "reason", reason,
			"method", r.Method, "path", truncate(r.URL.Path), "origin", truncate(r.Header.Get("Origin")),
			"host", truncate(r.Host), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "why", msg)
	}
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "forbidden", "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write(append(body, '\n'))
}
