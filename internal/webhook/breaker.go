package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// A breaker per URL keeps a receiver that is down from costing one try per
// event: after a failed try, the URL's other deliveries are held until one
// probe gets through, and the probe runs on the retry schedule (10 s, then
// doubling up to 10 minutes). So a receiver down for an hour with 10,000
// events waiting sees about a dozen tries, not 10,000 × a dozen, and the
// database and the reports sharing it are spared the fetch and the update
// of every retry of every event.
//
// The breaker is River's own: each URL's deliveries are in a queue of
// their own (queueFor), and an open breaker is that queue paused
// (QueuePause). A pause is a row in the database, so it holds across
// restarts and, on PostgreSQL, for every node: none fetches the URL's
// deliveries while it is open. The probe is a River job of its own kind in
// ProbeQueue, never paused, unique per URL queue (so two nodes tripping
// together make one probe), retried by River on the schedule above.
//
// The invariant: a paused delivery queue has a probe waiting or running.
// trip pauses and inserts the probe in one transaction; the probe that
// gets through resumes the queue and marks itself completed in one
// transaction (River's JobCompleteTx), so no interleaving of the two on
// any node leaves a paused queue without a probe (a failed delivery that
// finds the probe running and the queue still paused needs no second one;
// if the probe's resume committed first, the queue is running again and
// the failure trips it anew). Start also gives every paused queue of its
// URLs a probe, in case one was lost some other way (a queue paused by
// hand, say).
//
// While a breaker is open nothing is given up by trying: each probe run
// first cancels the URL's deliveries older than GiveUpAfter (counted in
// progressd_webhook_given_up_total), so the 24 h per event holds.

// ProbeQueue is the River queue of the probes, one per URL whose breaker is
// open.
const ProbeQueue = "progressd_webhook_probe"

// probeKind is the River job kind of a probe.
const probeKind = "progressd_webhook_probe"

// pauseLag is how long after a pause River's producers may still fetch:
// in poll-only mode they read the queue's row every 2 s. For that long
// after a failed try, this node's deliveries of the URL are not tried but
// put back (holding).
const pauseLag = 2500 * time.Millisecond

// giveUpPage is how many deliveries a probe looks at at once when it
// cancels those waiting longer than GiveUpAfter.
const giveUpPage = 200

// queueFor names the River queue of url's deliveries: a hash, since River
// accepts only [a-z0-9_-] in queue names, and a URL may hold a secret that
// does not belong in a database column read by every operator.
func queueFor(url string) string {
	sum := sha256.Sum256([]byte(url))
	return "progressd_webhook_" + hex.EncodeToString(sum[:8])
}

// probeArgs are a probe's args: the delivery queue it is for.
type probeArgs struct {
	Queue string `json:"queue"`
}

func (probeArgs) Kind() string { return probeKind }

// prober runs probes (breaker.probe). Its Timeout and NextRetry also serve
// River's rescuer on whichever client leads (AddKind).
type prober struct {
	river.WorkerDefaults[probeArgs]
	w *worker
}

// Timeout bounds a probe: a try, and the database work around it.
func (p *prober) Timeout(*river.Job[probeArgs]) time.Duration {
	return p.w.cfg.Timeout + timeoutMargin + 30*time.Second
}

// NextRetry is the next step of the schedule: the probe was inserted one
// step after the failure that tripped the breaker, so attempt n waits
// step n+1.
func (p *prober) NextRetry(job *river.Job[probeArgs]) time.Time {
	return time.Now().Add(p.w.backoff(job.Attempt + 1))
}

func (p *prober) Work(ctx context.Context, job *river.Job[probeArgs]) error {
	if p.w.brk == nil {
		return errors.New("webhook probe on a node that does not deliver webhooks; it is retried")
	}
	return p.w.brk.probe(ctx, job)
}

