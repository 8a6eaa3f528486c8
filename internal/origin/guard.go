package origin

import (
	"fmt"
	"net/http"
	"strings"
)

// CORS answers, as SPEC.md fixes them. Credentials stay off: tokens travel
// in the Authorization header, never in cookies.
const (
	AllowMethods = "GET, POST, DELETE"
	AllowHeaders = "Authorization, Content-Type, Idempotency-Key, traceparent"
	// maxAge lets a browser reuse a preflight for ten minutes.
	maxAge = "600"
)

// Guard wraps the server's whole handler (API, streams, WebSocket, static
// pages). For every request it:
//
//   - in single-user mode, refuses a Host that is not one of the own
//     origins' host:port (403 forbidden): DNS rebinding;
//   - gives an allowed Origin (own or listed) Access-Control-Allow-Origin
//     echoing it, on success and on errors alike, so a browser client can
//     read the error; other origins get no CORS headers;
//   - answers a CORS preflight (OPTIONS with Access-Control-Request-Method)
//     itself, without a token: 204 for an allowed origin, 403 otherwise;
//   - refuses a cross-site request (an Origin neither own nor listed, or
//     no Origin and Sec-Fetch-Site: cross-site) with 403 forbidden if it is
//     not a GET or HEAD, and in single-user mode whatever its method,
//     except a top-level navigation (the user following a link to the
//     dashboard: the linking page cannot read the answer).
//
// A request with neither Origin nor Sec-Fetch-Site passes: it does not
// come from a browser page.
func (p *Policy) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Vary"] = append(h["Vary"], "Origin") // canonical already: no Add's key rewrite
		o := r.Header.Get("Origin")
		allowed := p.Allowed(o)
		if o != "" && allowed {
			h.Set("Access-Control-Allow-Origin", o)
		}
		if p.singleUser && !p.HostAllowed(r.Host) {
			p.refuse(w, r, reasonHost, fmt.Sprintf("Host %q is not this server's address: without --auth-secret only %s are served, "+
				"so a page on another name that resolves here (DNS rebinding) is refused; open one of those addresses",
				truncate(r.Host), strings.Join(p.own, ", ")))
			return
		}
		if r.Method == http.MethodOptions && o != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			p.preflight(w, r, allowed)
			return
		}
		if msg := p.refusal(r, o, allowed); msg != "" {
			p.refuse(w, r, reasonCrossSite, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers a CORS preflight request.
func (p *Policy) preflight(w http.ResponseWriter, r *http.Request, allowed bool) {
	h := w.Header()
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if !allowed {
		p.refuse(w, r, reasonPreflight, fmt.Sprintf("origin %q may not call this server; if the page is yours, add its origin to --allowed-origins",
			truncate(r.Header.Get("Origin"))))
		return
	}
	h.Set("Access-Control-Allow-Methods", AllowMethods)
	h.Set("Access-Control-Allow-Headers", AllowHeaders)
	h.Set("Access-Control-Max-Age", maxAge)
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		// Chromium asks before a public page may reach a loopback or
		// private address; a listed origin may.
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}

// refusal says why r is refused as a cross-site request, or "" if it is not.
func (p *Policy) refusal(r *http.Request, o string, allowed bool) string {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if read && !p.singleUser {
		return "" // a cross-site page cannot read the answer without CORS, which only allowed origins get
	}
	switch {
	case o != "" && !allowed:
		what := "write here"
		if read {
			what = "read from a server in single-user mode"
		}
		return fmt.Sprintf("origin %q may not %s (cross-site request); if the page is yours, add its origin to --allowed-origins",
			truncate(o), what)
	case o == "" && r.Header.Get("Sec-Fetch-Site") == "cross-site":
		if read && r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document" {
			return "" // a link followed to this server: the linking page cannot read the answer
		}
		return "a page from another site may not call this server (Sec-Fetch-Site: cross-site); " +
			"serve the page from an origin listed in --allowed-origins"
	}
	return ""
}

// truncate keeps a header value quoted in an error message short.
func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
