package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/node/nodetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopExampleNode() // the examples' server, shared by them all
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const quickPipelines = `
pipelines:
  quick:
    stages:
      - name: one
        run: ["sh", "-c", "echo 50%; sleep 0.1; echo 100%"]
      - name: two
        run: ["sh", "-c", "echo 1/2; sleep 0.1; echo 2/2"]
  slow:
    stages:
      - name: wait
        run: ["sh", "-c", "echo 10%; sleep 1.5; echo 100%"]
  forever:
    stages:
      - name: wait
        run: ["sleep", "300"]
`

func newClient(t *testing.T, url, token string) *client.Client {
	t.Helper()
	c, err := client.New(url, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestNewRejectsBadServers(t *testing.T) {
	for _, s := range []string{"127.0.0.1:8000", "ftp://x", "http://", "::"} {
		if _, err := client.New(s, ""); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	c, err := client.New("", "")
	if err != nil || c.Server() != client.DefaultServer {
		t.Fatalf("default server: %v %v", c, err)
	}
}

func TestWorkerJobOverHTTP(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines})
	c := newClient(t, s.URL, "")
	ctx := t.Context()

	w := 3.0
	job, err := c.Create(ctx, client.CreateRequest{Project: "p1", Stages: []client.StageSpec{{Name: "a"}, {Name: "b", Weight: &w}}})
	if err != nil {
		t.Fatal(err)
	}
	if job.State != client.Queued || job.Owner != "local" || len(job.Stages) != 2 {
		t.Fatalf("created %+v", job)
	}
	p := 0.5
	got, err := c.Report(ctx, job.JobID, client.Report{Stage: ptr("b"), Progress: &p, Message: ptr("halfway")})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != client.Running || got.Progress != 0.625 || got.Message != "halfway" {
		t.Fatalf("after report: %+v", got)
	}
	if again, err := c.Get(ctx, job.JobID); err != nil || again.Seq != got.Seq {
		t.Fatalf("get: %+v %v", again, err)
	}
	bad := 2.0
	if _, err := c.Report(ctx, job.JobID, client.Report{Progress: &bad}); apiCode(err) != "invalid_progress" {
		t.Fatalf("bad progress: %v", err)
	}
	if _, err := c.Cancel(ctx, job.JobID); err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	if _, err := c.Report(ctx, job.JobID, client.Report{Progress: &p}); !errors.As(err, &e) || e.Status != 409 || e.Code != "job_finished" {
		t.Fatalf("report after cancel: %v", err)
	}
	if _, err := c.Get(ctx, "no-such-job"); !client.IsNotFound(err) {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := c.Create(ctx, client.CreateRequest{Project: "p1", Pipeline: "nope"}); apiCode(err) != "unknown_pipeline" {
		t.Fatalf("unknown pipeline: %v", err)
	}

	page, err := c.List(ctx, client.ListOptions{Project: "p1", States: []client.State{client.Canceled}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Jobs) != 1 || page.Jobs[0].JobID != job.JobID || page.NextCursor != nil {
		t.Fatalf("list: %+v", page)
	}
}

func TestWatchFollowsAPipelineToTheEnd(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines})
	c := newClient(t, s.URL, "")
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p", Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	var seen []client.Snapshot
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	final, err := c.Watch(ctx, job.JobID, func(s client.Snapshot) { seen = append(seen, s) })
	if err != nil {
		t.Fatal(err)
	}
	if final.State != client.Succeeded || final.Progress != 1 {
		t.Fatalf("final %s at %v", final.State, final.Progress)
	}
	if len(seen) < 3 || seen[len(seen)-1].Seq != final.Seq {
		t.Fatalf("saw %d snapshots", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Seq <= seen[i-1].Seq || seen[i].Progress < seen[i-1].Progress {
			t.Fatalf("snapshot %d: seq %d after %d, progress %v after %v", i, seen[i].Seq, seen[i-1].Seq, seen[i].Progress, seen[i-1].Progress)
		}
	}

	// A finished job: Watch returns at once with it.
	again, err := c.Watch(ctx, job.JobID, nil)
	if err != nil || again.Seq != final.Seq {
		t.Fatalf("watch finished job: %v %v", again.Seq, err)
	}
}

func TestWatchErrors(t *testing.T) {
	t.Parallel()
	const secret = "test-secret-test-secret-test-secret"
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines, AuthSecret: secret})
	alice, err := auth.Mint(secret, "alice", false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := auth.Mint(secret, "bob", false, time.Hour, time.Now())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	job, err := newClient(t, s.URL, alice).Create(ctx, client.CreateRequest{Project: "p", Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, s.URL, "").Watch(ctx, job.JobID, nil); apiCode(err) != "unauthorized" {
		t.Errorf("no token: %v", err)
	}
	if _, err := newClient(t, s.URL, bob).Watch(ctx, job.JobID, nil); apiCode(err) != "forbidden" && apiCode(err) != "not_found" {
		t.Errorf("another user's job: %v", err)
	}
	if _, err := newClient(t, s.URL, alice).Watch(ctx, "no-such-job", nil); apiCode(err) != "not_found" {
		t.Errorf("unknown job: %v", err)
	}
	final, err := newClient(t, s.URL, alice).Watch(ctx, job.JobID, nil)
	if err != nil || final.State != client.Succeeded {
		t.Fatalf("owner: %s %v", final.State, err)
	}
	// Nothing listening: an error at once, not endless reconnecting.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := newClient(t, "http://"+addr, "").Watch(ctx, job.JobID, nil); err == nil || ctx.Err() != nil {
		t.Errorf("no server: %v", err)
	}
}

func TestWatchEndsWithItsContext(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines})
	c := newClient(t, s.URL, "")
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p", Pipeline: "forever"})
	if err != nil {
		t.Fatal(err)
	}
	// The context ends once the first snapshot is in (no wall-clock bound).
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	last, err := c.Watch(ctx, job.JobID, func(client.Snapshot) { cancel() })
	if !errors.Is(err, context.Canceled) || last.JobID != job.JobID {
		t.Fatalf("got %v, last %q", err, last.JobID)
	}
	if _, err := c.Cancel(t.Context(), job.JobID); err != nil {
		t.Fatal(err)
	}
}