// tx runs fn in a transaction of the queue's database and commits it.
func (q *Queue[TTx]) tx(ctx context.Context, fn func(TTx) error) error {
	d := q.client.Driver()
	etx, err := d.GetExecutor().Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = etx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(d.UnwrapTx(etx)); err != nil {
		return err
	}
	return etx.Commit(ctx)
}

// trip opens queue's breaker after a failed try: pauses the queue and
// queues its probe, one step of the schedule from now, unless the breaker
// is open already. An error here is logged, not returned: the failed
// delivery is retried on its own schedule either way.
func (q *Queue[TTx]) trip(ctx context.Context, queue string, cause error) {
	q.mu.Lock()
	q.failedAt[queue] = time.Now()
	q.mu.Unlock()
	ctx = context.WithoutCancel(ctx) // a stopping node still records the trip
	opened := false
	err := q.tx(ctx, func(tx TTx) error {
		row, err := q.client.QueueGetTx(ctx, tx, queue)
		if err != nil || row.PausedAt != nil {
			return err // open already: its probe exists
		}
		if err := q.client.QueuePauseTx(ctx, tx, queue, nil); err != nil {
			return err
		}
		if _, err := q.client.InsertTx(ctx, tx, probeArgs{Queue: queue}, q.probeOpts(q.w.backoff(1))); err != nil {
			return err
		}
		opened = true
		return nil
	})
	if err != nil {
		q.log.Error("webhook breaker could not open; the URL's deliveries are retried one by one meanwhile", "queue", queue, "err", err)
		return
	}
	if !opened {
		return
	}
	q.metrics.opened.Inc()
	q.log.Warn("webhook receiver failing: its other deliveries wait until a probe gets through",
		"url", q.urls[queue], "queue", queue, "err", cause)
}

func (q *Queue[TTx]) holding(queue string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	at, ok := q.failedAt[queue]
	return ok && time.Since(at) < pauseLag
}

