package node

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
	"github.com/progressd/progressd/internal/webhook/webhooktest"
)

const webhookSecret = "0123456789abcdef-node-test"

// withWebhooks sends a node's events to rcv with short waits, after mod.
func withWebhooks(rcv *webhooktest.Receiver, mod func(*Config)) func(*Config) {
	return func(c *Config) {
		if mod != nil {
			mod(c)
		}
		c.WebhookURLs, c.WebhookSecret = []string{rcv.URL}, webhookSecret
		c.WebhookRetryBackoff, c.WebhookPollInterval = 100*time.Millisecond, 50*time.Millisecond
	}
}

// TestWebhooksSurviveARestart: events queued while the receiver is down
// are in the node's SQLite file: a node started again on it delivers
// them, each with the id it had before, and /metrics counts it.
func TestWebhooksSurviveARestart(t *testing.T) {
	rcv := webhooktest.NewReceiver(t, webhookSecret)
	rcv.SetStatus(http.StatusServiceUnavailable)
	dir := t.TempDir()
	a := startNode(t, dir, withWebhooks(rcv, nil))
	c := client{t: t, base: a.URL()}
	ok := create(t, c, `{"project":"p"}`)
	report(t, c, ok.JobID, `{"state":"succeeded"}`)
	bad := create(t, c, `{"project":"p"}`)
	report(t, c, bad.JobID, `{"state":"failed","error":"boom"}`)
	before := rcv.WaitTries(t, 2, 20*time.Second)
	stopNode(t, a)

	rcv.SetStatus(http.StatusOK)
	b := startNode(t, dir, withWebhooks(rcv, nil))
	events := rcv.WaitDelivered(t, 2, 20*time.Second)
	types := map[string]string{}
	for _, e := range events {
		types[e.Job.JobID] = e.Type
	}
	if types[ok.JobID] != "job.succeeded" || types[bad.JobID] != "job.failed" || len(events) != 2 {
		t.Fatalf("delivered after the restart: %+v", events)
	}
	ids := map[string]bool{events[0].ID: true, events[1].ID: true}
	for _, try := range before {
		if !ids[try.Event.ID] {
			t.Errorf("a try before the restart had event id %s, not among the ones delivered after it %v", try.Event.ID, ids)
		}
	}
	cb := client{t: t, base: b.URL()}
	testsvc.Eventually(t, 10*time.Second, "/metrics to count 2 deliveries and an empty queue", func() bool {
		return metric(cb, "progressd_webhook_deliveries_total") == "progressd_webhook_deliveries_total 2" &&
			metric(cb, "progressd_webhook_queue") == "progressd_webhook_queue 0"
	})
	if line := metric(cb, `progressd_webhook_failures_total{reason="timeout"}`); line == "" {
		t.Errorf("/metrics lacks the failures series")
	}
}

// TestWebhookCancelOfAParent: a parent canceled with its children sends
// one job.canceled event per job, each once.
func TestWebhookCancelOfAParent(t *testing.T) {
	rcv := webhooktest.NewReceiver(t, webhookSecret)
	n := startNode(t, "", withWebhooks(rcv, nil))
	c := client{t: t, base: n.URL()}
	parent := create(t, c, `{"project":"p"}`)
	child := create(t, c, map[string]any{"project": "p", "parent_id": parent.JobID})
	if r := c.do("POST", "/api/v1/jobs/"+parent.JobID+"/cancel", nil); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	events := rcv.WaitDelivered(t, 2, 20*time.Second)
	got := map[string]progress.State{}
	for _, e := range events {
		if e.Type != "job.canceled" {
			t.Errorf("event %s for %s, want job.canceled", e.Type, e.Job.JobID)
		}
		got[e.Job.JobID] = e.Job.State
	}
	if got[parent.JobID] != progress.Canceled || got[child.JobID] != progress.Canceled {
		t.Fatalf("events: %+v", events)
	}
	testsvc.Eventually(t, 10*time.Second, "an empty webhook queue", func() bool {
		return metric(c, "progressd_webhook_queue") == "progressd_webhook_queue 0"
	})
	if _, dups := rcv.Delivered(); dups != 0 || len(rcv.Tries()) != 2 {
		t.Fatalf("%d tries, %d duplicates for two cancels", len(rcv.Tries()), dups)
	}
}

