package progress

import (
	"math"
	"testing"
	"time"
)

// sim drives a job with no stages at a known pace and reports to it at a
// fixed interval, so the true remaining time is always known.
type sim struct {
	tb  testing.TB
	s   Snapshot
	at  time.Duration // since t0
	p   float64       // the true progress
	max float64       // the highest ETA seen, for stall tests
}

func newSim(tb testing.TB) *sim { return &sim{tb: tb, s: newJob(tb)} }

// run advances the job for d at rate (progress per second), reporting every
// interval, and returns the last snapshot.
func (m *sim) run(d time.Duration, rate float64, every time.Duration) Snapshot {
	m.tb.Helper()
	for end := m.at + d; m.at < end; {
		m.at += every
		m.p = math.Min(1, m.p+rate*every.Seconds())
		next, err := Apply(m.s, Report{Progress: fp(m.p)}, t0.Add(m.at))
		if err != nil {
			m.tb.Fatalf("at %v: %v", m.at, err)
		}
		if e := next.ETASeconds; e != nil {
			if !finite(*e) || *e < 0 {
				m.tb.Fatalf("at %v: eta %v", m.at, *e)
			}
			m.max = math.Max(m.max, *e)
		}
		m.s = next
	}
	return m.s
}

func eta(s Snapshot) float64 {
	if s.ETASeconds == nil {
		return math.NaN()
	}
	return *s.ETASeconds
}

func within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

func TestETANullUntilASample(t *testing.T) {
	t.Parallel()
	s := newJob(t)
	if s.ETASeconds != nil {
		t.Fatal("new job has an eta")
	}
	// The first report and every report within etaMinSample of it.
	for i, d := range []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, etaMinSample - time.Millisecond} {
		next, err := Apply(s, Report{Progress: fp(0.01 * float64(i+1))}, t0.Add(time.Second+d))
		if err != nil {
			t.Fatal(err)
		}
		if next.ETASeconds != nil {
			t.Errorf("report %d (%v after the first): eta %v before any sample", i, d, *next.ETASeconds)
		}
		s = next
	}
	s, err := Apply(s, Report{Progress: fp(0.1)}, t0.Add(time.Second+etaMinSample))
	if err != nil {
		t.Fatal(err)
	}
	if s.ETASeconds == nil {
		t.Fatalf("no eta once a sample spans %v", etaMinSample)
	}
	// From 0.01 to 0.1 in 0.2 s: 0.45/s, so 0.9 left takes 2 s.
	if got := *s.ETASeconds; !within(got, 2, 0.01) {
		t.Errorf("eta %v, want 2", got)
	}
}

func TestETANullWithoutProgress(t *testing.T) {
	t.Parallel()
	m := newSim(t)
	if s := m.run(30*time.Second, 0, time.Second); s.ETASeconds != nil {
		t.Errorf("eta %v for a job that never moved", *s.ETASeconds)
	}
}

func TestETASteadyRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rate  float64
		every time.Duration
		after time.Duration
	}{
		{"1% a second, reports every second", 0.01, time.Second, 30 * time.Second},
		{"1% a second, reports every 10ms", 0.01, 10 * time.Millisecond, 30 * time.Second},
		{"0.01% a second, reports every minute", 0.0001, time.Minute, 2 * time.Hour},
		{"20% a second, reports every 50ms", 0.2, 50 * time.Millisecond, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newSim(t)
			s := m.run(tc.after, tc.rate, tc.every)
			want := (1 - m.p) / tc.rate
			if got := eta(s); !within(got, want, 0.1) {
				t.Errorf("after %v at p=%.3f: eta %v, want %.1f ±10%%", tc.after, m.p, got, want)
			}
		})
	}
}

// TestETAFollowsSpeedChange checks the estimate follows the current pace
// within a few time constants, and so is better than extrapolating from the
// start (elapsed/progress), which is what a slow first stage breaks. A
// smoothed rate keeps e^(-t/τ) of the old pace: after a tenfold speed-up that
// is within 10% by 3τ, after a tenfold slow-down (old pace 10× the new one)
// by 5τ.
func TestETAFollowsSpeedChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		before, then float64
		first, after time.Duration
		every        time.Duration
	}{
		{"slow then fast", 0.002, 0.02, 50 * time.Second, 3 * etaTau, time.Second},
		{"fast then slow", 0.02, 0.002, 20 * time.Second, 5 * etaTau, time.Second},
		{"slow then fast, reports every 100ms", 0.002, 0.02, 50 * time.Second, 3 * etaTau, 100 * time.Millisecond},
		{"slow then fast, reports every 5s", 0.002, 0.02, 50 * time.Second, 3 * etaTau, 5 * time.Second},
		{"twice as fast", 0.005, 0.01, 40 * time.Second, 3 * etaTau, time.Second},
		{"half as fast", 0.01, 0.005, 40 * time.Second, 3 * etaTau, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newSim(t)
			m.run(tc.first, tc.before, tc.every)
			s := m.run(tc.after, tc.then, tc.every)
			want := (1 - m.p) / tc.then
			got := eta(s)
			if !within(got, want, 0.1) {
				t.Errorf("%v after the change at p=%.3f: eta %v, want %.1f ±10%%", tc.after, m.p, got, want)
			}
			elapsed := m.at.Seconds()
			naive := elapsed * (1 - m.p) / m.p
			if math.Abs(got-want) >= math.Abs(naive-want) {
				t.Errorf("eta %v is no better than linear extrapolation from the start (%v); true %v", got, naive, want)
			}
		})
	}
}