// probeOpts queue a probe after wait, one per delivery queue at a time.
func (q *Queue[TTx]) probeOpts(wait time.Duration) *river.InsertOpts {
	return &river.InsertOpts{
		Queue:       ProbeQueue,
		MaxAttempts: maxAttempts,
		ScheduledAt: time.Now().Add(wait),
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			// River's default also counts a completed probe, which would
			// keep the breaker from ever probing again.
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// waitingDeliveries lists queue's deliveries not being tried.
func waitingDeliveries(queue string) *river.JobListParams {
	return river.NewJobListParams().Queues(queue).Kinds(kind).
		States(rivertype.JobStateAvailable, rivertype.JobStateRetryable, rivertype.JobStateScheduled).
		OrderBy(river.JobListOrderByID, river.SortOrderAsc)
}

// probe is a probe's run: give up what waited too long, then try one
// waiting delivery of the queue (each run the next one, so one event its
// receiver refuses cannot keep the breaker open). Received, or nothing
// left to try: the breaker closes. Not received: the error makes River
// retry the probe at the next step.
func (q *Queue[TTx]) probe(ctx context.Context, job *river.Job[probeArgs]) error {
	queue := job.Args.Queue
	if err := q.giveUpOld(ctx, queue); err != nil {
		return fmt.Errorf("webhook probe: give up old deliveries: %w", err)
	}
	d, err := q.nextToProbe(ctx, queue)
	if err != nil {
		return fmt.Errorf("webhook probe: %w", err)
	}
	if d != nil {
		var a deliveryArgs
		if err := json.Unmarshal(d.EncodedArgs, &a); err != nil {
			return fmt.Errorf("webhook probe: delivery %d: %w", d.ID, err)
		}
		if err := q.w.post(ctx, a); err != nil {
			if ctx.Err() != nil && !errors.Is(err, errTimeout) {
				return err // the node is stopping
			}
			q.w.failed(err)
			q.metrics.probes.WithLabelValues("failed").Inc()
			q.log.Info("webhook probe failed; the URL's deliveries keep waiting", "url", a.URL, "event", a.Event,
				"probe", job.Attempt, "next_in", q.w.backoff(job.Attempt+1).Round(time.Second), "err", err)
			return err
		}
		q.w.metrics.delivered.Inc()
		q.metrics.probes.WithLabelValues("ok").Inc()
	}
	err = q.tx(ctx, func(tx TTx) error {
		if d != nil {
			// Received: not to be sent again. Running means a node fetched
			// it meanwhile and sends it too: a duplicate, which receivers
			// drop by id.
			if _, err := q.client.JobDeleteTx(ctx, tx, d.ID); err != nil && !errors.Is(err, rivertype.ErrJobRunning) && !errors.Is(err, river.ErrNotFound) {
				return err
			}
		}
		if err := q.client.QueueResumeTx(ctx, tx, queue, nil); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[riverdriver.Driver[TTx]](ctx, tx, job)
		return err
	})
	if err != nil {
		return fmt.Errorf("webhook probe: close the breaker: %w", err)
	}
	q.mu.Lock()
	delete(q.failedAt, queue)
	q.mu.Unlock()
	q.log.Info("webhook receiver answers again: delivering what waited", "url", q.urls[queue], "queue", queue, "probes", job.Attempt)
	return nil
}

// nextToProbe is the waiting delivery of queue after the one this node
// probed last, wrapping around to the oldest; nil if none waits.
func (q *Queue[TTx]) nextToProbe(ctx context.Context, queue string) (*rivertype.JobRow, error) {
	q.mu.Lock()
	after := q.probed[queue]
	q.mu.Unlock()
	for _, p := range []*river.JobListParams{
		waitingDeliveries(queue).Where("id > @after", river.NamedArgs{"after": after}).First(1),
		waitingDeliveries(queue).First(1),
	} {
		res, err := q.client.JobList(ctx, p)
		if err != nil {
			return nil, err
		}
		if len(res.Jobs) > 0 {
			d := res.Jobs[0]
			q.mu.Lock()
			q.probed[queue] = d.ID
			q.mu.Unlock()
			return d, nil
		}
	}
	return nil, nil
}

// giveUpOld cancels queue's waiting deliveries older than GiveUpAfter:
// with the breaker open they are not tried, so nothing else would.
func (q *Queue[TTx]) giveUpOld(ctx context.Context, queue string) error {
	cutoff := time.Now().Add(-q.cfg.GiveUpAfter)
	n := 0
	defer func() {
		if n > 0 {
			q.log.Warn("webhook events given up: their receiver answered no probe for too long",
				"url", q.urls[queue], "events", n, "after", q.cfg.GiveUpAfter)
		}
	}()
	// By id, the order of recording: the oldest first. (Comparing
	// created_at in SQL would depend on how each driver writes times.)
	var after int64
	for {
		res, err := q.client.JobList(ctx, waitingDeliveries(queue).
			Where("id > @after", river.NamedArgs{"after": after}).First(giveUpPage))
		if err != nil {
			return err
		}
		for _, d := range res.Jobs {
			if d.CreatedAt.After(cutoff) {
				return nil
			}
			if _, err := q.client.JobCancel(ctx, d.ID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return err
			}
			q.w.metrics.gaveUp.Inc()
			n++
			after = d.ID
		}
		if len(res.Jobs) < giveUpPage {
			return nil
		}
	}
}

// reprobe gives each paused queue of this node's URLs a probe if it has
// none (the unique insert makes it a no-op otherwise), due now.
func (q *Queue[TTx]) reprobe(ctx context.Context) error {
	var errs []error
	for queue := range q.urls {
		row, err := q.client.QueueGet(ctx, queue)
		if errors.Is(err, river.ErrNotFound) || (err == nil && row.PausedAt == nil) {
			continue
		}
		if err == nil {
			_, err = q.client.Insert(ctx, probeArgs{Queue: queue}, q.probeOpts(0))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("queue %s: %w", queue, err))
		}
	}
	return errors.Join(errs...)
}