func TestWatchWithoutWebSocketPolls(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines, NoWebSocket: true})
	c := newClient(t, s.URL, "")
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p", Pipeline: "quick"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	final, err := c.Watch(ctx, job.JobID, nil)
	if err != nil || final.State != client.Succeeded {
		t.Fatalf("got %s, %v", final.State, err)
	}
}

func TestWatchReconnects(t *testing.T) {
	t.Parallel()
	s, token := proxiedNode(t)
	p := newProxy(t, strings.TrimPrefix(s.URL, "http://"))
	c := newClient(t, "http://"+p.addr(), token)
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "p", Pipeline: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dropped := false
	final, err := c.Watch(ctx, job.JobID, func(s client.Snapshot) {
		if !dropped && s.Progress >= 0.1 {
			dropped = true
			p.dropAll() // the network fails under the open connection
		}
	})
	if err != nil || final.State != client.Succeeded {
		t.Fatalf("got %s, %v", final.State, err)
	}
	if !dropped || p.accepted() < 2 {
		t.Fatalf("dropped %v, %d connections: Watch did not reconnect", dropped, p.accepted())
	}
}

// proxiedNode starts a node for a test that reaches it through a proxy,
// and returns a token for it. Auth is on: a single-user node serves only
// its own Host (DNS rebinding), and the proxy is another address.
func proxiedNode(t *testing.T) (*nodetest.Server, string) {
	const secret = "test-secret-test-secret-test-secret"
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines, AuthSecret: secret})
	token, err := auth.Mint(secret, "alice", false, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s, token
}

// proxy forwards TCP connections to a backend and can cut them all.
type proxy struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	conns   []net.Conn
	n       int
	lose    int // connections whose answer is lost: cut as the server starts answering
	wg      sync.WaitGroup
}

// loseAnswers makes the next n connections lose their answer: the request
// reaches the server, and the connection is cut when the answer starts.
func (p *proxy) loseAnswers(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose = n
}

func newProxy(t *testing.T, backend string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.dropAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.backend)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.n++
		p.conns = append(p.conns, in, out)
		lose := p.lose > 0
		if lose {
			p.lose--
		}
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(out, in); out.Close() })
		if lose {
			p.wg.Go(func() {
				_, _ = out.Read(make([]byte, 1)) // the answer starts: the server has done the work
				in.Close()
				out.Close()
			})
			continue
		}
		p.wg.Go(func() { _, _ = io.Copy(in, out); in.Close() })
	}
}

