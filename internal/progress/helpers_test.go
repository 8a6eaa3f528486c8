package progress

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// t0 is the clock every test starts from: a time with nanoseconds and a
// zone other than UTC, so truncation and conversion are exercised too.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))

func fp(v float64) *float64 { return &v }
func sp(v string) *string   { return &v }
func stp(v State) *State    { return &v }

// ws declares a stage with a weight.
func ws(name string, weight float64) StageSpec { return StageSpec{Name: name, Weight: fp(weight)} }

// st declares a stage with the default weight.
func st(name string) StageSpec { return StageSpec{Name: name} }

// newJob returns the first snapshot of a job with the given stages.
func newJob(tb testing.TB, stages ...StageSpec) Snapshot {
	tb.Helper()
	s, err := New(NewJob{ID: "job1", Project: "p1", Owner: "alice", Pipeline: "demo", Stages: stages}, t0)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// applyAll applies reports one second apart starting one second after t0 and
// fails the test on any error.
func applyAll(tb testing.TB, s Snapshot, reports ...Report) Snapshot {
	tb.Helper()
	for i, r := range reports {
		next, err := Apply(s, r, t0.Add(time.Duration(i+1)*time.Second))
		if err != nil {
			tb.Fatalf("report %d %s: %v", i, reportString(r), err)
		}
		s = next
	}
	return s
}

// summary is a compact, readable rendering of the parts of a snapshot the
// Apply rules decide, for table-driven comparisons.
func summary(s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s p=%s", s.State, num(s.Progress))
	if s.Stage != "" {
		fmt.Fprintf(&b, " stage=%s", s.Stage)
	}
	if len(s.Stages) > 0 {
		b.WriteString(" [")
		for i, st := range s.Stages {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s:%s:%s", st.Name, st.State, num(st.Progress))
		}
		b.WriteString("]")
	}
	if s.Current != nil || s.Total != nil {
		fmt.Fprintf(&b, " %s/%s", numPtr(s.Current), numPtr(s.Total))
	}
	if s.Message != "" {
		fmt.Fprintf(&b, " msg=%q", s.Message)
	}
	if s.Error != nil {
		fmt.Fprintf(&b, " err=%q", *s.Error)
	}
	return b.String()
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func numPtr(v *float64) string {
	if v == nil {
		return "nil"
	}
	return num(*v)
}

func reportString(r Report) string {
	var parts []string
	add := func(k string, v any) { parts = append(parts, fmt.Sprintf("%s=%v", k, v)) }
	if r.Progress != nil {
		add("progress", *r.Progress)
	}
	if r.Stage != nil {
		add("stage", strconv.Quote(*r.Stage))
	}
	if r.Current != nil {
		add("current", *r.Current)
	}
	if r.Total != nil {
		add("total", *r.Total)
	}
	if r.Message != nil {
		add("message", strconv.Quote(truncate(*r.Message)))
	}
	if r.State != nil {
		add("state", strconv.Quote(string(*r.State)))
	}
	if r.Error != nil {
		add("error", strconv.Quote(truncate(*r.Error)))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// shared lists the fields through which a and b share memory: equal
// non-nil pointers, slices with the same backing array, the same map. It
// walks the struct by reflection so a field added later is covered too.
func shared(a, b Snapshot) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		fa, fb := va.Field(i), vb.Field(i)
		name := va.Type().Field(i).Name
		switch fa.Kind() {
		case reflect.Pointer, reflect.Map:
			if !fa.IsNil() && !fb.IsNil() && fa.Pointer() == fb.Pointer() {
				out = append(out, name)
			}
		case reflect.Slice:
			if fa.Cap() > 0 && fb.Cap() > 0 && fa.Pointer() == fb.Pointer() {
				out = append(out, name)
			}
		}
	}
	return out
}

// checkCode fails unless err is a *Error with the given code.
func checkCode(tb testing.TB, err error, code string) {
	tb.Helper()
	e, ok := err.(*Error)
	if !ok {
		tb.Fatalf("error %v (%T), want *Error with code %s", err, err, code)
	}
	if e.Code != code {
		tb.Fatalf("error code %s (%s), want %s", e.Code, e.Message, code)
	}
	if e.Message == "" {
		tb.Fatalf("error %s has no message", e.Code)
	}
}

func nan() float64         { return math.NaN() }
func inf(sign int) float64 { return math.Inf(sign) }
