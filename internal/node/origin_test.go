package node

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/auth"
)

// browserRequest is one request as a browser sends it: the exact headers
// Chromium puts on it, and Host as the page's URL names the server.
type browserRequest struct {
	name    string
	method  string
	path    string
	host    string // "" keeps the server's own address
	headers map[string]string
	body    string
	status  int  // the status wanted
	cors    bool // whether Access-Control-Allow-Origin must echo Origin
}

func (b browserRequest) do(t *testing.T, base, token string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if b.body != "" {
		body = strings.NewReader(b.body)
	}
	req, err := http.NewRequest(b.method, base+b.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if b.host != "" {
		req.Host = b.host
	}
	for k, v := range b.headers {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(data)
}

func (b browserRequest) check(t *testing.T, base, token string) {
	t.Helper()
	resp, body := b.do(t, base, token)
	if resp.StatusCode != b.status {
		t.Errorf("%s: status %d, want %d (%s)", b.name, resp.StatusCode, b.status, body)
	}
	if resp.StatusCode == http.StatusForbidden && !strings.Contains(body, `"code":"forbidden"`) {
		t.Errorf("%s: 403 body %s, want the contract's error shape with code forbidden", b.name, body)
	}
	acao := resp.Header.Get("Access-Control-Allow-Origin")
	if want := b.headers["Origin"]; b.cors && acao != want {
		t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", b.name, acao, want)
	} else if !b.cors && acao != "" {
		t.Errorf("%s: Access-Control-Allow-Origin %q, want none", b.name, acao)
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("%s: no Vary: Origin", b.name)
	}
}

// Headers Chromium sends on the requests a page can make without CORS.
func crossSiteText(origin string) map[string]string { // fetch(url, {method: "POST", mode: "no-cors", body: "…"})
	return map[string]string{"Origin": origin, "Content-Type": "text/plain;charset=UTF-8",
		"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}
}

func crossSiteForm(origin string) map[string]string { // <form method=post> submitted
	return map[string]string{"Origin": origin, "Content-Type": "application/x-www-form-urlencoded",
		"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-User": "?1"}
}

var (
	crossSiteRead = map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
	followedLink  = map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-User": "?1"}
	curlForm      = map[string]string{"Content-Type": "application/x-www-form-urlencoded"} // curl -d
)

const (
	jobBody    = `{"project":"csrf","stages":[{"name":"work"}]}`
	evilOrigin = "https://evil.example"
	appOrigin  = "http://app.test:5173"
)

// countJobs is how many jobs of project csrf exist, read without any
// browser header.
func countJobs(t *testing.T, c client) int {
	t.Helper()
	var list struct {
		Jobs []struct{} `json:"jobs"`
	}
	r := c.do("GET", "/api/v1/jobs?project=csrf", nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	r.decode(t, &list)
	return len(list.Jobs)
}

// TestCrossSiteSingleUser: in single-user mode (no secret, every request
// is the local user) a page on another site can neither write nor read,
// a name rebound to 127.0.0.1 is not served, and curl, the dashboard and a
// listed origin keep working.
func TestCrossSiteSingleUser(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", func(c *Config) { c.AllowedOrigins = []string{appOrigin} })
	_, port, _ := net.SplitHostPort(n.Addr())
	own := "http://127.0.0.1:" + port
	c := client{t: t, base: n.URL(), contentType: "application/json"}
	job := c.do("POST", "/api/v1/jobs", jobBody)
	if job.status != http.StatusCreated {
		t.Fatalf("create: %d %s", job.status, job.body)
	}
	var created struct {
		ID string `json:"job_id"`
	}
	job.decode(t, &created)
	rebound := "rebound.example:" + port

	for _, b := range []browserRequest{
		{name: "curl -d", method: "POST", path: "/api/v1/jobs", headers: curlForm, body: jobBody, status: 201},
		{name: "dashboard POST", method: "POST", path: "/api/v1/jobs", body: jobBody, status: 201, cors: true,
			headers: map[string]string{"Origin": own, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}},
		{name: "dashboard on localhost", method: "POST", path: "/api/v1/jobs", host: "localhost:" + port, body: jobBody, status: 201, cors: true,
			headers: map[string]string{"Origin": "http://localhost:" + port, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}},
		{name: "listed origin", method: "POST", path: "/api/v1/jobs", body: jobBody, status: 201, cors: true,
			headers: map[string]string{"Origin": appOrigin, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}},
		{name: "listed origin, an error it can read", method: "POST", path: "/api/v1/jobs", body: `{"project":""}`, status: 400, cors: true,
			headers: map[string]string{"Origin": appOrigin, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}},
		{name: "cross-site text/plain POST", method: "POST", path: "/api/v1/jobs", headers: crossSiteText(evilOrigin), body: jobBody, status: 403},
		{name: "cross-site form POST", method: "POST", path: "/api/v1/jobs", headers: crossSiteForm(evilOrigin), body: jobBody, status: 403},
		{name: "cross-site cancel", method: "POST", path: "/api/v1/jobs/" + created.ID + "/cancel", headers: crossSiteText(evilOrigin), status: 403},
		{name: "cross-site report", method: "POST", path: "/api/v1/jobs/" + created.ID + "/progress", headers: crossSiteText(evilOrigin), body: `{"state":"failed"}`, status: 403},
		{name: "opaque origin (sandboxed iframe)", method: "POST", path: "/api/v1/jobs", headers: crossSiteText("null"), body: jobBody, status: 403},
		{name: "localhost on another port", method: "POST", path: "/api/v1/jobs", body: jobBody, status: 403,
			headers: map[string]string{"Origin": "http://localhost:1", "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}},
		{name: "cross-site read", method: "GET", path: "/api/v1/jobs?project=csrf", headers: crossSiteRead, status: 403},
		{name: "cross-site read with an Origin", method: "GET", path: "/api/v1/jobs/" + created.ID, status: 403,
			headers: map[string]string{"Origin": evilOrigin, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}},
		{name: "cross-site preflight", method: "OPTIONS", path: "/api/v1/jobs", status: 403,
			headers: map[string]string{"Origin": evilOrigin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}},
		{name: "a followed link to the dashboard", method: "GET", path: "/", headers: followedLink, status: 200},
		{name: "same-site read, no Origin", method: "GET", path: "/api/v1/jobs?project=csrf", status: 200,
			headers: map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"}},
		// DNS rebinding: the page's name now resolves to 127.0.0.1; to the
		// browser the page and the server are one origin.
		{name: "rebound read", method: "GET", path: "/api/v1/jobs?project=csrf", host: rebound, headers: map[string]string{}, status: 403},
		{name: "rebound write", method: "POST", path: "/api/v1/jobs", host: rebound, body: jobBody, status: 403,
			headers: map[string]string{"Origin": "http://" + rebound, "Content-Type": "text/plain;charset=UTF-8"}},
		{name: "rebound dashboard", method: "GET", path: "/", host: rebound, headers: map[string]string{}, status: 403},
		{name: "rebound metrics", method: "GET", path: "/metrics", host: rebound, headers: map[string]string{}, status: 403},
		{name: "Host [::1]", method: "GET", path: "/healthz", host: "[::1]:" + port, headers: map[string]string{}, status: 200},
		{name: "Host on another port", method: "GET", path: "/healthz", host: "127.0.0.1:1", headers: map[string]string{}, status: 403},
	} {
		b.check(t, n.URL(), "")
	}
	// 1 + curl + dashboard + localhost + listed: nothing from a refused one.
	if got := countJobs(t, c); got != 5 {
		t.Errorf("%d jobs in project csrf, want 5: a refused request created one", got)
	}
	if got := c.do("GET", "/api/v1/jobs/"+created.ID, nil); !strings.Contains(string(got.body), `"state":"queued"`) {
		t.Errorf("a refused cancel or report changed the job: %s", got.body)
	}

	// The WebSocket on a rebound name: refused before the upgrade.
	for _, h := range []http.Header{
		{"Origin": {"http://" + rebound}},
		{"Origin": {evilOrigin}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		host := ""
		if h.Get("Origin") != evilOrigin {
			host = rebound
		}
		ws, resp, err := websocket.Dial(ctx, "ws://"+n.Addr()+"/ws", &websocket.DialOptions{HTTPHeader: h, Host: host})
		cancel()
		if err == nil {
			ws.CloseNow()
			t.Errorf("WebSocket with Origin %s (Host %q) was accepted", h.Get("Origin"), host)
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("WebSocket with Origin %s: %v, want 403", h.Get("Origin"), err)
		}
	}

	// Every refusal is counted by reason, for the operator.
	metrics := string(c.do("GET", "/metrics", nil).body)
	for reason, want := range map[string]int{"host": 6, "cross_site": 9, "preflight": 1} {
		line := fmt.Sprintf("progressd_http_refused_total{reason=%q} %d\n", reason, want)
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// TestCrossSiteWithAuth: with a secret, tokens are not ambient, but
// writes from unlisted origins are still refused, reads are answered
// without CORS headers, preflights need no token, any Host is served (a
// proxy may name the server), and a listed origin reads even a 401.
func TestCrossSiteWithAuth(t *testing.T) {
	t.Parallel()
	const secret = "origin-test-secret-0123456789"
	n := startNode(t, "", func(c *Config) {
		c.AuthSecret = secret
		c.AllowedOrigins = []string{appOrigin}
	})
	tok, err := auth.Mint(secret, "alice", false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cors := func(o string) map[string]string {
		return map[string]string{"Origin": o, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
	}
	preflight := map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization,content-type,idempotency-key", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
	for _, b := range []browserRequest{
		{name: "listed origin writes", method: "POST", path: "/api/v1/jobs", headers: cors(appOrigin), body: jobBody, status: 201, cors: true},
		{name: "unlisted origin may not write", method: "POST", path: "/api/v1/jobs", headers: cors(evilOrigin), body: jobBody, status: 403},
		{name: "unlisted origin reads without CORS", method: "GET", path: "/api/v1/jobs?project=csrf", headers: cors(evilOrigin), status: 200},
		{name: "any Host with a secret", method: "GET", path: "/api/v1/jobs?project=csrf", host: "progress.example.com", headers: map[string]string{}, status: 200},
	} {
		b.check(t, n.URL(), tok)
	}
	for _, b := range []browserRequest{
		{name: "preflight needs no token", method: "OPTIONS", path: "/api/v1/jobs", headers: preflight, status: 204, cors: true},
		{name: "a listed origin reads its 401", method: "GET", path: "/api/v1/jobs?project=csrf", headers: cors(appOrigin), status: 401, cors: true},
	} {
		b.check(t, n.URL(), "")
	}
	resp, _ := browserRequest{method: "OPTIONS", path: "/api/v1/jobs/x/cancel", headers: preflight}.do(t, n.URL(), "")
	for k, want := range map[string]string{
		"Access-Control-Allow-Methods":     "GET, POST, DELETE",
		"Access-Control-Allow-Headers":     "Authorization, Content-Type, Idempotency-Key, traceparent",
		"Access-Control-Allow-Credentials": "",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("preflight %s: %q, want %q", k, got, want)
		}
	}
	c := client{t: t, base: n.URL(), token: tok, contentType: "application/json"}
	if got := countJobs(t, c); got != 1 {
		t.Errorf("%d jobs, want 1 (the listed origin's)", got)
	}
}
