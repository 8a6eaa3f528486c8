package origin

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func mustNew(t *testing.T, addr string, allowed ...string) *Policy {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Listen: a, Allowed: allowed, SingleUser: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOwnOriginsFromTheListenAddress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		addr      string
		own, not  []string
		hosts, no []string
	}{
		{addr: "127.0.0.1:8000",
			own:   []string{"http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "HTTP://LOCALHOST:8000"},
			not:   []string{"https://127.0.0.1:8000", "http://127.0.0.1:8001", "http://localhost", "http://evil.example:8000", "null", "", "http://127.0.0.1:8000.evil.example"},
			hosts: []string{"127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LocalHost:8000"},
			no:    []string{"127.0.0.1", "localhost:8001", "evil.example:8000", "127.0.0.1:8000.evil.example", ""}},
		{addr: "127.0.0.2:9000", own: []string{"http://127.0.0.2:9000", "http://localhost:9000"}, hosts: []string{"127.0.0.2:9000"}},
		{addr: "[::1]:8000", own: []string{"http://[::1]:8000", "http://127.0.0.1:8000"}},
		{addr: "127.0.0.1:80", own: []string{"http://localhost", "http://127.0.0.1:80"}, hosts: []string{"localhost", "[::1]", "127.0.0.1:80"}},
		{addr: "0.0.0.0:8000", own: []string{"http://127.0.0.1:8000", "http://localhost:8000"}, not: []string{"http://evil.example:8000"}},
		{addr: "192.0.2.7:8000", own: []string{"http://192.0.2.7:8000"}, not: []string{"http://localhost:8000", "http://127.0.0.1:8000"},
			hosts: []string{"192.0.2.7:8000"}, no: []string{"localhost:8000"}},
	} {
		p := mustNew(t, tt.addr)
		for _, o := range tt.own {
			if !p.IsOwn(o) {
				t.Errorf("listening on %s: %q is not own (own: %v)", tt.addr, o, p.Own())
			}
		}
		for _, o := range tt.not {
			if p.IsOwn(o) {
				t.Errorf("listening on %s: %q is own", tt.addr, o)
			}
		}
		for _, h := range tt.hosts {
			if !p.HostAllowed(h) {
				t.Errorf("listening on %s: Host %q refused", tt.addr, h)
			}
		}
		for _, h := range tt.no {
			if p.HostAllowed(h) {
				t.Errorf("listening on %s: Host %q served", tt.addr, h)
			}
		}
	}
}

func TestListedOrigins(t *testing.T) {
	t.Parallel()
	p := mustNew(t, "127.0.0.1:8000", "https://app.example.com", "*.trusted.test", "localhost:*")
	for o, want := range map[string]bool{
		"https://app.example.com":  true,
		"HTTPS://APP.EXAMPLE.COM":  true,
		"http://app.example.com":   false, // scheme differs
		"https://a.trusted.test":   true,
		"http://a.trusted.test":    true, // a host pattern takes any scheme
		"http://localhost:5173":    true,
		"https://localhost:5173":   true,
		"http://localhost":         false,
		"https://evil.example":     false,
		"null":                     false,
		"":                         false,
		"https://app.example.com.": false,
	} {
		if got := p.IsListed(o); got != want {
			t.Errorf("IsListed(%q) = %v, want %v", o, got, want)
		}
	}
	if !p.Allowed("") {
		t.Error("a request without Origin (not a browser) must be allowed")
	}
}

func TestBadAllowedOrigins(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"https://x.test/path", `allowed origin "https://x.test/path" must be scheme://host`},
		{"[bad", "not a valid pattern"},
		{"https://", "must be scheme://host"},
	} {
		if err := Check([]string{tt.in}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%q) = %v, want it to say %q", tt.in, err, tt.want)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "Listen is required") {
		t.Errorf("New without a listen address: %v", err)
	}
}

// TestRefusalIsLoggedOnce: an unlisted origin's page cannot read why it
// was refused, so the operator's log says, at most once a second.
func TestRefusalIsLoggedOnce(t *testing.T) {
	t.Parallel()
	var logged bytes.Buffer
	a, _ := net.ResolveTCPAddr("tcp", "127.0.0.1:8000")
	p, err := New(Config{Listen: a, Log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1e9, 0)
	p.now = func() time.Time { return clock }
	h := p.Guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("a refused request reached the handler") }))
	for i := range 4 {
		if i == 3 {
			clock = clock.Add(time.Second) // a second later: logged again
		}
		req := httptest.NewRequest("POST", "http://127.0.0.1:8000/api/v1/jobs", strings.NewReader("{}"))
		req.Header.Set("Origin", "https://unlisted.example")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if n := strings.Count(logged.String(), "refused a browser request"); n != 2 {
		t.Errorf("%d log lines for 3 refusals within a second and one after, want 2:\n%s", n, logged.String())
	}
	if !strings.Contains(logged.String(), "origin=https://unlisted.example") || !strings.Contains(logged.String(), "--allowed-origins") {
		t.Errorf("the log line does not name the origin and the flag: %s", logged.String())
	}
}

// FuzzGuard: any Origin, Host and Sec-Fetch-Site a client sends: no
// panic, and a request that passes is allowed by the rules.
func FuzzGuard(f *testing.F) {
	f.Add("https://evil.example", "127.0.0.1:8000", "cross-site", "POST")
	f.Add("http://localhost:8000", "localhost:8000", "same-origin", "GET")
	f.Add("null", "[::1]:8000", "", "OPTIONS")
	f.Add("http://[::1", "rebound.example:8000", "none", "DELETE")
	a, _ := net.ResolveTCPAddr("tcp", "127.0.0.1:8000")
	p, err := New(Config{Listen: a, Allowed: []string{"https://app.example.com"}, SingleUser: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin, host, site, method string) {
		req := httptest.NewRequest("GET", "http://127.0.0.1:8000/api/v1/jobs", nil)
		if m := strings.ToUpper(method); m == "POST" || m == "DELETE" || m == "OPTIONS" {
			req.Method = m
		}
		req.Host = host
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", site)
		passed := false
		p.Guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { passed = true })).ServeHTTP(httptest.NewRecorder(), req)
		if passed && (!p.HostAllowed(host) || (origin != "" && !p.Allowed(origin)) || (origin == "" && site == "cross-site")) {
			t.Fatalf("passed: Origin %q Host %q Sec-Fetch-Site %q %s", origin, host, site, req.Method)
		}
	})
}

// BenchmarkGuard is what the guard adds to every request: a dashboard
// POST from the server's own origin, and a request with no browser
// headers (curl, SDKs, the report path of most workers).
func BenchmarkGuard(b *testing.B) {
	a, _ := net.ResolveTCPAddr("tcp", "127.0.0.1:8000")
	p, err := New(Config{Listen: a, Allowed: []string{"https://app.example.com"}, SingleUser: true})
	if err != nil {
		b.Fatal(err)
	}
	h := p.Guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, bc := range []struct {
		name   string
		origin string
	}{{"own-origin", "http://127.0.0.1:8000"}, {"no-browser-headers", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("POST", "http://127.0.0.1:8000/api/v1/jobs/x/progress", nil)
			if bc.origin != "" {
				req.Header.Set("Origin", bc.origin)
				req.Header.Set("Sec-Fetch-Site", "same-origin")
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				clear(w.Header())
				h.ServeHTTP(w, req)
			}
		})
	}
}
