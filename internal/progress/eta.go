package progress

import (
	"math"
	"time"
)

// Rate is the ETA estimator's state: an exponentially weighted moving
// average of progress per second. Naive linear extrapolation (elapsed /
// progress) is wrong whenever speed changes — a slow fetch stage followed by
// a fast encode stage would predict hours; the EWMA forgets old speeds with a
// time constant of etaTau, so the estimate follows the job's current pace.
type Rate struct {
	PerSecond      float64 `json:"per_second"`      // smoothed progress per second
	Samples        int     `json:"samples"`         // samples taken; 0 = no estimate yet
	SampleAt       Time    `json:"sample_at"`       // when the last sample was taken
	SampleProgress float64 `json:"sample_progress"` // overall progress at SampleAt
}

const (
	// etaTau is the smoothing time constant: a change of pace is mostly
	// reflected in the estimate after this long.
	etaTau = 10 * time.Second
	// etaMinSample is the shortest interval one sample spans. Reports can
	// arrive a thousand times a second; sampling each would make the rate
	// pure noise, so reports closer than this accumulate into one sample.
	etaMinSample = 200 * time.Millisecond
	// etaMaxSeconds is the longest ETA reported; beyond it, "unknown" is
	// the more honest answer.
	etaMaxSeconds = 30 * 24 * 3600
)

// observe returns the estimator after seeing overall progress p at now.
func (r Rate) observe(p float64, now Time) Rate {
	if r.SampleAt.IsZero() {
		return Rate{SampleAt: now, SampleProgress: p}
	}
	dt := now.Sub(r.SampleAt.Time)
	if dt < etaMinSample {
		return r
	}
	inst := math.Max(0, (p-r.SampleProgress)/dt.Seconds())
	next := Rate{Samples: r.Samples + 1, SampleAt: now, SampleProgress: p}
	if r.Samples == 0 {
		next.PerSecond = inst
	} else {
		alpha := 1 - math.Exp(-float64(dt)/float64(etaTau))
		next.PerSecond = alpha*inst + (1-alpha)*r.PerSecond
	}
	return next
}

// eta returns the seconds left at progress p, or nil while unknown.
func (r Rate) eta(p float64) *float64 {
	if r.Samples == 0 || r.PerSecond <= 0 {
		return nil
	}
	s := (1 - p) / r.PerSecond
	if s > etaMaxSeconds || math.IsNaN(s) {
		return nil
	}
	s = math.Round(s*10) / 10
	return &s
}