// TestWebhooksTwoNodesOnPostgres: events queued on PostgreSQL are the
// nodes' together: while the receiver is down, node a records them and
// both nodes try them; a stops with them queued; the receiver comes back,
// and b delivers every one, once.
func TestWebhooksTwoNodesOnPostgres(t *testing.T) {
	rcv := webhooktest.NewReceiver(t, webhookSecret)
	rcv.SetStatus(http.StatusServiceUnavailable)
	shared := scaleOut(t)
	a := startNode(t, "", withWebhooks(rcv, shared))
	b := startNode(t, "", withWebhooks(rcv, shared))
	ca := client{t: t, base: a.URL()}
	const jobs = 4
	want := map[string]bool{}
	for range jobs {
		s := create(t, ca, `{"project":"p"}`)
		report(t, ca, s.JobID, `{"state":"succeeded"}`)
		want[s.JobID] = true
	}
	rcv.WaitTries(t, jobs, 20*time.Second)
	stopNode(t, a)

	rcv.SetStatus(http.StatusOK)
	events := rcv.WaitDelivered(t, jobs, 30*time.Second)
	for _, e := range events {
		if !want[e.Job.JobID] || e.Type != "job.succeeded" {
			t.Errorf("unexpected event %+v", e)
		}
		delete(want, e.Job.JobID)
	}
	if len(want) != 0 {
		t.Fatalf("no event for %v", want)
	}
	if _, dups := rcv.Delivered(); dups != 0 {
		t.Errorf("%d events delivered twice", dups)
	}
	cb := client{t: t, base: b.URL()}
	testsvc.Eventually(t, 10*time.Second, "node b to count the deliveries", func() bool {
		return strings.HasSuffix(metric(cb, "progressd_webhook_deliveries_total"), " 4")
	})
}

// TestWebhookStalls: a running job silent for stall_after_seconds sends
// one job.stalled event carrying its stalled snapshot; its next report
// clears the stall (no event), and a second stall sends a second event.
func TestWebhookStalls(t *testing.T) {
	rcv := webhooktest.NewReceiver(t, webhookSecret)
	n := startNode(t, "", withWebhooks(rcv, fastLapses))
	c := client{t: t, base: n.URL()}
	s := create(t, c, `{"project":"p","stall_after_seconds":0.3}`)
	report(t, c, s.JobID, `{"progress":0.25}`)
	first := rcv.WaitDelivered(t, 1, 20*time.Second)[0]
	if first.Type != "job.stalled" || !first.Job.Stalled || first.Job.JobID != s.JobID || first.Job.Progress != 0.25 {
		t.Fatalf("first event %+v", first)
	}
	if after := report(t, c, s.JobID, `{"progress":0.5}`); after.Stalled {
		t.Fatalf("a report did not clear the stall: %+v", after)
	}
	events := rcv.WaitDelivered(t, 2, 20*time.Second)
	if second := events[1]; second.Type != "job.stalled" || second.ID == first.ID || second.Job.Progress != 0.5 {
		t.Fatalf("second event %+v (first %s)", second, first.ID)
	}
	report(t, c, s.JobID, `{"state":"succeeded"}`)
	events = rcv.WaitDelivered(t, 3, 20*time.Second)
	if events[2].Type != "job.succeeded" {
		t.Fatalf("third event %+v", events[2])
	}
	testsvc.Eventually(t, 10*time.Second, "an empty webhook queue", func() bool {
		return metric(c, "progressd_webhook_queue") == "progressd_webhook_queue 0"
	})
	if len(rcv.Tries()) != 3 {
		t.Fatalf("%d tries for 3 events", len(rcv.Tries()))
	}
}

