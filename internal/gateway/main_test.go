package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/jobs/jobstest"
	"github.com/progressd/progressd/internal/origin"
	"github.com/progressd/progressd/internal/progress"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "gateway-test-secret"

// env is one running gateway over the real job path: jobs.Service on the
// memory snapshot store, the local broker and SQLite behind WriteBehind.
type env struct {
	gw     *Gateway
	srv    *httptest.Server
	svc    *jobs.Service
	broker *broker.Local
	reg    *prometheus.Registry
	auth   *auth.Authenticator
}

type option func(*Config)

// singleUser turns auth off.
func singleUser(c *Config) { c.Auth = auth.New("") }

// allowOrigins lists origins besides the server's own.
func allowOrigins(list ...string) option {
	return func(c *Config) {
		p, err := origin.New(origin.Config{Listen: c.Origins.Addr(), Allowed: list})
		if err != nil {
			panic(err)
		}
		c.Origins = p
	}
}

// setup starts a gateway behind an httptest server. Cleanup shuts the
// gateway down before the server, then the stores.
func setup(t testing.TB, opts ...option) *env {
	t.Helper()
	path := jobstest.New(t, jobstest.Options{FlushInterval: 50 * time.Millisecond})
	e := &env{broker: path.Broker, svc: path.Jobs, reg: prometheus.NewRegistry()}
	// Bound first: the server's own origin comes from its address.
	e.srv = httptest.NewUnstartedServer(nil)
	t.Cleanup(e.srv.Close)
	own, err := origin.New(origin.Config{Listen: e.srv.Listener.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Broker:     e.broker,
		Jobs:       e.svc,
		Auth:       auth.New(testSecret),
		Origins:    own,
		Registerer: e.reg,
		Log:        slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.auth = cfg.Auth
	e.gw, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", e.gw.ServeWS)
	mux.HandleFunc("GET /api/v1/jobs/{id}/events", e.gw.ServeJobEvents)
	mux.HandleFunc("GET /api/v1/events", e.gw.ServeEvents)
	e.srv.Config.Handler = mux
	e.srv.Config.ConnContext = ConnContext // as package node wires it
	e.srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := e.gw.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// token mints a token for sub valid for ttl.
func (e *env) token(t testing.TB, sub string, admin bool, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, sub, admin, ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// createJob makes a job of owner in project, with no stages.
func (e *env) createJob(t testing.TB, owner, project string) progress.Snapshot {
	t.Helper()
	s, err := e.svc.Create(context.Background(), owner, jobs.CreateRequest{Project: project})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// report sets job id's progress, or its state when st is not "".
func (e *env) report(t testing.TB, id string, p float64, st progress.State) progress.Snapshot {
	t.Helper()
	r := progress.Report{Progress: &p}
	if st != "" {
		r = progress.Report{State: &st}
	}
	s, err := e.svc.Report(context.Background(), id, r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// frame is any server frame, decoded.
type frame struct {
	Type    string            `json:"type"`
	ID      json.RawMessage   `json:"id"`
	Error   *protoError       `json:"error"`
	Channel string            `json:"channel"`
	Job     progress.Snapshot `json:"job"`
	// A log frame's lines, and whether lines were dropped before them.
	Lines     []progress.LogLine `json:"lines"`
	Truncated bool               `json:"truncated"`
	Seq       uint64             `json:"seq"` // a report's reply
}

// client is a test WebSocket client. Updates read while waiting for a
// reply are kept for next.
type client struct {
	t      testing.TB
	ws     *websocket.Conn
	nextID atomic.Int64
	early  []frame
	// revoked holds the error frames (subscriptions the server ended)
	// read while waiting for a reply.
	revoked []frame
}

// dial connects with query appended to /ws, failing the test on error.
func (e *env) dial(t testing.TB, query string, h http.Header) *client {
	t.Helper()
	c, err := e.tryDial(t, query, h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) tryDial(t testing.TB, query string, h http.Header) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A Host in h is sent as the Host header, as a browser on that name would.
	ws, resp, err := websocket.Dial(ctx, e.wsURL(query), &websocket.DialOptions{HTTPHeader: h, Host: h.Get("Host")})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	ws.SetReadLimit(-1)
	c := &client{t: t, ws: ws}
	t.Cleanup(func() { ws.CloseNow() })
	return c, nil
}

// dialAs connects with a token for sub in the URL.
func (e *env) dialAs(t testing.TB, sub string) *client {
	t.Helper()
	return e.dial(t, "token="+url.QueryEscape(e.token(t, sub, false, time.Hour)), nil)
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next frame from the socket.
func (c *client) read() (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("bad frame %s: %w", b, err)
	}
	return f, nil
}

// next returns the next update.
func (c *client) next() frame {
	c.t.Helper()
	if len(c.early) > 0 {
		f := c.early[0]
		c.early = c.early[1:]
		return f
	}
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if f.Type == "update" {
			return f
		}
		c.t.Fatalf("unexpected frame %+v while waiting for an update", f)
	}
}

// call sends op with a fresh id and the fields of extra, and returns the
// reply; updates read before it are kept for next.
func (c *client) call(op string, extra map[string]any) frame {
	c.t.Helper()
	id := c.nextID.Add(1)
	m := map[string]any{"op": op, "id": id}
	for k, v := range extra {
		m[k] = v
	}
	c.send(m)
	return c.awaitReply(fmt.Sprint(id))
}

func (c *client) awaitReply(id string) frame {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("read while waiting for reply %s: %v", id, err)
		}
		switch {
		case f.Type == "update" || f.Type == "log":
			c.early = append(c.early, f)
		case f.Type == "error":
			c.revoked = append(c.revoked, f)
		case f.Type == "reply" && string(f.ID) == id:
			return f
		default:
			c.t.Fatalf("unexpected frame %+v while waiting for reply %s", f, id)
		}
	}
}

// subscribe subscribes to ch and fails the test unless it succeeds.
func (c *client) subscribe(ch string) {
	c.t.Helper()
	if r := c.call("subscribe", map[string]any{"channel": ch}); r.Error != nil {
		c.t.Fatalf("subscribe %s: %v", ch, r.Error)
	}
}

// expectError calls op and checks the reply's error code.
func (c *client) expectError(code, op string, extra map[string]any) {
	c.t.Helper()
	r := c.call(op, extra)
	if r.Error == nil || r.Error.Code != code {
		c.t.Fatalf("%s %v: reply %+v, want error %s", op, extra, r, code)
	}
}

// expectClose reads until the connection ends and checks its close code.
func (c *client) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	for {
		_, _, err := c.ws.Read(context.Background())
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != code {
			c.t.Fatalf("connection ended with %v (close status %d), want close status %d", err, got, code)
		}
		return
	}
}

// untilTerminal reads updates of job until its terminal snapshot and
// returns the last one.
func (c *client) untilTerminal(job string) frame {
	c.t.Helper()
	for {
		f := c.next()
		if f.Job.JobID == job && f.Job.State.Terminal() {
			return f
		}
	}
}

// value reads a counter or gauge series.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

var errAny = errors.New("injected failure")
