package webhook_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/testsvc"
	"github.com/progressd/progressd/internal/webhook"
	"github.com/progressd/progressd/internal/webhook/webhooktest"
)

const secret = "0123456789abcdef-test-secret"

// bundle is a SQLite job store whose changes are queued for delivery to a
// test receiver, as a node wires them.
type bundle struct {
	db  *sqlite.Store
	q   *webhook.Queue[*sql.Tx]
	rcv *webhooktest.Receiver
	reg *prometheus.Registry
}

// setup opens the store and the queue (short waits unless cfg says
// otherwise) and starts delivering; everything stops when t ends.
func setup(t *testing.T, cfg webhook.Config) *bundle {
	t.Helper()
	b := &bundle{rcv: webhooktest.NewReceiver(t, secret), reg: prometheus.NewRegistry()}
	ctx := t.Context()
	var err error
	path := filepath.Join(t.TempDir(), "progressd.db")
	if b.db, err = sqlite.Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.db.Close() })
	if cfg.URLs == nil {
		cfg.URLs = []string{b.rcv.URL}
	}
	cfg.Secret = secret
	cfg.Registerer = b.reg
	if os.Getenv("WEBHOOK_TEST_LOG") != "" {
		cfg.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.RetryBackoff = cmpOr(cfg.RetryBackoff, 50*time.Millisecond)
	cfg.PollInterval = cmpOr(cfg.PollInterval, 20*time.Millisecond)
	if b.q, err = webhook.OpenSQLite(ctx, cfg, b.db.DB()); err != nil {
		t.Fatal(err)
	}
	b.db.SetOnChange(b.q.Record)
	t.Cleanup(func() {
		if t.Failed() {
			b.dumpQueue(t)
		}
	})
	if err := b.q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.q.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return b
}

