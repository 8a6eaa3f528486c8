package gateway

import "time"

// clock is what the write spacing (Config.MinWriteInterval) reads time
// from and waits on: the real clock, or a test's.
type clock interface {
	Now() time.Time
	Sleep(d time.Duration)
}

type realClock struct{}

func (realClock) Now() time.Time        { return time.Now() }
func (realClock) Sleep(d time.Duration) { time.Sleep(d) }

// tooSoon reports whether a write now would come less than
// MinWriteInterval after last, the previous write.
func (g *Gateway) tooSoon(last time.Time) bool {
	iv := g.cfg.MinWriteInterval
	return iv > 0 && g.cfg.clock.Now().Sub(last) < iv
}

// spaceWrite waits until MinWriteInterval has passed since last, the
// previous write, so that what is queued meanwhile goes out in one write
// (see Config.MinWriteInterval).
func (g *Gateway) spaceWrite(last time.Time) {
	if d := g.cfg.MinWriteInterval - g.cfg.clock.Now().Sub(last); g.cfg.MinWriteInterval > 0 && d > 0 {
		g.cfg.clock.Sleep(d) // at most MaxWriteInterval
	}
}