// TestWebhookStallAgainBeforeTheFlush: a stall, a report that clears it,
// and a second stall, all well within one write-behind flush interval:
// the clearing report is written durably at once (as a state change is),
// so the durable record sees the second stall begin and it sends its own
// event. Once with the report alone, once in a batch.
func TestWebhookStallAgainBeforeTheFlush(t *testing.T) {
	for _, tc := range []struct {
		name  string
		clear func(c client, id string)
	}{
		{"report", func(c client, id string) { report(t, c, id, `{"progress":0.5}`) }},
		{"batch", func(c client, id string) {
			if res := postBatch(t, c, map[string]any{"reports": []any{map[string]any{"job_id": id, "progress": 0.5}}}); res[0].Error != nil {
				t.Fatalf("batch report refused: %+v", res[0].Error)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := webhooktest.NewReceiver(t, webhookSecret)
			n := startNode(t, "", withWebhooks(rcv, func(c *Config) {
				fastLapses(c)
				c.FlushInterval = time.Minute // no flush during the test
			}))
			c := client{t: t, base: n.URL()}
			s := create(t, c, `{"project":"p","stall_after_seconds":0.3}`)
			report(t, c, s.JobID, `{"state":"running","progress":0.25}`) // a state move: durable at once
			first := rcv.WaitDelivered(t, 1, 20*time.Second)[0]
			if first.Type != "job.stalled" {
				t.Fatalf("first event %+v", first)
			}
			tc.clear(c, s.JobID)
			events := rcv.WaitDelivered(t, 2, 20*time.Second)
			if second := events[1]; second.Type != "job.stalled" || second.ID == first.ID || second.Job.Progress != 0.5 {
				t.Fatalf("second event %+v (first %s)", second, first.ID)
			}
		})
	}
}

// TestWebhookBreakerTwoNodesOnPostgres: two nodes share the deliveries of
// a receiver that is down. The breaker is in the database: once a try
// failed, neither node tries the other events, and the one probe (unique
// per URL, whichever node runs it) tries once per step — so the receiver
// sees the tries in flight when it failed and then about one per step,
// not one per event. Then it comes back, node a stops, and every event
// arrives exactly once.
func TestWebhookBreakerTwoNodesOnPostgres(t *testing.T) {
	rcv := webhooktest.NewReceiver(t, webhookSecret)
	rcv.SetStatus(http.StatusServiceUnavailable)
	shared := scaleOut(t)
	a := startNode(t, "", withWebhooks(rcv, shared))
	b := startNode(t, "", withWebhooks(rcv, shared))
	ca, cb := client{t: t, base: a.URL()}, client{t: t, base: b.URL()}
	const jobs = 300
	for i := range jobs {
		c := []client{ca, cb}[i%2]
		s := create(t, c, `{"project":"p"}`)
		report(t, c, s.JobID, `{"state":"succeeded"}`)
	}
	probes := func() int {
		return metricInt(ca, `progressd_webhook_probes_total{result="failed"}`) + metricInt(cb, `progressd_webhook_probes_total{result="failed"}`)
	}
	testsvc.Eventually(t, 60*time.Second, "3 failed probes", func() bool { return probes() >= 3 })
	tries, p := len(rcv.Tries()), probes()
	// At most a fetch of 32 in flight on each node when the first try
	// failed, and as many again fetched before a producer saw the pause;
	// then one try per probe (one more may be under way).
	if limit := 4*32 + p + 1; tries > limit {
		t.Errorf("%d tries for %d events after %d failed probes: want ≤ %d", tries, jobs, p, limit)
	}
	if open := metric(cb, "progressd_webhook_breakers_open"); open != "progressd_webhook_breakers_open 1" {
		t.Errorf("node b: %q, want 1 open", open)
	}

	rcv.SetStatus(http.StatusOK)
	stopNode(t, a)
	events := rcv.WaitDelivered(t, jobs, 60*time.Second)
	if _, dups := rcv.Delivered(); dups != 0 || len(events) != jobs {
		t.Errorf("%d events, %d duplicates: want each of %d exactly once", len(events), dups, jobs)
	}
	testsvc.Eventually(t, 20*time.Second, "an empty queue and a closed breaker", func() bool {
		return metric(cb, "progressd_webhook_queue") == "progressd_webhook_queue 0" &&
			metric(cb, "progressd_webhook_breakers_open") == "progressd_webhook_breakers_open 0"
	})
}

// metricInt is the value of series on c's /metrics, 0 if absent.
func metricInt(c client, series string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(metric(c, series), series+" "))
	return n
}
