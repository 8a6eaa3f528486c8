package progress

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzApply applies sequences of reports to a job and checks the invariants
// of the contract after every one. The reports come from two sources: data
// holds JSON reports, one a line, as an HTTP body or a command would send
// them; ops builds reports from the float arguments, which JSON cannot carry
// when they are NaN or ±Inf. The first op byte picks the job: stages a, b
// and c with weights 1, w, 8 or 1, w, w (1, 1, 8 when New refuses w), or no
// stages.
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"progress":0.5}`+"\n"+`{"stage":"b","current":1,"total":2}`+"\n"+`{"state":"succeeded"}`),
		0.5, 1.0, 2.0, 1.0, []byte{0, 0, 1, 0, 2, 0})
	f.Add([]byte(`{"stage":"c","progress":0.25,"message":"m"}`+"\n"+`{"error":"boom"}`+"\n"+`{"progress":1}`),
		0.1, 3.0, 2.0, 8.0, []byte{0, 0, 4, 0, 0})
	f.Add([]byte(`{"stage":"c","progress":0.5}`), 0.5, 0.0, 0.0, 1.5e308, []byte{0x40, 0})
	f.Add([]byte(`{"current":5,"total":10}`+"\n"+`{"total":4}`+"\n"+`{"state":"queued"}`+"\n"+`{"state":"canceled"}`),
		math.NaN(), math.Inf(1), -1.0, 0.0, []byte{0x80, 0, 0, 0, 0, 0xff})
	f.Add([]byte(`{"stage":"a","progress":1.5}`+"\n"+`{"stage":"zz"}`+"\n"+`{"message":"\ud800"}`),
		1.0, 0.0, 0.0, 1e308, []byte{1, 0x11, 0x23, 0x35, 0x47, 0x59, 0x6b, 0x7d, 0x8f, 0x91})
	f.Add([]byte(`{"progress":0.1}`), 0.9, 7.0, 9.0, 1.5e308, []byte{3, 0x13, 0x27, 0x3b, 0x4f, 0xe3, 0xf7})
	f.Fuzz(func(t *testing.T, data []byte, p, cur, tot, w float64, ops []byte) {
		if len(ops) == 0 || len(ops) > 200 {
			return
		}
		var stages []StageSpec
		if ops[0]&0x80 == 0 {
			stages = []StageSpec{st("a"), ws("b", w), ws("c", 8)}
			if ops[0]&0x40 != 0 {
				stages[2] = ws("c", w)
			}
			if _, err := New(NewJob{ID: "j", Project: "p", Owner: "o", Stages: stages}, t0); err != nil {
				checkCode(t, err, CodeInvalidJob)
				stages[1], stages[2] = st("b"), ws("c", 8)
			}
		}
		s, err := New(NewJob{ID: "j", Project: "p", Owner: "o", Stages: stages}, t0)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		checkSnapshot(t, s)

		lines := bytes.Split(data, []byte("\n"))
		now := t0
		for i, op := range ops[1:] {
			var r Report
			if op&3 == 0 && len(lines) > 0 {
				line := lines[0]
				lines = lines[1:]
				if json.Unmarshal(line, &r) != nil {
					continue
				}
			} else {
				r = opReport(op, i, p, cur, tot, data)
			}
			// Mostly forwards, sometimes the same millisecond, now and then
			// backwards (another node's clock).
			switch op >> 6 {
			case 0:
				now = now.Add(time.Duration(op) * 37 * time.Millisecond)
			case 1:
				now = now.Add(time.Duration(op&7) * time.Microsecond)
			case 2:
				now = now.Add(time.Duration(op) * 3 * time.Second)
			case 3:
				now = now.Add(-time.Duration(op) * time.Millisecond)
			}
			s = checkApply(t, s, r, now)
		}
	})
}

// opReport builds a report from one op byte and the fuzzed values.
func opReport(op byte, i int, p, cur, tot float64, data []byte) Report {
	var r Report
	switch op >> 2 & 3 {
	case 1:
		r.Progress = fp(p)
	case 2:
		r.Progress = fp(float64(op) / 255)
	case 3:
		r.Progress = fp(p * float64(i) / 10)
	}
	switch op >> 4 & 3 {
	case 1:
		r.Current = fp(cur)
	case 2:
		r.Current, r.Total = fp(cur+float64(i)), fp(tot)
	case 3:
		r.Total = fp(tot)
	}
	switch op % 7 {
	case 1:
		r.Stage = sp("a")
	case 2:
		r.Stage = sp("b")
	case 3:
		r.Stage = sp("c")
	case 4:
		r.Stage = sp(string(data))
	}
	switch op % 11 {
	case 1:
		r.State = stp(Succeeded)
	case 2:
		r.State = stp(Failed)
	case 3:
		r.State = stp(Canceled)
	case 4:
		r.State = stp(Running)
	case 5:
		r.State = stp(Queued)
	case 6:
		r.State = stp(State(data))
	}
	switch op % 13 {
	case 1:
		r.Message = sp(string(data))
	case 2:
		r.Error = sp(string(data))
	case 3:
		r.Message = sp(strings.Repeat("é", int(op)*5))
	}
	return r
}

var codes = map[string]bool{
	CodeInvalidProgress: true, CodeInvalidCount: true, CodeUnknownStage: true, CodeInvalidState: true,
	CodeJobFinished: true, CodeInvalidJob: true, CodeInvalidMessage: true,
}

// checkApply applies r to prev and checks every invariant the contract
// promises between prev and the result, then returns the snapshot to go on
// with.
func checkApply(t *testing.T, prev Snapshot, r Report, now time.Time) Snapshot {
	t.Helper()
	keep := prev.Clone()
	next, err := Apply(prev, r, now)
	if !reflect.DeepEqual(prev, keep) {
		t.Fatalf("%s modified prev:\n now %s\nwas %s", reportString(r), summary(prev), summary(keep))
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || !codes[e.Code] || e.Message == "" {
			t.Fatalf("%s: error %v (%T) is not a *Error with a known code", reportString(r), err, err)
		}
		if prev.State.Terminal() && !errors.Is(err, ErrJobFinished) {
			t.Fatalf("%s on a %s job: %v, want ErrJobFinished", reportString(r), prev.State, err)
		}
		if !reflect.DeepEqual(next, keep) {
			t.Fatalf("%s: rejected, but returned %s instead of prev %s", reportString(r), summary(next), summary(keep))
		}
		return prev
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nprev %s\nnext %s\n"+format, append([]any{reportString(r), summary(prev), summary(next)}, args...)...)
	}
	if prev.State.Terminal() {
		fail("a %s job accepted a report", prev.State)
	}
	if next.Seq != prev.Seq+1 {
		fail("seq %d after %d", next.Seq, prev.Seq)
	}
	if next.Progress < prev.Progress {
		fail("progress went down from %v to %v", prev.Progress, next.Progress)
	}
	if len(next.Stages) != len(prev.Stages) {
		fail("%d stages, was %d", len(next.Stages), len(prev.Stages))
	}
	for i := range next.Stages {
		a, b := prev.Stages[i], next.Stages[i]
		if a.Name != b.Name || a.Weight != b.Weight {
			fail("stage %d changed from %+v to %+v", i, a, b)
		}
		if b.Progress < a.Progress {
			fail("stage %s progress went down from %v to %v", b.Name, a.Progress, b.Progress)
		}
	}
	if !next.UpdatedAt.After(prev.UpdatedAt.Time) && !next.UpdatedAt.Equal(prev.UpdatedAt.Time) {
		fail("updated_at went back from %v to %v", prev.UpdatedAt, next.UpdatedAt)
	}
	if prev.StartedAt != nil && (next.StartedAt == nil || *next.StartedAt != *prev.StartedAt) {
		fail("started_at changed from %v to %v", prev.StartedAt, next.StartedAt)
	}
	if next.JobID != prev.JobID || next.Project != prev.Project || next.Owner != prev.Owner || next.CreatedAt != prev.CreatedAt {
		fail("identity changed")
	}
	if sh := shared(prev, next); len(sh) > 0 {
		fail("next shares %v with prev", sh)
	}
	checkSnapshot(t, next)
	return next
}

// checkSnapshot checks what must hold of any snapshot on its own.
func checkSnapshot(t *testing.T, s Snapshot) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\n"+format, append([]any{summary(s)}, args...)...)
	}
	if !s.State.Valid() {
		fail("state %q", s.State)
	}
	if !finite(s.Progress) || s.Progress < 0 || s.Progress > 1 {
		fail("progress %v", s.Progress)
	}
	if s.Stages == nil {
		fail("nil stages")
	}
	running, cur := 0, -1
	for i, st := range s.Stages {
		if !finite(st.Progress) || st.Progress < 0 || st.Progress > 1 {
			fail("stage %s progress %v", st.Name, st.Progress)
		}
		if !st.State.Valid() {
			fail("stage %s state %q", st.Name, st.State)
		}
		if st.State == Running {
			running++
		}
		if st.Name == s.Stage {
			cur = i
		}
	}
	if running > 1 {
		fail("%d stages running", running)
	}
	if len(s.Stages) == 0 && s.Stage != "" {
		fail("stage %q on a job without stages", s.Stage)
	}
	if s.Stage != "" && cur < 0 {
		fail("current stage %q is not one of the stages", s.Stage)
	}
	if s.State != Queued && len(s.Stages) > 0 && cur < 0 {
		fail("a started job with stages has no current stage")
	}
	for i := 0; i < cur; i++ {
		if st := s.Stages[i]; st.State != Succeeded || st.Progress != 1 {
			fail("stage %s before the current one is %s %v", st.Name, st.State, st.Progress)
		}
	}
	if len(s.Stages) > 0 && s.State != Succeeded {
		if w := weighted(s.Stages); !(math.Abs(w-s.Progress) <= 1e-9) {
			fail("progress %v is not the weighted sum %v of the stages", s.Progress, w)
		}
	}
	for _, v := range []*float64{s.Current, s.Total} {
		if v != nil && (!finite(*v) || *v < 0) {
			fail("count %v", *v)
		}
	}
	if s.Current != nil && s.Total != nil && *s.Current > *s.Total {
		fail("current %v > total %v", *s.Current, *s.Total)
	}
	if e := s.ETASeconds; e != nil && (!finite(*e) || *e < 0) {
		fail("eta %v", *e)
	}
	if len(s.Message) > MaxMessageBytes || !utf8.ValidString(s.Message) {
		fail("message of %d bytes", len(s.Message))
	}
	switch s.State {
	case Queued:
		if s.Seq != 1 || s.StartedAt != nil {
			fail("queued at seq %d, started %v", s.Seq, s.StartedAt)
		}
	case Running:
		if s.StartedAt == nil || s.FinishedAt != nil || s.Error != nil {
			fail("running with started %v finished %v error %v", s.StartedAt, s.FinishedAt, s.Error)
		}
	case Succeeded:
		if s.Progress != 1 || s.Error != nil {
			fail("succeeded with progress %v, error %v", s.Progress, s.Error)
		}
		for _, st := range s.Stages {
			if st.State != Succeeded || st.Progress != 1 {
				fail("succeeded job with stage %+v", st)
			}
		}
	case Failed, Canceled:
		if s.Error == nil || *s.Error == "" {
			fail("%s without an error", s.State)
		}
		if len(*s.Error) > MaxMessageBytes || !utf8.ValidString(*s.Error) {
			fail("error text of %d bytes", len(*s.Error))
		}
	}
	if s.State.Terminal() {
		if s.FinishedAt == nil || s.StartedAt == nil || s.ETASeconds != nil {
			fail("terminal with finished %v started %v eta %v", s.FinishedAt, s.StartedAt, s.ETASeconds)
		}
		if s.FinishedAt.Before(s.StartedAt.Time) {
			fail("finished_at %v before started_at %v", s.FinishedAt, s.StartedAt)
		}
	}
	if s.StartedAt != nil && s.StartedAt.Before(s.CreatedAt.Time) {
		fail("started_at %v before created_at %v", s.StartedAt, s.CreatedAt)
	}

	b, err := json.Marshal(s)
	if err != nil {
		fail("marshal: %v", err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		fail("unmarshal: %v", err)
	}
	want := s.Clone()
	want.Rate = Rate{}
	if !reflect.DeepEqual(back, want) {
		fail("round trip of %s gave %+v", b, back)
	}
}
