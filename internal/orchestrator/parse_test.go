package orchestrator

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/progressd/progressd/internal/progress"
)

func f(v float64) *float64 { return &v }
func s(v string) *string   { return &v }

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want *progress.Report // nil: not a progress line
	}{
		{"", nil},
		{"   ", nil},
		{"hello world", nil},
		{"50%", &progress.Report{Progress: f(0.5), Message: s("50%")}},
		{"  downloading 12.5% of file  ", &progress.Report{Progress: f(0.125), Message: s("downloading 12.5% of file")}},
		{"10% then 20% then 30%", &progress.Report{Progress: f(0.3), Message: s("10% then 20% then 30%")}},
		{"cpu 40% load 250%", &progress.Report{Progress: f(0.4), Message: s("cpu 40% load 250%")}}, // 250% is no fraction
		{"100%", &progress.Report{Progress: f(1), Message: s("100%")}},
		{"0%", &progress.Report{Progress: f(0), Message: s("0%")}},
		{"% alone", nil},
		{"1.2.3%", nil},
		{"frame 420/1200", &progress.Report{Current: f(420), Total: f(1200), Message: s("frame 420/1200")}},
		{"item 3 / 10", &progress.Report{Current: f(3), Total: f(10), Message: s("item 3 / 10")}},
		{"1/2 then 3/4", &progress.Report{Current: f(3), Total: f(4), Message: s("1/2 then 3/4")}},
		{"5/3 is more than all", nil},
		{"0/0", nil},
		{"date 2024/01/02", nil},
		{"path /tmp/1/2", nil},
		{"v1/2", nil},
		{"chunk 3/4 75%", &progress.Report{Progress: f(0.75), Current: f(3), Total: f(4), Message: s("chunk 3/4 75%")}},
		{`{"progress": 0.25}`, &progress.Report{Progress: f(0.25)}},
		{`{"progress": 0.25, "message": "a quarter"}`, &progress.Report{Progress: f(0.25), Message: s("a quarter")}},
		{`{"current": 3, "total": 8}`, &progress.Report{Current: f(3), Total: f(8)}},
		{`{"current": 3}`, &progress.Report{Current: f(3)}},
		{`{"total": 8}`, &progress.Report{Total: f(8)}},
		{`{"current": 9, "total": 8}`, nil},
		{`{"message": "just words"}`, &progress.Report{Message: s("just words")}},
		{`{"progress": 1.5}`, nil},
		{`{"progress": -0.1, "message": "m"}`, &progress.Report{Message: s("m")}},
		{`{"progress": "50%"}`, &progress.Report{Progress: f(0.5), Message: s(`{"progress": "50%"}`)}}, // read as text
		{`{"other": 1}`, nil},
		{`{"progress": 0.5} trailing 20%`, &progress.Report{Progress: f(0.2), Message: s(`{"progress": 0.5} trailing 20%`)}},
		{`{not json 40%}`, &progress.Report{Progress: f(0.4), Message: s("{not json 40%}")}},
		{"\x1b[32m 60%\x1b[0m", &progress.Report{Progress: f(0.6), Message: s("[32m 60% [0m")}},
		{"bad \xff utf8 70%", &progress.Report{Progress: f(0.7), Message: s("bad \uFFFD utf8 70%")}},
	} {
		got, ok := ParseLine([]byte(tc.line))
		if tc.want == nil {
			if ok {
				t.Errorf("%q: got %s, want nothing", tc.line, show(got))
			}
			continue
		}
		if !ok || show(got) != show(*tc.want) {
			t.Errorf("%q: got %s (ok=%v), want %s", tc.line, show(got), ok, show(*tc.want))
		}
	}
}

func show(r progress.Report) string {
	var b strings.Builder
	num := func(name string, v *float64) {
		if v != nil {
			b.WriteString(name + "=" + strconv.FormatFloat(*v, 'g', -1, 64) + " ")
		}
	}
	num("progress", r.Progress)
	num("current", r.Current)
	num("total", r.Total)
	if r.Message != nil {
		b.WriteString("message=" + *r.Message)
	}
	return b.String()
}

