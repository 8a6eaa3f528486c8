package progress

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// reference encodes s with encoding/json (HTML escaping off), the behaviour
// AppendJSON must reproduce byte for byte.
func reference(t testing.TB, s Snapshot) []byte {
	t.Helper()
	type plain Snapshot // drops Snapshot's MarshalJSON, keeps the fields' tags
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plain(s)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func encodeCases(t testing.TB) []Snapshot {
	now := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	w := 8.0
	s, err := New(NewJob{ID: "01JD", Project: "p<1>&", Owner: "ali\"ce", Pipeline: "demo",
		Params: map[string]string{"z": "last", "a": "first\n\x01\u2028", "m": "<b>"},
		Stages: []StageSpec{{Name: "fetch"}, {Name: "encode", Weight: &w}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	out := []Snapshot{s}
	st, msg, cur, tot := "encode", "frame 420/1200 \\ \t", 420.0, 1200.0
	for i, p := range []float64{1e-7, 0.35, 0.5, 1.0 / 3} {
		s, err = Apply(s, Report{Stage: &st, Progress: &p, Message: &msg, Current: &cur, Total: &tot}, now.Add(time.Duration(i+1)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	fail := "exit status 1: \"boom\""
	failed, err := Apply(s, Report{State: stp(Failed), Error: &fail}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	big, tiny := 1e22, 1.5e-9
	odd := out[2].Clone()
	odd.Current, odd.Total = &tiny, &big
	odd.Stages = nil
	noStages, _ := New(NewJob{ID: "x", Project: "p", Owner: "o"}, now)
	noStages.Message = "bad\xffutf8" // not reachable through Apply, but must still encode
	out = append(out, failed, odd, noStages)
	// Part two's fields, each present only when set.
	cw := 2.5
	child, err := New(NewJob{ID: "c1", Project: "p", Owner: "o", Name: "import \"a\" <b>   é",
		Tags: []string{"customer-42", "invoice:2026-11"}, ParentID: "p1", RootID: "r1", Weight: &cw}, now)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := New(NewJob{ID: "p1", Project: "p", Owner: "o", ExpectedChildren: 200,
		Stages: []StageSpec{{Name: "prepare"}, {Name: "work", Children: true}}}, now)
	if err != nil {
		t.Fatal(err)
	}
	parent.Children = &Children{Total: 7, Queued: 1, Running: 2, Succeeded: 3, Failed: 1}
	return append(out, child, parent)
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for i, s := range encodeCases(t) {
		got, err := s.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := reference(t, s); !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
		// json.Marshal goes through MarshalJSON; it decodes to the same snapshot.
		viaMarshal, err := json.Marshal(s)
		if err != nil || !json.Valid(viaMarshal) {
			t.Fatalf("case %d: json.Marshal = %s, %v", i, viaMarshal, err)
		}
	}
}

func TestAppendJSONRejectsNonFinite(t *testing.T) {
	s := encodeCases(t)[1]
	s.Progress = math.NaN()
	if _, err := json.Marshal(s); err == nil {
		t.Fatal("a NaN progress was encoded")
	}
	inf := math.Inf(1)
	s = encodeCases(t)[1]
	s.ETASeconds = &inf
	if _, err := s.AppendJSON(nil); err == nil {
		t.Fatal("an infinite ETA was encoded")
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", "é中😀", "<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		snap := Snapshot{JobID: s, Message: s, Stages: []Stage{}}
		got, err := snap.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := reference(t, snap); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
	})
}

func BenchmarkMarshalSnapshot(b *testing.B) {
	s := encodeCases(b)[3]
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for i := 0; i < b.N; i++ {
			buf, _ = s.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		type plain Snapshot
		for i := 0; i < b.N; i++ {
			_, _ = json.Marshal(plain(s))
		}
	})
}

func TestAppendTimeMatchesLayout(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 26, 21, 5, 9, 7_000_000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("X", 5*3600)),
	} {
		at := At(tm)
		got := string(appendTime(nil, &at))
		if want := `"` + at.UTC().Format(TimeLayout) + `"`; got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestLogLineAppendJSONMatchesEncodingJSON: a log line is written as
// encoding/json writes it (HTML escaping off), with and without a stage,
// whatever its text.
func TestLogLineAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := At(time.Date(2026, 12, 3, 12, 0, 0, 7_000_000, time.UTC))
	for _, l := range []LogLine{
		{N: 1, T: at, Stream: StreamStdout, Stage: "build", Text: "line 1 of the flood"},
		{N: 1 << 40, T: at, Stream: StreamLog, Text: ""},
		{N: 7, T: at, Stream: StreamStderr, Stage: "a \"b\"", Text: "tab\there\nnew <html> & \u2028 \x01 é 😀 \xff"},
	} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		if got := l.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("AppendJSON:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}
