package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/riverqueue/river"
)

// kind is the River job kind of a delivery. Deliveries are queued in one
// River queue per URL (queueFor), so that a URL's breaker can pause them.
const (
	kind = "progressd_webhook"
	// maxAttempts only backs up GiveUpAfter: at 10 minutes apart, 24 h
	// is about 150 tries. River keeps it in a smallint.
	maxAttempts = 10000
	// timeoutMargin is what River's own bound on a try adds to the
	// request's: the request ends first, and returns an error River
	// retries, unless the worker is stuck elsewhere.
	timeoutMargin = 5 * time.Second
	// drainLimit is how much of an answer's body is read, so the
	// connection can be used again; the rest is dropped with it.
	drainLimit = 64 << 10
)

// deliveryArgs are a River job's args: one event for one URL.
type deliveryArgs struct {
	Event string `json:"event"` // the event id, the same on every try
	Type  string `json:"type"`
	URL   string `json:"url"`
	// Body is the exact body to POST. A []byte is base64 in River's
	// JSON args: PostgreSQL's jsonb refuses a \u0000, which a snapshot's
	// message may hold.
	Body []byte `json:"body"`
}

func (deliveryArgs) Kind() string { return kind }

// worker delivers events. Its Timeout and NextRetry also serve River's
// rescuer, on whichever client leads (AddKind).
type worker struct {
	river.WorkerDefaults[deliveryArgs]
	cfg     Config
	client  *http.Client
	metrics *metrics
	log     *slog.Logger
	// brk opens a URL's breaker after a failed try; nil in the worker
	// AddKind registers, which never delivers.
	brk breaker
}

// breaker is what the workers need of the Queue's per-URL breakers
// (breaker.go).
type breaker interface {
	// trip holds the deliveries of queue until a probe succeeds.
	trip(ctx context.Context, queue string, cause error)
	// holding says a try of queue failed here so recently that River's
	// producer may not have seen the pause yet.
	holding(queue string) bool
	// probe tries one delivery of job's queue, and closes the breaker if
	// it is received.
	probe(ctx context.Context, job *river.Job[probeArgs]) error
}

func newWorker(cfg Config, m *metrics) *worker {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Workers
	return &worker{
		cfg: cfg,
		client: &http.Client{
			Transport: tr,
			Timeout:   cfg.Timeout,
			// A redirect is an answer that is not a 2xx: retried, never
			// followed (it could lead anywhere, another host included).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		metrics: m,
		log:     cfg.Log.With("component", "webhook"),
	}
}

// Timeout bounds a try for River: the request's own timeout and a margin.
func (w *worker) Timeout(*river.Job[deliveryArgs]) time.Duration {
	return w.cfg.Timeout + timeoutMargin
}

// NextRetry is when to try again after failed attempt job.Attempt.
func (w *worker) NextRetry(job *river.Job[deliveryArgs]) time.Time {
	return time.Now().Add(w.backoff(job.Attempt))
}

// backoff is the wait after failed attempt n (from 1): RetryBackoff
// doubled n-1 times, at most MaxRetryGap, less up to an eighth at random
// (never more: the first retry comes within RetryBackoff, and no two tries
// are further apart than MaxRetryGap).
func (w *worker) backoff(n int) time.Duration {
	d := w.cfg.RetryBackoff
	for i := 1; i < n && d < MaxRetryGap; i++ {
		d *= 2
	}
	d = min(d, MaxRetryGap)
	return d - rand.N(d/8+1)
}

// Work tries one delivery. A failure is retried (River calls NextRetry)
// until GiveUpAfter has passed since the event was recorded; then the
// event is given up: counted, logged, and cancelled in the queue.
func (w *worker) Work(ctx context.Context, job *river.Job[deliveryArgs]) error {
	a := job.Args
	if w.brk != nil && w.brk.holding(job.Queue) {
		// Fetched before the producer saw the breaker open: not tried,
		// and not counted as a try (a snooze keeps the attempt count).
		return river.JobSnooze(pauseLag)
	}
	err := w.post(ctx, a)
	if err == nil {
		w.metrics.delivered.Inc()
		return nil
	}
	if ctx.Err() != nil && !errors.Is(err, errTimeout) {
		return err // the node is stopping: tried again later, not a failure of the receiver
	}
	w.failed(err)
	if age := time.Since(job.CreatedAt); age >= w.cfg.GiveUpAfter {
		w.metrics.gaveUp.Inc()
		w.log.Warn("webhook event given up: no 2xx answer for too long",
			"event", a.Event, "type", a.Type, "url", a.URL, "tries", job.Attempt, "age", age.Round(time.Second), "err", err)
		return river.JobCancel(fmt.Errorf("gave up after %s: %w", age.Round(time.Second), err))
	}
	w.log.Debug("webhook delivery failed; will retry", "event", a.Event, "url", a.URL, "try", job.Attempt, "err", err)
	if w.brk != nil {
		w.brk.trip(ctx, job.Queue, err)
	}
	return err
}

// failed counts a failed try by its reason.
func (w *worker) failed(err error) {
	var f *failure
	if errors.As(err, &f) {
		w.metrics.failures.WithLabelValues(f.reason).Inc()
	}
}

// Reasons of failed tries, the label of progressd_webhook_failures_total.
const (
	reasonTimeout    = "timeout"
	reasonConnection = "connection"
	reasonRedirect   = "redirect"
	reasonStatus     = "status"
)

var reasons = []string{reasonTimeout, reasonConnection, reasonRedirect, reasonStatus}

// failure is a failed try and why, for the metric.
type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// errTimeout marks a try that took longer than Config.Timeout.
var errTimeout = errors.New("no answer in time")

// post sends a's body to a's URL, signed now, and returns nil for a 2xx.
func (w *worker) post(ctx context.Context, a deliveryArgs) error {
	ctx, cancel := context.WithTimeoutCause(ctx, w.cfg.Timeout, errTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(a.Body))
	if err != nil {
		return &failure{reasonConnection, fmt.Errorf("webhook %s: %w", a.URL, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "progressd-webhook")
	req.Header.Set(SignatureHeader, Sign(w.cfg.Secret, time.Now(), a.Body))
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return &failure{reasonTimeout, fmt.Errorf("webhook %s: %w within %s", a.URL, errTimeout, w.cfg.Timeout)}
		}
		return &failure{reasonConnection, fmt.Errorf("webhook %s: %w", a.URL, err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code >= 300 && code < 400:
		return &failure{reasonRedirect, fmt.Errorf("webhook %s answered %s to %q: redirects are not followed; set --webhook-url to the final address",
			a.URL, resp.Status, resp.Header.Get("Location"))}
	default:
		return &failure{reasonStatus, fmt.Errorf("webhook %s answered %s", a.URL, resp.Status)}
	}
}