func (p *proxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func ptr[T any](v T) *T { return &v }

// TestCreateResendsWithItsKey: the answer to a create is lost (the proxy
// lets the request through and cuts the connection as the answer starts);
// Create sends it again with the same Idempotency-Key and gets the one job
// the server made. A key of the caller's own holds across calls.
func TestCreateResendsWithItsKey(t *testing.T) {
	t.Parallel()
	s, token := proxiedNode(t)
	p := newProxy(t, strings.TrimPrefix(s.URL, "http://"))
	p.loseAnswers(1)
	c := newClient(t, "http://"+p.addr(), token)
	job, err := c.Create(t.Context(), client.CreateRequest{Project: "resend"})
	if err != nil {
		t.Fatalf("Create with its first answer lost: %v", err)
	}
	if p.accepted() < 2 {
		t.Fatalf("%d connections: the create was not sent again", p.accepted())
	}
	page, err := newClient(t, s.URL, token).List(t.Context(), client.ListOptions{Project: "resend"})
	if err != nil || len(page.Jobs) != 1 || page.Jobs[0].JobID != job.JobID {
		t.Fatalf("jobs made: %+v, %v; want only %s", page.Jobs, err, job.JobID)
	}

	req := client.CreateRequest{Project: "resend", IdempotencyKey: "order-7"}
	a, errA := c.Create(t.Context(), req)
	b, errB := c.Create(t.Context(), req)
	if errA != nil || errB != nil || a.JobID != b.JobID {
		t.Fatalf("one key twice: %s %v, %s %v", a.JobID, errA, b.JobID, errB)
	}
	req.Project = "other"
	var e *client.Error
	if _, err := c.Create(t.Context(), req); !errors.As(err, &e) || e.Status != 422 || e.Code != "idempotency_conflict" {
		t.Fatalf("the key with another body: %v", err)
	}
}

// TestBatchWithTheClient: a parent and its children through the client —
// create, report, list by parent and tag, the project list, and Watch of
// the parent to its end.
func TestBatchWithTheClient(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines})
	c := newClient(t, s.URL, "")
	ctx := t.Context()
	parent, err := c.Create(ctx, client.CreateRequest{Project: "imports", Name: "November", ExpectedChildren: 3, Tags: []string{"nov"}})
	if err != nil {
		t.Fatal(err)
	}
	two := 2.0
	var kids []client.Snapshot
	for range 3 {
		k, err := c.Create(ctx, client.CreateRequest{ParentID: parent.JobID, Weight: &two, Tags: []string{"nov"}})
		if err != nil {
			t.Fatal(err)
		}
		if k.Project != "imports" || k.ParentID != parent.JobID || k.Weight != 2 {
			t.Fatalf("child: %+v", k)
		}
		kids = append(kids, k)
	}
	if _, err := c.Create(ctx, client.CreateRequest{ParentID: "nope"}); apiCode(err) != "parent_not_found" || !client.IsNotFound(err) {
		t.Fatalf("unknown parent: %v", err)
	}
	done := make(chan client.Snapshot, 1)
	go func() {
		final, err := c.Watch(ctx, parent.JobID, func(client.Snapshot) {})
		if err != nil {
			t.Error(err)
		}
		done <- final
	}()
	for _, k := range kids {
		if _, err := c.Report(ctx, k.JobID, client.Report{State: ptr(client.Succeeded)}); err != nil {
			t.Fatal(err)
		}
	}
	final := <-done
	if final.State != client.Succeeded || *final.Children != (client.Children{Total: 3, Succeeded: 3}) {
		t.Fatalf("parent at the end: %s %+v", final.State, final.Children)
	}
	page, err := c.Children(ctx, parent.JobID, 2, "")
	if err != nil || len(page.Jobs) != 2 || page.NextCursor == nil {
		t.Fatalf("children page: %d %v", len(page.Jobs), err)
	}
	if page, err = c.List(ctx, client.ListOptions{Tag: "nov"}); err != nil || len(page.Jobs) != 4 {
		t.Fatalf("by tag: %d %v", len(page.Jobs), err)
	}
	projects, err := c.Projects(ctx, 10, "")
	if err != nil || len(projects.Projects) != 1 || projects.Projects[0].Jobs != (client.JobCounts{Succeeded: 4}) {
		t.Fatalf("projects: %+v %v", projects, err)
	}
}
