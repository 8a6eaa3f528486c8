package loadtest

import (
	"slices"
	"sync"
	"time"
)

// StalenessEvery is how often KeepCurrent samples every viewer.
const StalenessEvery = 10 * time.Millisecond

// staleSampler measures, every StalenessEvery, how far behind the newest
// report of one job each viewer is: what a person watching its bar would
// see, whatever the server did to get it there (every update, or some
// coalesced away).
type staleSampler struct {
	r    *run
	j    *job
	h    *Histogram
	quit chan struct{}
	done chan struct{}
	once sync.Once

	// The job's answered reports, sorted by seq, copied from the job as
	// their replies come: the sampler's own, so a round holds j.mu only to
	// copy what is new.
	seqs   []uint64
	sentAt []int64
	seen   int // how many of j.published are in seqs
}

// startStaleness starts sampling the clients of j; stop ends it.
func (r *run) startStaleness(j *job) *staleSampler {
	s := &staleSampler{r: r, j: j, h: NewHistogram(), quit: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *staleSampler) loop() {
	defer close(s.done)
	t := time.NewTicker(StalenessEvery)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.sample(time.Now().UnixNano())
		}
	}
}

// sample records, for each connected viewer still reading, 0 if it holds
// the newest answered report and otherwise the age of the oldest
// answered report newer than what it holds. A report counts once its
// reply is in (its seq is known only then), with its age from when it
// was sent: a sample taken while a reply is on its way understates by at
// most that round trip.
func (s *staleSampler) sample(now int64) {
	s.catchUp()
	if len(s.seqs) == 0 {
		return
	}
	for _, c := range s.r.clients {
		if !c.connected || c.job != s.j || c.exited.Load() {
			continue
		}
		held := c.maxSeq.Load()
		i, found := slices.BinarySearch(s.seqs, held)
		if found {
			i++
		}
		if i == len(s.seqs) {
			s.h.Record(0)
			continue
		}
		s.h.Record(time.Duration(max(now-s.sentAt[i], 0)))
	}
}

// catchUp copies the reports answered since the last round into seqs,
// keeping them sorted (replies come nearly in seq order, so an insert is
// near the end).
func (s *staleSampler) catchUp() {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	for _, seq := range s.j.published[s.seen:] {
		i, _ := slices.BinarySearch(s.seqs, seq)
		s.seqs = slices.Insert(s.seqs, i, seq)
		s.sentAt = slices.Insert(s.sentAt, i, s.j.sentAt[seq])
	}
	s.seen = len(s.j.published)
}

// stop ends the sampling and returns its figures; a nil sampler has none.
func (s *staleSampler) stop() LatencyStats {
	if s == nil {
		return LatencyStats{}
	}
	s.once.Do(func() { close(s.quit) })
	<-s.done
	return s.h.Stats()
}
