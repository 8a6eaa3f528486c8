package progress

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var rfc3339ms = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestAt(t *testing.T) {
	t.Parallel()
	in := time.Date(2025, 1, 2, 3, 4, 5, 678999999, time.FixedZone("X", -5*3600))
	got := At(in)
	if want := time.Date(2025, 1, 2, 8, 4, 5, 678000000, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("At = %v, want %v", got, want)
	}
	// A monotonic clock reading is dropped, so == compares instants.
	now := time.Now()
	if At(now) != At(now.Round(0)) {
		t.Error("At keeps the monotonic reading")
	}
	p := got.Ptr()
	*p = Time{}
	if got.IsZero() {
		t.Error("Ptr shares the value")
	}
}

func TestTimeMarshalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), `"2025-01-02T03:04:05.000Z"`},
		{time.Date(2025, 1, 2, 3, 4, 5, 1_000_000, time.UTC), `"2025-01-02T03:04:05.001Z"`},
		{time.Date(2025, 1, 2, 3, 4, 5, 120_000_000, time.UTC), `"2025-01-02T03:04:05.120Z"`},
		{time.Date(2025, 1, 2, 3, 4, 5, 999_999_999, time.UTC), `"2025-01-02T03:04:05.999Z"`},
		{time.Date(2025, 1, 2, 0, 30, 0, 0, time.FixedZone("+01", 3600)), `"2025-01-01T23:30:00.000Z"`},
		{time.Date(2025, 1, 2, 3, 4, 5, 0, time.Local), ""}, // only the shape is checked
	} {
		// Marshal both a Time built directly and one from At.
		for _, v := range []Time{{tc.in}, At(tc.in)} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if tc.want != "" && s != tc.want {
				t.Errorf("%v: %s, want %s", tc.in, s, tc.want)
			}
			if !rfc3339ms.MatchString(strings.Trim(s, `"`)) {
				t.Errorf("%v: %s is not RFC 3339 UTC with 3 digits", tc.in, s)
			}
		}
	}
}

func TestTimeUnmarshalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{`"2025-01-02T03:04:05.000Z"`, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		{`"2025-01-02T03:04:05Z"`, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)},
		{`"2025-01-02T03:04:05.123456789Z"`, time.Date(2025, 1, 2, 3, 4, 5, 123_000_000, time.UTC)},
		{`"2025-01-02T04:04:05.5+01:00"`, time.Date(2025, 1, 2, 3, 4, 5, 500_000_000, time.UTC)},
	} {
		var got Time
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != At(tc.want) {
			t.Errorf("%s: %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{`""`, `"yesterday"`, `"2025-01-02"`, `12`, `"2025-01-02T03:04:05"`, `"`} {
		var got Time
		if err := got.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s: accepted as %v", in, got)
		}
	}
	var p *Time
	if err := json.Unmarshal([]byte(`null`), &p); err != nil || p != nil {
		t.Errorf("null: %v, %v", p, err)
	}
}

// wireFields are the snapshot fields of the contract, in its order.
var wireFields = []string{
	"job_id", "project", "owner", "pipeline", "state", "progress", "stage", "stages",
	"current", "total", "message", "eta_seconds", "seq",
	"created_at", "started_at", "updated_at", "finished_at", "error",
}

// TestSnapshotJSON checks the wire shape of snapshots at each point of a
// job's life: the field names of the contract, always all of them, the stage
// fields, the timestamps, and that decoding gives back the same snapshot.
func TestSnapshotJSON(t *testing.T) {
	t.Parallel()
	withStages := newJob(t, ws("fetch", 1), ws("encode", 8))
	running := applyAll(t, withStages,
		Report{Stage: sp("fetch"), Progress: fp(0.5)},
		Report{Stage: sp("encode"), Current: fp(420), Total: fp(1200), Message: sp("frame 420/1200")},
		Report{Current: fp(600)},
	)
	failed := applyAll(t, running, Report{Error: sp("disk full")})
	bare, err := New(NewJob{ID: "j2", Project: "p", Owner: "o", Params: map[string]string{"k": "v"}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    Snapshot
		null []string // fields that must be null
	}{
		{"queued with stages", withStages, []string{"current", "total", "eta_seconds", "started_at", "finished_at", "error"}},
		{"running with stages", running, []string{"finished_at", "error"}},
		{"failed", failed, []string{"eta_seconds"}},
		{"queued without stages", bare, []string{"current", "total", "eta_seconds", "started_at", "finished_at", "error"}},
		{"succeeded without stages", applyAll(t, bare, Report{Progress: fp(0.3)}, Report{State: stp(Succeeded)}), []string{"eta_seconds", "current", "total", "error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range m {
				if k != "params" { // beyond the contract, present when a job has params
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			want := slices.Clone(wireFields)
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Errorf("fields %v\nwant %v\nin %s", keys, want, b)
			}
			for _, k := range tc.null {
				if string(m[k]) != "null" {
					t.Errorf("%s = %s, want null", k, m[k])
				}
			}
			for _, k := range []string{"created_at", "started_at", "updated_at", "finished_at"} {
				if string(m[k]) == "null" {
					continue
				}
				var s string
				if err := json.Unmarshal(m[k], &s); err != nil || !rfc3339ms.MatchString(s) {
					t.Errorf("%s = %s, want RFC 3339 UTC with 3 fractional digits", k, m[k])
				}
			}
			if len(tc.s.Stages) == 0 && string(m["stages"]) != "[]" {
				t.Errorf("stages = %s, want []", m["stages"])
			}
			var stages []map[string]json.RawMessage
			if err := json.Unmarshal(m["stages"], &stages); err != nil {
				t.Fatal(err)
			}
			for _, st := range stages {
				keys := slices.Sorted(func(yield func(string) bool) {
					for k := range st {
						if !yield(k) {
							return
						}
					}
				})
				if !slices.Equal(keys, []string{"name", "progress", "state", "weight"}) {
					t.Errorf("stage fields %v", keys)
				}
			}
			if strings.Contains(string(b), "per_second") || strings.Contains(string(b), "sample") {
				t.Errorf("the estimator state is on the wire: %s", b)
			}

			var back Snapshot
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			want2 := tc.s.Clone()
			want2.Rate = Rate{}
			if !reflect.DeepEqual(back, want2) {
				t.Errorf("round trip\n got %+v\nwant %+v", back, want2)
			}
		})
	}
}

// TestSnapshotJSONExample decodes the contract's example and encodes it back.
func TestSnapshotJSONExample(t *testing.T) {
	t.Parallel()
	const example = `{
	  "job_id": "01JD", "project": "p1", "owner": "alice",
	  "pipeline": "demo", "state": "running",
	  "progress": 0.42,
	  "stage": "encode",
	  "stages": [{"name": "fetch", "weight": 1, "state": "succeeded", "progress": 1},
	             {"name": "encode", "weight": 8, "state": "running", "progress": 0.35}],
	  "current": 420, "total": 1200, "message": "frame 420/1200",
	  "eta_seconds": 12.5,
	  "seq": 18,
	  "created_at": "2025-01-02T03:04:05.000Z", "started_at": "2025-01-02T03:04:06.250Z",
	  "updated_at": "2025-01-02T03:05:00.001Z", "finished_at": null,
	  "error": null
	}`
	var s Snapshot
	if err := json.Unmarshal([]byte(example), &s); err != nil {
		t.Fatal(err)
	}
	if s.Stages[1].Weight != 8 || *s.Current != 420 || *s.ETASeconds != 12.5 || s.StartedAt.Nanosecond() != 250_000_000 || s.FinishedAt != nil {
		t.Errorf("decoded %+v", s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var a, c any
	_ = json.Unmarshal([]byte(example), &a)
	_ = json.Unmarshal(b, &c)
	if !reflect.DeepEqual(a, c) {
		t.Errorf("re-encoded\n%s\nwant the same as the example", b)
	}
}

func TestReportJSON(t *testing.T) {
	t.Parallel()
	var r Report
	in := `{"progress": 0.5, "stage": "encode", "current": 1, "total": 2, "message": "m", "state": "failed", "error": "e"}`
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if *r.Progress != 0.5 || *r.Stage != "encode" || *r.Current != 1 || *r.Total != 2 || *r.Message != "m" || *r.State != Failed || *r.Error != "e" {
		t.Errorf("decoded %s", reportString(r))
	}
	var empty Report
	if err := json.Unmarshal([]byte(`{"progress": null}`), &empty); err != nil || empty.Progress != nil {
		t.Errorf("null progress: %v %v", empty.Progress, err)
	}
}
