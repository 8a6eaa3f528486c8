package node

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/testsvc"
	"github.com/progressd/progressd/internal/webhook/webhooktest"
)

// TestWebhooksSurviveKill9: a `progressd serve` process is killed with
// SIGKILL while deliveries to a slow receiver are in flight (the receiver
// had them, had not answered, and so never counted them); a process
// started again on the same data directory sends every event, the ones
// that were in flight included: the receiver, deduplicating by id, ends
// with one of each, none lost.
func TestWebhooksSurviveKill9(t *testing.T) {
	args := []string{"--data-dir", t.TempDir()}
	killMidDelivery(t, 60*time.Second, func(rcvURL string) (first, again []string) {
		args = append(args, "--webhook-url", rcvURL, "--webhook-secret", webhookSecret)
		return args, args
	})
}

// TestWebhooksSurviveKill9TwoNodesOnPostgres: the same with two processes
// on one PostgreSQL: the first is killed, the second goes on. It sends
// what was never tried at once; the deliveries that died in flight were
// "running" on the dead node, and River's rescuer (on whichever node
// leads) puts them back after its minute, then they are retried.
func TestWebhooksSurviveKill9TwoNodesOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("about two minutes: the rescuer waits a minute")
	}
	db := testsvc.PostgresSchema(t)
	killMidDelivery(t, 4*time.Minute, func(rcvURL string) (first, again []string) {
		args := []string{"--db", db, "--webhook-url", rcvURL, "--webhook-secret", webhookSecret}
		startProc(t, args...) // the node that goes on
		return args, nil
	})
}

// killMidDelivery starts a process with the args nodes gives it (nodes
// may start others), records 100 terminal events while the receiver
// holds each try a second, kills the process with SIGKILL once 40 tries
// are in the receiver's hands, makes the receiver fast, starts a process
// with nodes' again args (unless nil), and waits up to within for every
// event to arrive.
func killMidDelivery(t *testing.T, within time.Duration, nodes func(rcvURL string) (first, again []string)) {
	rcv := webhooktest.NewReceiver(t, webhookSecret)
	var held atomic.Int64
	rcv.Hold(func(r *http.Request) {
		held.Add(1)
		select {
		case <-time.After(time.Second): // slow, but answers in time
		case <-r.Context().Done():
		}
	})
	first, again := nodes(rcv.URL)
	a := startProc(t, first...)
	c := client{t: t, base: a.url()}
	const jobs = 100
	want := map[string]bool{}
	for range jobs {
		s := create(t, c, `{"project":"p"}`)
		report(t, c, s.JobID, `{"state":"succeeded"}`)
		want[s.JobID] = true
	}
	testsvc.Eventually(t, 20*time.Second, "deliveries in flight", func() bool { return held.Load() >= 40 })
	a.kill(t)
	before, _ := rcv.Delivered()
	if len(before) >= jobs {
		t.Fatalf("all %d events were delivered before the kill; the test needs some in flight", len(before))
	}
	t.Logf("%d events delivered before the kill, %d tries had reached the receiver", len(before), held.Load())

	rcv.Hold(nil)
	if again != nil {
		startProc(t, again...)
	}
	events := rcv.WaitDelivered(t, jobs, within)
	for _, e := range events {
		if e.Type != "job.succeeded" || !want[e.Job.JobID] {
			t.Errorf("unexpected event %+v", e)
		}
		delete(want, e.Job.JobID)
	}
	if len(want) != 0 {
		t.Errorf("no event for %d jobs", len(want))
	}
}