// dumpQueue logs River's rows, to see why a test failed.
func (b *bundle) dumpQueue(t *testing.T) {
	rows, err := b.db.DB().Query(`SELECT id, kind, queue, state, scheduled_at, attempt FROM river_job
		UNION ALL SELECT 0, 'queue', name, coalesce(paused_at, 'running'), '', 0 FROM river_queue`)
	if err != nil {
		t.Log(err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var id, attempt int
		var kind, queue, state, at string
		_ = rows.Scan(&id, &kind, &queue, &state, &at, &attempt)
		t.Logf("river: %d %s %s %s %s attempt %d", id, kind, queue, state, at, attempt)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// finish creates a running job and saves it in state, as a report would;
// it returns the terminal snapshot.
func (b *bundle) finish(t *testing.T, state progress.State, r progress.Report) progress.Snapshot {
	t.Helper()
	s, err := progress.New(progress.NewJob{ID: uuid.Must(uuid.NewV7()).String(), Project: "p", Owner: "alice"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	r.State = &state
	end, err := progress.Apply(s, r, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Save(t.Context(), []progress.Snapshot{end}); err != nil {
		t.Fatal(err)
	}
	return end
}

func ptr[T any](v T) *T { return &v }

// TestSignature: the header is t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">
// and verifies as README.md says to check it; a body changed by one byte,
// another secret, or a t older than 5 minutes does not.
func TestSignature(t *testing.T) {
	body := []byte(`{"id":"e1","type":"job.succeeded","job":{"job_id":"j1"}}`)
	now := time.Unix(1_750_000_000, 0)
	h := webhook.Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1750000000,v1=") || len(h) != len("t=1750000000,v1=")+64 {
		t.Fatalf("header %q: want t=1750000000,v1=<64 hex digits>", h)
	}
	if !webhooktest.Verify(secret, h, body, now.Add(time.Minute)) {
		t.Fatalf("a signed body does not verify: %q", h)
	}
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = 'X'
	for name, ok := range map[string]bool{
		"tampered body": webhooktest.Verify(secret, h, tampered, now),
		"other secret":  webhooktest.Verify(secret+"x", h, body, now),
		"stale t":       webhooktest.Verify(secret, h, body, now.Add(6*time.Minute)),
	} {
		if ok {
			t.Errorf("%s verifies", name)
		}
	}
}

// TestEventsCarryTheSnapshot: a job that succeeds, fails or is canceled
// sends one event of its type holding the job's terminal snapshot, signed.
func TestEventsCarryTheSnapshot(t *testing.T) {
	b := setup(t, webhook.Config{})
	ok := b.finish(t, progress.Succeeded, progress.Report{Result: []byte(`{"rows":3}`)})
	bad := b.finish(t, progress.Failed, progress.Report{Error: ptr("disk full")})
	gone := b.finish(t, progress.Canceled, progress.Report{})

	events := b.rcv.WaitDelivered(t, 3, 20*time.Second)
	byJob := map[string]webhooktest.Event{}
	for _, e := range events {
		byJob[e.Job.JobID] = e
		if _, err := uuid.Parse(e.ID); err != nil {
			t.Errorf("event id %q is not a UUID", e.ID)
		}
	}
	for _, want := range []struct {
		snap progress.Snapshot
		typ  string
	}{{ok, webhook.TypeSucceeded}, {bad, webhook.TypeFailed}, {gone, webhook.TypeCanceled}} {
		e, found := byJob[want.snap.JobID]
		switch {
		case !found:
			t.Errorf("no event for the %s job", want.snap.State)
		case e.Type != want.typ || e.Job.State != want.snap.State || e.Job.Seq != want.snap.Seq || e.Job.FinishedAt == nil:
			t.Errorf("event for the %s job: type %s, job %+v", want.snap.State, e.Type, e.Job)
		}
	}
	if string(byJob[ok.JobID].Job.Result) != `{"rows":3}` || *byJob[bad.JobID].Job.Error != "disk full" {
		t.Errorf("snapshots in the events lack result or error: %+v", events)
	}
	for _, try := range b.rcv.Tries() {
		if !try.Valid {
			t.Errorf("a try with a bad signature: %+v", try)
		}
	}
	if got := metric(t, b.reg, "progressd_webhook_deliveries_total", ""); got != 3 {
		t.Errorf("progressd_webhook_deliveries_total = %v, want 3", got)
	}
}

// TestReceiverDownThenUp: a receiver answering 503 gets the event again,
// with the same id and a fresh signature each time, until it answers 200;
// then the queue is empty and each failure was counted.
func TestReceiverDownThenUp(t *testing.T) {
	b := setup(t, webhook.Config{})
	b.rcv.SetStatus(http.StatusServiceUnavailable)
	end := b.finish(t, progress.Succeeded, progress.Report{})
	b.rcv.WaitTries(t, 3, 20*time.Second)
	b.rcv.SetStatus(http.StatusOK)
	ev := b.rcv.WaitDelivered(t, 1, 20*time.Second)
	if ev[0].Job.JobID != end.JobID {
		t.Fatalf("delivered %+v", ev[0])
	}
	tries := b.rcv.Tries()
	for _, try := range tries {
		if try.Event.ID != ev[0].ID || !try.Valid {
			t.Errorf("try %+v: want event id %s on every try, each signed", try, ev[0].ID)
		}
	}
	if failed := metric(t, b.reg, "progressd_webhook_failures_total", "status"); int(failed) < len(tries)-1 || failed < 3 {
		t.Errorf("failures{reason=status} = %v after %d tries", failed, len(tries))
	}
	waitQueue(t, b.reg, 0)
}

// TestRedirectIsNotFollowed: a receiver answering 301 to another host is
// retried, never followed; the other host hears nothing.
func TestRedirectIsNotFollowed(t *testing.T) {
	other := webhooktest.NewReceiver(t, secret)
	var redirected atomic.Int64
	to := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, to, http.StatusMovedPermanently)
	}))
	defer srv.Close()
	b := setup(t, webhook.Config{URLs: []string{srv.URL + "/hooks"}})
	b.finish(t, progress.Succeeded, progress.Report{})
	waitMetric(t, b.reg, "progressd_webhook_failures_total", "redirect", 3)
	if n := len(other.Tries()); n != 0 || redirected.Load() < 3 {
		t.Fatalf("the redirect target got %d requests (want 0); the receiver %d (want ≥ 3)", n, redirected.Load())
	}
	if got := metric(t, b.reg, "progressd_webhook_deliveries_total", ""); got != 0 {
		t.Errorf("a 301 counted as a delivery: %v", got)
	}
}

// TestTimeout: a receiver that never answers is given up on after the
// try's timeout, counted as a timeout, and retried.
func TestTimeout(t *testing.T) {
	b := setup(t, webhook.Config{Timeout: 200 * time.Millisecond})
	var held atomic.Int64
	b.rcv.Hold(func(r *http.Request) {
		held.Add(1)
		<-r.Context().Done() // never answers: only the sender ends the try
	})
	b.finish(t, progress.Succeeded, progress.Report{})
	waitMetric(t, b.reg, "progressd_webhook_failures_total", "timeout", 2)
	if held.Load() < 2 {
		t.Errorf("%d tries reached the receiver, want ≥ 2", held.Load())
	}
	if webhook.DefaultTimeout != 10*time.Second {
		t.Errorf("DefaultTimeout = %s, SPEC says 10 s", webhook.DefaultTimeout)
	}
}

// TestSlowAnswerInTime: a 200 that comes late but within the timeout is a
// delivery, tried once.
func TestSlowAnswerInTime(t *testing.T) {
	b := setup(t, webhook.Config{Timeout: 2 * time.Second})
	b.rcv.Hold(func(r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	})
	b.finish(t, progress.Succeeded, progress.Report{})
	b.rcv.WaitDelivered(t, 1, 20*time.Second)
	if n := len(b.rcv.Tries()); n != 1 {
		t.Errorf("%d tries, want 1", n)
	}
	if got := metric(t, b.reg, "progressd_webhook_failures_total", "timeout"); got != 0 {
		t.Errorf("failures{reason=timeout} = %v, want 0", got)
	}
}

// TestRecordedInTheWriteTransaction: the event is queued in the
// transaction of the terminal write: when queuing fails, the write is
// rolled back too, and a job that was already terminal makes no second
// event.
func TestRecordedInTheWriteTransaction(t *testing.T) {
	b := setup(t, webhook.Config{})
	fail := errors.New("queue refused")
	b.db.SetOnChange(func(ctx context.Context, tx *sql.Tx, ch []store.Change) error { return fail })
	s, err := progress.New(progress.NewJob{ID: uuid.Must(uuid.NewV7()).String(), Project: "p", Owner: "alice"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.db.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	end, _ := progress.Apply(s, progress.Report{State: ptr(progress.Succeeded)}, time.Now())
	if err := b.db.Save(t.Context(), []progress.Snapshot{end}); !errors.Is(err, fail) {
		t.Fatalf("Save with a failing OnChange: %v, want %v", err, fail)
	}
	if got, _ := b.db.Get(t.Context(), s.JobID); got.State.Terminal() {
		t.Fatalf("the terminal state was written without its event: %+v", got)
	}
	b.db.SetOnChange(b.q.Record)
	if err := b.db.Save(t.Context(), []progress.Snapshot{end}); err != nil {
		t.Fatal(err)
	}
	later := end.Clone()
	later.Seq++
	if err := b.db.Save(t.Context(), []progress.Snapshot{later}); err != nil {
		t.Fatal(err)
	}
	b.rcv.WaitDelivered(t, 1, 20*time.Second)
	waitQueue(t, b.reg, 0)
	if n := len(b.rcv.Tries()); n != 1 {
		t.Errorf("%d tries for one terminal transition written twice, want 1", n)
	}
}

// TestReportsDoNotWaitForReceivers: with both receivers holding every
// request open, terminal writes still return at once — the write path only
// inserts the events — and each event waits in the queue, one delivery per
// URL, until the receivers answer.
func TestReportsDoNotWaitForReceivers(t *testing.T) {
	second := webhooktest.NewReceiver(t, secret)
	release := make(chan struct{})
	hold := func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	first := webhooktest.NewReceiver(t, secret)
	b := setup(t, webhook.Config{URLs: []string{first.URL, second.URL}, Timeout: time.Minute})
	first.Hold(hold)
	second.Hold(hold)
	const jobs = 5
	for range jobs {
		b.finish(t, progress.Succeeded, progress.Report{})
	}
	if got := metric(t, b.reg, "progressd_webhook_queue", ""); got != 2*jobs {
		t.Fatalf("progressd_webhook_queue = %v after %d terminal writes to 2 URLs, want %d", got, jobs, 2*jobs)
	}
	close(release)
	for _, r := range []*webhooktest.Receiver{first, second} {
		r.WaitDelivered(t, jobs, 20*time.Second)
	}
	waitQueue(t, b.reg, 0)
}

// metric reads one series of reg: the counter or gauge name, with a label
// of value label if it is not "" (reason=…, result=…).
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetValue() == label
			}) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s{…=%q}", name, label)
	return 0
}