func TestETAStallGrows(t *testing.T) {
	t.Parallel()
	m := newSim(t)
	before := eta(m.run(20*time.Second, 0.01, time.Second))
	after := m.run(time.Minute, 0, time.Second)
	if after.ETASeconds != nil && *after.ETASeconds <= before {
		t.Errorf("eta %v after a minute without progress; was %v", *after.ETASeconds, before)
	}
}

// TestETABurst sends many reports within one millisecond (and one with a
// clock that went back) and checks the estimate stays a finite number or nil.
func TestETABurst(t *testing.T) {
	t.Parallel()
	for _, warm := range []bool{false, true} {
		m := newSim(t)
		if warm {
			m.run(5*time.Second, 0.01, time.Second)
		}
		s := m.s
		base := t0.Add(m.at + time.Second)
		for i := range 2000 {
			now := base.Add(time.Duration(i%1000) * time.Microsecond)
			if i == 1500 {
				now = base.Add(-time.Hour)
			}
			next, err := Apply(s, Report{Progress: fp(math.Min(1, m.p+float64(i)*1e-5))}, now)
			if err != nil {
				t.Fatal(err)
			}
			if e := next.ETASeconds; e != nil && (!finite(*e) || *e < 0) {
				t.Fatalf("warm %v, report %d: eta %v", warm, i, *e)
			}
			if r := next.Rate.PerSecond; !finite(r) || r < 0 {
				t.Fatalf("warm %v, report %d: rate %v", warm, i, r)
			}
			if !warm && next.ETASeconds != nil {
				t.Fatalf("report %d: eta %v from reports within a millisecond", i, *next.ETASeconds)
			}
			s = next
		}
	}
}

func TestETANullAtTerminal(t *testing.T) {
	t.Parallel()
	for _, final := range []Report{
		{State: stp(Succeeded)},
		{State: stp(Failed), Error: sp("x")},
		{State: stp(Canceled)},
	} {
		m := newSim(t)
		s := m.run(20*time.Second, 0.01, time.Second)
		if s.ETASeconds == nil {
			t.Fatal("no eta while running")
		}
		done, err := Apply(s, final, t0.Add(m.at+time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if done.ETASeconds != nil {
			t.Errorf("%s: eta %v", done.State, *done.ETASeconds)
		}
		if done.Rate != (Rate{}) {
			t.Errorf("%s: rate state %+v kept", done.State, done.Rate)
		}
	}
}

func TestETAAtFullProgressWhileRunning(t *testing.T) {
	t.Parallel()
	m := newSim(t)
	s := m.run(200*time.Second, 0.01, time.Second)
	if m.p != 1 || s.State != Running {
		t.Fatalf("p %v state %s", m.p, s.State)
	}
	if got := eta(s); got != 0 {
		t.Errorf("eta %v at progress 1, want 0", got)
	}
}

func TestRateETA(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    Rate
		p    float64
		want float64 // NaN: nil
	}{
		{"no samples", Rate{PerSecond: 1}, 0.5, math.NaN()},
		{"zero rate", Rate{Samples: 3}, 0.5, math.NaN()},
		{"negative rate", Rate{Samples: 3, PerSecond: -1}, 0.5, math.NaN()},
		{"NaN rate", Rate{Samples: 3, PerSecond: math.NaN()}, 0.5, math.NaN()},
		{"+Inf rate", Rate{Samples: 3, PerSecond: math.Inf(1)}, 0.5, 0},
		{"denormal rate", Rate{Samples: 3, PerSecond: 5e-324}, 0.5, math.NaN()},
		{"beyond the limit", Rate{Samples: 3, PerSecond: 1e-9}, 0, math.NaN()},
		{"rounded to a tenth", Rate{Samples: 3, PerSecond: 0.03}, 0.5, 16.7},
		{"done", Rate{Samples: 3, PerSecond: 0.03}, 1, 0},
	} {
		got := tc.r.eta(tc.p)
		switch {
		case math.IsNaN(tc.want) && got != nil:
			t.Errorf("%s: eta %v, want nil", tc.name, *got)
		case !math.IsNaN(tc.want) && (got == nil || *got != tc.want):
			t.Errorf("%s: eta %v, want %v", tc.name, got, tc.want)
		}
	}
}
