package progress

import (
	"testing"
	"time"
)

func TestTraceID(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for h, want := range map[string]string{
		"00-" + id + "-00f067aa0ba902b7-01":          id,
		" 00-" + id + "-00f067aa0ba902b7-00 ":        id,
		"01-" + id + "-00f067aa0ba902b7-01-whatever": id, // a later version's extra fields
		"":                                    "",
		"garbage":                             "",
		"00-" + id + "-00f067aa0ba902b7-01-x": "", // version 00 has no more fields
		"ff-" + id + "-00f067aa0ba902b7-01":   "",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01": "", // uppercase
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"00-" + id + "-0000000000000000-01":                       "",
		"00-" + id + "-00f067aa0ba902b7-0g":                       "",
		"00_" + id + "-00f067aa0ba902b7-01":                       "",
		"00-" + id[:31] + "-00f067aa0ba902b7-01":                  "",
	} {
		if got := TraceID(h); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", h, got, want)
		}
	}
}

// TestApplyKeepsTraceID: a report with a trace id sets it; one without
// keeps the last one.
func TestApplyKeepsTraceID(t *testing.T) {
	now := time.Now()
	s, err := New(NewJob{ID: "j", Project: "p", Owner: "o"}, now)
	if err != nil {
		t.Fatal(err)
	}
	p := 0.5
	s, err = Apply(s, Report{Progress: &p, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}, now)
	if err != nil || s.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("after a traced report: %q, %v", s.TraceID, err)
	}
	p = 0.6
	if s, err = Apply(s, Report{Progress: &p}, now); err != nil || s.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("after an untraced report: %q, %v", s.TraceID, err)
	}
}