func waitMetric(t *testing.T, reg *prometheus.Registry, name, reason string, atLeast float64) {
	t.Helper()
	testsvc.Eventually(t, 20*time.Second, fmt.Sprintf("%s{reason=%q} ≥ %v", name, reason, atLeast), func() bool {
		return metric(t, reg, name, reason) >= atLeast
	})
}

func waitQueue(t *testing.T, reg *prometheus.Registry, n float64) {
	t.Helper()
	testsvc.Eventually(t, 20*time.Second, fmt.Sprintf("progressd_webhook_queue = %v", n), func() bool {
		return metric(t, reg, "progressd_webhook_queue", "") == n
	})
}

// TestBreakerHoldsADownReceiver: with the receiver down, N events cost the
// tries in flight when the first one failed and then one try per step of
// the retry schedule (the probes), not a try per event per step; the
// breaker shows in /metrics. When the receiver is back, the next probe
// gets through and every event is delivered, each exactly once.
func TestBreakerHoldsADownReceiver(t *testing.T) {
	const workers, events = 4, 60
	b := setup(t, webhook.Config{Workers: workers, RetryBackoff: 200 * time.Millisecond})
	b.rcv.SetStatus(http.StatusServiceUnavailable)
	for range events {
		b.finish(t, progress.Succeeded, progress.Report{})
	}
	waitMetric(t, b.reg, "progressd_webhook_probes_total", "failed", 3)
	if got := metric(t, b.reg, "progressd_webhook_breakers_open", ""); got != 1 {
		t.Errorf("progressd_webhook_breakers_open = %v while the receiver is down, want 1", got)
	}
	probes := metric(t, b.reg, "progressd_webhook_probes_total", "failed")
	tries := len(b.rcv.Tries())
	// Before the pause reaches the producer, the deliveries it fetched are
	// tried: at most two fetches of `workers`. Every later try is a probe
	// (one more may be under way as the metric is read).
	if limit := 2*workers + int(probes) + 1; tries > limit {
		t.Errorf("%d tries for %d events after %v failed probes: want ≤ %d (one per probe, not one per event)", tries, events, probes, limit)
	}
	if opened := metric(t, b.reg, "progressd_webhook_breaker_opened_total", ""); opened != 1 {
		t.Errorf("progressd_webhook_breaker_opened_total = %v, want 1", opened)
	}

	b.rcv.SetStatus(http.StatusOK)
	b.rcv.WaitDelivered(t, events, 30*time.Second)
	waitQueue(t, b.reg, 0)
	if _, dups := b.rcv.Delivered(); dups != 0 {
		t.Errorf("%d events delivered twice", dups)
	}
	if got := metric(t, b.reg, "progressd_webhook_breakers_open", ""); got != 0 {
		t.Errorf("progressd_webhook_breakers_open = %v after the receiver came back, want 0", got)
	}
	if ok := metric(t, b.reg, "progressd_webhook_probes_total", "ok"); ok != 1 {
		t.Errorf("progressd_webhook_probes_total{result=ok} = %v, want 1", ok)
	}
	if got := metric(t, b.reg, "progressd_webhook_deliveries_total", ""); got != events {
		t.Errorf("progressd_webhook_deliveries_total = %v, want %d", got, events)
	}

	// Down again: the breaker opens again, and probes again (a probe
	// that completed must not count as one still there).
	b.rcv.SetStatus(http.StatusServiceUnavailable)
	for range events {
		b.finish(t, progress.Succeeded, progress.Report{})
	}
	waitMetric(t, b.reg, "progressd_webhook_probes_total", "failed", probes+2)
	b.rcv.SetStatus(http.StatusOK)
	b.rcv.WaitDelivered(t, 2*events, 30*time.Second)
	waitQueue(t, b.reg, 0)
	if opened := metric(t, b.reg, "progressd_webhook_breaker_opened_total", ""); opened != 2 {
		t.Errorf("progressd_webhook_breaker_opened_total = %v after two outages, want 2", opened)
	}
	if _, dups := b.rcv.Delivered(); dups != 0 {
		t.Errorf("%d events delivered twice", dups)
	}
}

// TestBreakerGivesUpOldEvents: while the breaker holds a URL's events,
// none is tried, yet each is still given up GiveUpAfter after it was
// recorded (the probe cancels them, counted); with nothing left, the
// breaker closes.
func TestBreakerGivesUpOldEvents(t *testing.T) {
	const events = 10
	b := setup(t, webhook.Config{GiveUpAfter: time.Second, RetryBackoff: 200 * time.Millisecond})
	b.rcv.SetStatus(http.StatusServiceUnavailable)
	for range events {
		b.finish(t, progress.Succeeded, progress.Report{})
	}
	waitMetric(t, b.reg, "progressd_webhook_given_up_total", "", events)
	waitQueue(t, b.reg, 0)
	testsvc.Eventually(t, 20*time.Second, "the breaker to close", func() bool {
		return metric(t, b.reg, "progressd_webhook_breakers_open", "") == 0
	})
	if got := metric(t, b.reg, "progressd_webhook_given_up_total", ""); got != events {
		t.Errorf("progressd_webhook_given_up_total = %v, want %d", got, events)
	}
	if ev, _ := b.rcv.Delivered(); len(ev) != 0 {
		t.Errorf("%d events delivered by a receiver answering 503", len(ev))
	}
}
