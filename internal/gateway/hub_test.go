package gateway

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

func testSubscriber(t testing.TB, m *metrics, p auth.Principal) *subscriber {
	t.Helper()
	s := newSubscriber(transportWS, newQueue(DefaultMaxQueuedFrames, DefaultMaxQueuedBytes), m)
	s.wake, s.overflow = func(bool) bool { return false }, func() {}
	s.principal.Store(&p)
	return s
}

func testMetrics(t testing.TB) *metrics {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func update(id, project, owner string, seq uint64, st progress.State) broker.Update {
	s := progress.Snapshot{JobID: id, Project: project, Owner: owner, Seq: seq, State: st, Stages: []progress.Stage{}}
	data, _ := json.Marshal(s)
	return broker.Update{Snapshot: s, Data: data}
}

func TestHubDeliversPerChannelWithVisibility(t *testing.T) {
	t.Parallel()
	m := testMetrics(t)
	h := newHub(m)
	alice := testSubscriber(t, m, auth.Principal{Subject: "alice"})
	bob := testSubscriber(t, m, auth.Principal{Subject: "bob"})
	admin := testSubscriber(t, m, auth.Principal{Subject: "root", Admin: true})
	for _, s := range []*subscriber{alice, bob, admin} {
		h.subscribe("project:p", s)
	}
	h.subscribe("job:j1", alice)
	h.subscribe("user:alice", alice)

	h.publish(update("j1", "p", "alice", 1, progress.Running))

	got := func(s *subscriber) []string {
		var out []string
		for _, m := range s.take(nil) {
			var f frame
			if err := json.Unmarshal(m.frame, &f); err != nil {
				t.Fatalf("frame %s: %v", m.frame, err)
			}
			out = append(out, f.Channel)
		}
		return out
	}
	if g := fmt.Sprint(got(alice)); g != "[job:j1 project:p user:alice]" {
		t.Errorf("alice got %s, want one update per channel", g)
	}
	if g := got(bob); len(g) != 0 {
		t.Errorf("bob got %v of alice's job on project:p", g)
	}
	if g := fmt.Sprint(got(admin)); g != "[project:p]" {
		t.Errorf("admin got %s, want [project:p]", g)
	}
}

func TestHubEncodesOncePerChannel(t *testing.T) {
	t.Parallel()
	m := testMetrics(t)
	h := newHub(m)
	subs := make([]*subscriber, 10)
	for i := range subs {
		subs[i] = testSubscriber(t, m, auth.Principal{Subject: "alice"})
		h.subscribe("job:j1", subs[i])
	}
	h.publish(update("j1", "p", "alice", 1, progress.Running))
	first := subs[0].take(nil)[0]
	for _, s := range subs[1:] {
		if got := s.take(nil)[0]; got != first {
			t.Fatal("subscribers of one channel got different encodings of one update")
		}
	}
	want := `{"type":"update","channel":"job:j1","job":` + string(update("j1", "p", "alice", 1, progress.Running).Data) + `}`
	if string(first.frame) != want {
		t.Fatalf("frame %s, want %s", first.frame, want)
	}
}

// TestHubEncodesWhatThePublisherLeft: an update published without Data
// (jobs.Service leaves the encoding to the in-process broker's receiver)
// reaches every channel's subscribers as the snapshot's JSON, the same
// bytes a publisher would have encoded; a job no one watches is not
// encoded at all.
func TestHubEncodesWhatThePublisherLeft(t *testing.T) { // not parallel: AllocsPerRun
	m := testMetrics(t)
	h := newHub(m)
	alice := testSubscriber(t, m, auth.Principal{Subject: "alice"})
	h.subscribe("job:j1", alice)
	h.subscribe("user:alice", alice)
	u := update("j1", "p", "alice", 1, progress.Running)
	h.publish(broker.Update{Snapshot: u.Snapshot})
	got := alice.take(nil)
	if len(got) != 2 {
		t.Fatalf("%d frames, want one per channel", len(got))
	}
	for i, ch := range []string{"job:j1", "user:alice"} {
		want := `{"type":"update","channel":"` + ch + `","job":` + string(u.Data) + `}`
		if string(got[i].frame) != want {
			t.Fatalf("frame %s, want %s", got[i].frame, want)
		}
	}
	unwatched := update("j2", "p", "bob", 1, progress.Running).Snapshot
	if n := testing.AllocsPerRun(100, func() { h.publish(broker.Update{Snapshot: unwatched}) }); n > 0 {
		t.Fatalf("%v allocations to publish a job no one watches, want none", n)
	}
}

// TestHubIndexConsistency subscribes, unsubscribes and closes from many
// goroutines while others publish, then checks that the channel →
// subscribers index and every subscriber's channel set agree.
func TestHubIndexConsistency(t *testing.T) {
	t.Parallel()
	m := testMetrics(t)
	h := newHub(m)
	const (
		owners   = 16
		perOwner = 8
		rounds   = 2000
	)
	channels := make([]string, 40)
	for i := range channels {
		channels[i] = fmt.Sprintf("project:p%d", i)
	}
	subs := make([]*subscriber, owners*perOwner)
	for i := range subs {
		subs[i] = testSubscriber(t, m, auth.Principal{Subject: "u", Admin: true})
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range 4 {
		wg.Go(func() {
			for seq := uint64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				h.publish(update(fmt.Sprint("j", p), fmt.Sprint("p", seq%40), "u", seq, progress.Running))
			}
		})
	}
	var owned sync.WaitGroup
	for o := range owners {
		owned.Go(func() {
			r := rand.New(rand.NewPCG(uint64(o), 1))
			mine := subs[o*perOwner : (o+1)*perOwner]
			for range rounds {
				s := mine[r.IntN(len(mine))]
				ch := channels[r.IntN(len(channels))]
				switch r.IntN(10) {
				case 0:
					s.take(nil)
				case 1, 2, 3, 4:
					h.unsubscribe(ch, s)
				default:
					h.subscribe(ch, s)
				}
			}
		})
	}
	// Close some subscribers from yet other goroutines, racing the owners.
	for i := 0; i < len(subs); i += 7 {
		wg.Go(func() { h.close(subs[i]) })
	}
	owned.Wait()
	close(stop)
	wg.Wait()

	total := 0
	for i := range h.shards {
		sh := &h.shards[i]
		for ch, set := range sh.channels {
			if len(set) == 0 {
				t.Errorf("channel %s has an empty set left in the index", ch)
			}
			for s := range set {
				if _, ok := s.channels[ch]; !ok {
					t.Errorf("index has a subscriber in %s that does not list it", ch)
				}
			}
			total += len(set)
		}
	}
	listed := 0
	for i, s := range subs {
		if i%7 == 0 && s.channels != nil {
			t.Errorf("closed subscriber %d still has channels", i)
		}
		for ch := range s.channels {
			listed++
			if _, ok := h.shard(ch).channels[ch][s]; !ok {
				t.Errorf("subscriber %d lists %s but the index lacks it", i, ch)
			}
		}
	}
	if total != listed {
		t.Errorf("index holds %d subscriptions, subscribers list %d", total, listed)
	}
	if g := value(m.subscriptions); int(g) != total {
		t.Errorf("subscriptions gauge %v, index holds %d", g, total)
	}
	for _, s := range subs {
		h.close(s)
	}
	if g := value(m.subscriptions); g != 0 {
		t.Errorf("subscriptions gauge %v after closing everyone", g)
	}
}

// TestHubNoDeliveryAfterUnsubscribe checks that once unsubscribe returns
// nothing of the channel is queued, with a publisher running.
func TestHubNoDeliveryAfterUnsubscribe(t *testing.T) {
	t.Parallel()
	m := testMetrics(t)
	h := newHub(m)
	s := testSubscriber(t, m, auth.Principal{Subject: "alice"})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for seq := uint64(1); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			h.publish(update("j1", "p", "alice", seq, progress.Running))
		}
	})
	for range 500 {
		h.subscribe("job:j1", s)
		h.unsubscribe("job:j1", s)
		if got := s.take(nil); len(got) != 0 {
			close(stop)
			wg.Wait()
			t.Fatalf("%d updates queued after unsubscribe", len(got))
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkHubPublish1000Subscribers(b *testing.B) {
	m := testMetrics(b)
	h := newHub(m)
	subs := make([]*subscriber, 1000)
	for i := range subs {
		subs[i] = testSubscriber(b, m, auth.Principal{Subject: "alice"})
		h.subscribe("job:j1", subs[i])
	}
	bufs := make([][]*message, len(subs))
	u := update("j1", "p", "alice", 0, progress.Running)
	u.Data = make([]byte, 300) // a typical snapshot's size
	b.ReportAllocs()
	for b.Loop() {
		u.Snapshot.Seq++
		h.publish(u)
		if u.Snapshot.Seq%16 == 0 {
			for i, s := range subs {
				bufs[i] = s.take(bufs[i]) // the writers keep up now and then
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/delivery")
}
