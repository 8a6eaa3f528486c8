package loadtest

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// job is one job of a run: its seq before the run, and the seqs the run's
// reports produced (from the HTTP replies).
type job struct {
	id      string
	channel string // "job:" + id
	// base is the job's seq when it was created; snapshots at or below it
	// are the initial state, not deliveries.
	base uint64

	mu        sync.Mutex
	published []uint64         // seqs of the run's reports, final included; sorted by seqs()
	sentAt    map[uint64]int64 // seq → when its report was sent, unix nanos
	// final is the seq of the final (`succeeded`) report once its reply
	// has arrived; 0 before.
	final atomic.Uint64
	logs  logLines // Logs
}

func newJob(id string, base uint64) *job {
	return &job{id: id, channel: "job:" + id, base: base}
}

// addPublished records the seq a report sent at sentAt produced.
func (j *job) addPublished(seq uint64, sentAt int64) {
	j.mu.Lock()
	j.published = append(j.published, seq)
	if j.sentAt == nil {
		j.sentAt = make(map[uint64]int64)
	}
	j.sentAt[seq] = sentAt
	j.mu.Unlock()
}

// sentTimes returns the send time of every published seq. Call it once
// publishing is over.
func (j *job) sentTimes() map[uint64]int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.sentAt
}

// delivery is one update a client received that was newer than all it
// had: its seq and when it arrived (unix nanos).
type delivery struct {
	seq uint64
	at  int64
}

// maxLoggedDeliveries bounds the deliveries a run keeps for the "update
// or newer" latency (16 bytes each), shared out among its clients: past a
// client's share that latency is not measured. It is well above the
// standard scenarios (2M).
const maxLoggedDeliveries = 8_000_000

// recordFreshness adds to h, for each published seq the client has (it
// or a newer one), how long after its report was sent the client first
// held it or a newer snapshot: the latency a progress bar shows, counting
// coalesced updates by the delivery that replaced them. published is
// sorted; log is in arrival order, so its seqs rise.
func recordFreshness(published []uint64, sentAt map[uint64]int64, log []delivery, h *Histogram) {
	i := 0
	for _, seq := range published {
		for i < len(log) && log[i].seq < seq {
			i++
		}
		if i == len(log) {
			return // this seq and the rest are lost
		}
		if sent, ok := sentAt[seq]; ok {
			h.Record(time.Duration(log[i].at - sent))
		}
	}
}

// seqs returns the published seqs, sorted. Call it once publishing is over.
func (j *job) seqs() []uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	slices.Sort(j.published)
	j.published = slices.Compact(j.published)
	return j.published
}

// receipt is what a client saw of its job, enough to account for every
// published seq without keeping the seqs it received.
type receipt struct {
	// received counts snapshots above the job's base that were newer than
	// everything the client had (the server never repeats or reorders them
	// for one client, so each is a different seq).
	received uint64
	// maxSeq is the highest seq received.
	maxSeq uint64
}

// tally is the fate of a job's published seqs on one client: delivered +
// coalesced + lost is the number published.
type tally struct {
	delivered uint64 // received
	coalesced uint64 // not received, but a newer snapshot was
	lost      uint64 // neither it nor anything newer received
	// unexpected counts received snapshots no report of the run produced
	// (another writer changed the job, or a report's reply was lost).
	unexpected uint64
	gotFinal   bool
}

// account says what became of each seq in published (sorted and
// deduplicated; final is the last one's seq, 0 if the final report
// failed) on a client with receipt r.
//
// A seq at or below r.maxSeq that the client did not receive was
// superseded: SPEC.md lets the server replace an unsent older snapshot by
// a newer one, so it is coalesced, not lost. A seq above r.maxSeq is lost.
func account(published []uint64, final uint64, r receipt) tally {
	upTo := uint64(countAtMost(published, r.maxSeq))
	delivered := min(r.received, upTo)
	return tally{
		delivered:  delivered,
		coalesced:  upTo - delivered,
		lost:       uint64(len(published)) - upTo,
		unexpected: r.received - delivered,
		gotFinal:   final != 0 && r.maxSeq >= final,
	}
}

// countAtMost is how many of the sorted seqs are ≤ v.
func countAtMost(seqs []uint64, v uint64) int {
	n, found := slices.BinarySearch(seqs, v)
	if found {
		n++
	}
	return n
}