func TestLineSplitter(t *testing.T) {
	var got []string
	sp := &lineSplitter{max: 8, fn: func(b []byte) { got = append(got, string(b)) }}
	for _, chunk := range []string{"a\nbb", "b\r\ncc\rdd", "d\n", "0123456789abc\nok\n", "toolongtoo", "long\n", "last"} {
		_, _ = sp.Write([]byte(chunk))
	}
	sp.Flush()
	want := []string{"a", "bbb", "cc", "ddd", "ok", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}

	got = nil
	tr := &lineSplitter{max: 4, truncate: true, fn: func(b []byte) { got = append(got, string(b)) }}
	_, _ = tr.Write([]byte("abcdefgh\nxy\n"))
	if strings.Join(got, "|") != "abcd|xy" {
		t.Fatalf("truncated lines %q", got)
	}
}

func TestLineSplitterBoundsMemory(t *testing.T) {
	n := 0
	sp := &lineSplitter{max: MaxLineBytes, fn: func(b []byte) { n++ }}
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 16 { // a 16 MiB line
		_, _ = sp.Write(chunk)
	}
	if cap(sp.buf) > 2*MaxLineBytes {
		t.Fatalf("buffered %d bytes of an endless line", cap(sp.buf))
	}
	_, _ = sp.Write([]byte("\n50%\n"))
	if n != 1 {
		t.Fatalf("%d lines delivered, want only the short one", n)
	}
}

func TestTailKeepsTheLastLines(t *testing.T) {
	tl := newTail(3)
	if tl.Last() != "" {
		t.Fatal("empty tail has a last line")
	}
	for _, l := range []string{"one", "", "two", "three", "four"} {
		tl.add([]byte(l))
	}
	if got := strings.Join(tl.Lines(), ","); got != "two,three,four" {
		t.Fatalf("lines %s", got)
	}
	tl.add(bytes.Repeat([]byte("é"), 2000))
	if last := tl.Last(); len(last) > stderrLineBytes || !utf8.ValidString(last) {
		t.Fatalf("last line %d bytes, valid %v", len(last), utf8.ValidString(last))
	}
}

func TestRetryDelayDoubles(t *testing.T) {
	p := retryPolicy{base: time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 20: MaxRetryBackoff} {
		if got := p.delay(n); got != want {
			t.Errorf("delay(%d) = %s, want %s", n, got, want)
		}
	}
}

// FuzzParseLine checks that whatever a command prints, ParseLine does not
// panic and returns only reports the model accepts.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		"50%", "12.5%", "frame 420/1200", `{"progress": 0.5, "message": "x"}`, `{"current": 3, "total": 4}`,
		"1/0", "99999999999999999999999999999999999999/1e400%", `{"progress": 1e400}`, "\xff\xfe%", "%%%%", "//",
		`{"message": "` + strings.Repeat("é", 2000) + `"}`, "0.5.5%", "3 / 4 and 100.0000%", `{"total": -1}`,
	} {
		f.Add([]byte(seed))
	}
	base, err := progress.New(progress.NewJob{ID: "j", Project: "p", Owner: "o"}, time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, ok := ParseLine(line)
		if !ok {
			if r.Progress != nil || r.Current != nil || r.Total != nil || r.Message != nil {
				t.Fatalf("not ok but report %s", show(r))
			}
			return
		}
		for _, v := range []*float64{r.Progress, r.Current, r.Total} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0) {
				t.Fatalf("bad number in %s", show(r))
			}
		}
		if r.Progress != nil && *r.Progress > 1 {
			t.Fatalf("progress %v > 1", *r.Progress)
		}
		if r.Message != nil && (!utf8.ValidString(*r.Message) || len(*r.Message) > progress.MaxMessageBytes) {
			t.Fatalf("bad message %q", *r.Message)
		}
		// A fresh job accepts every report ParseLine makes.
		if _, err := progress.Apply(base, r, time.Unix(1, 0)); err != nil {
			t.Fatalf("model rejected %s: %v", show(r), err)
		}
		// And the splitter, fed the same bytes in two chunks, neither
		// panics nor hands on a line longer than its bound.
		sp := &lineSplitter{max: 16, fn: func(b []byte) {
			if len(b) > 16 {
				t.Fatalf("line of %d bytes", len(b))
			}
		}}
		mid := len(line) / 2
		_, _ = sp.Write(line[:mid])
		_, _ = sp.Write(line[mid:])
		sp.Flush()
	})
}
