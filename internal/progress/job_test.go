package progress

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	params := map[string]string{"input": "a b.mp4", "preset": ""}
	j := NewJob{
		ID: "01JD", Project: "p1", Owner: "alice", Pipeline: "thumbnail",
		Params: params,
		Stages: []StageSpec{st("fetch"), ws("encode", 8), ws("upload", 0.5)},
	}
	s, err := New(j, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Snapshot{
		JobID: "01JD", Project: "p1", Owner: "alice", Pipeline: "thumbnail",
		Params: map[string]string{"input": "a b.mp4", "preset": ""},
		State:  Queued,
		Stages: []Stage{
			{Name: "fetch", Weight: 1, State: Queued},
			{Name: "encode", Weight: 8, State: Queued},
			{Name: "upload", Weight: 0.5, State: Queued},
		},
		Seq:       1,
		CreatedAt: At(t0),
		UpdatedAt: At(t0),
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("New\n got %+v\nwant %+v", s, want)
	}
	// The snapshot owns its params: the caller's map may change later.
	params["input"] = "changed"
	j.Stages[0].Name = "changed"
	if s.Params["input"] != "a b.mp4" || s.Stages[0].Name != "fetch" {
		t.Error("the snapshot shares the caller's params or stages")
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		j    NewJob
		want func(Snapshot) string // "" when right
	}{
		{
			name: "no stages gives an empty, non-nil list",
			j:    NewJob{ID: "j", Project: "p", Owner: "o"},
			want: func(s Snapshot) string {
				if s.Stages == nil || len(s.Stages) != 0 {
					return fmt.Sprintf("stages %#v", s.Stages)
				}
				return ""
			},
		},
		{
			name: "no params gives nil params",
			j:    NewJob{ID: "j", Project: "p", Owner: "o", Params: map[string]string{}},
			want: func(s Snapshot) string {
				if s.Params != nil {
					return fmt.Sprintf("params %#v", s.Params)
				}
				return ""
			},
		},
		{
			name: "default weight 1",
			j:    NewJob{ID: "j", Project: "p", Owner: "o", Stages: []StageSpec{st("a"), st("b")}},
			want: func(s Snapshot) string {
				for _, st := range s.Stages {
					if st.Weight != 1 || st.State != Queued || st.Progress != 0 {
						return fmt.Sprintf("stage %+v", st)
					}
				}
				return ""
			},
		},
		{
			name: "queued at seq 1 with nothing started",
			j:    NewJob{ID: "j", Project: "p", Owner: "o"},
			want: func(s Snapshot) string {
				if s.State != Queued || s.Seq != 1 || s.Progress != 0 || s.StartedAt != nil || s.FinishedAt != nil ||
					s.ETASeconds != nil || s.Error != nil || s.Current != nil || s.Total != nil || s.Stage != "" {
					return summary(s)
				}
				return ""
			},
		},
		{
			name: "no pipeline is allowed",
			j:    NewJob{ID: "j", Project: "p", Owner: "o"},
			want: func(s Snapshot) string {
				if s.Pipeline != "" {
					return s.Pipeline
				}
				return ""
			},
		},
		{
			name: "limits are inclusive",
			j: NewJob{
				ID: "j", Project: strings.Repeat("p", MaxNameBytes), Owner: "o",
				Params: manyParams(MaxParams, strings.Repeat("v", MaxParamBytes)),
				Stages: manyStages(MaxStages),
			},
			want: func(s Snapshot) string {
				if len(s.Stages) != MaxStages || len(s.Params) != MaxParams {
					return fmt.Sprintf("%d stages, %d params", len(s.Stages), len(s.Params))
				}
				return ""
			},
		},
		{
			name: "unicode names",
			j:    NewJob{ID: "j", Project: "проект-1", Owner: "o", Stages: []StageSpec{st("étape")}},
			want: func(Snapshot) string { return "" },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.j, t0)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.want(s); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	ok := func() NewJob { return NewJob{ID: "j", Project: "p", Owner: "o", Pipeline: "demo"} }
	with := func(f func(*NewJob)) NewJob { j := ok(); f(&j); return j }
	stages := func(s ...StageSpec) NewJob { return with(func(j *NewJob) { j.Stages = s }) }
	tests := []struct {
		name string
		j    NewJob
	}{
		{"no id", with(func(j *NewJob) { j.ID = "" })},
		{"no owner", with(func(j *NewJob) { j.Owner = "" })},
		{"empty project", with(func(j *NewJob) { j.Project = "" })},
		{"project with a space", with(func(j *NewJob) { j.Project = "my project" })},
		{"project with a tab", with(func(j *NewJob) { j.Project = "a\tb" })},
		{"project with a newline", with(func(j *NewJob) { j.Project = "a\n" })},
		{"project with a non-breaking space", with(func(j *NewJob) { j.Project = "a\u00a0b" })},
		{"project with a control character", with(func(j *NewJob) { j.Project = "a\x00b" })},
		{"project not UTF-8", with(func(j *NewJob) { j.Project = "a\xffb" })},
		{"project too long", with(func(j *NewJob) { j.Project = strings.Repeat("p", MaxNameBytes+1) })},
		{"pipeline with a space", with(func(j *NewJob) { j.Pipeline = "de mo" })},
		{"pipeline too long", with(func(j *NewJob) { j.Pipeline = strings.Repeat("p", MaxNameBytes+1) })},
		{"too many params", with(func(j *NewJob) { j.Params = manyParams(MaxParams+1, "v") })},
		{"empty param name", with(func(j *NewJob) { j.Params = map[string]string{"": "v"} })},
		{"param name with a space", with(func(j *NewJob) { j.Params = map[string]string{"in put": "v"} })},
		{"param value too long", with(func(j *NewJob) { j.Params = map[string]string{"in": strings.Repeat("v", MaxParamBytes+1)} })},
		{"param value not UTF-8", with(func(j *NewJob) { j.Params = map[string]string{"in": "\xff"} })},
		{"too many stages", stages(manyStages(MaxStages + 1)...)},
		{"duplicate stage names", stages(st("a"), st("b"), st("a"))},
		{"empty stage name", stages(st(""))},
		{"stage name with a space", stages(st("a b"))},
		{"stage name too long", stages(st(strings.Repeat("s", MaxNameBytes+1)))},
		{"weight 0", stages(ws("a", 0))},
		{"weight -0", stages(ws("a", negZero()))},
		{"weight negative", stages(st("a"), ws("b", -1))},
		{"weight NaN", stages(ws("a", nan()))},
		{"weight +Inf", stages(ws("a", inf(1)))},
		{"weight -Inf", stages(ws("a", inf(-1)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.j, t0)
			checkCode(t, err, CodeInvalidJob)
			if !reflect.DeepEqual(s, Snapshot{}) {
				t.Errorf("rejected job returned a snapshot: %s", summary(s))
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"p", "p1", "my-project_2.0", "a:b", "ünï", "日本", strings.Repeat("x", MaxNameBytes)} {
		if err := CheckName("project", name); err != nil {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", " ", "a b", " a", "a\u2028", "a\u200b\u0000", "\x7f", "a\xff", strings.Repeat("x", MaxNameBytes+1)} {
		err := CheckName("project", name)
		checkCode(t, err, CodeInvalidJob)
		if !strings.Contains(err.Error(), "project") {
			t.Errorf("CheckName(%q) = %v; want the error to name the field", name, err)
		}
	}
}

func manyParams(n int, v string) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("p%d", i)] = v
	}
	return m
}

func manyStages(n int) []StageSpec {
	s := make([]StageSpec, n)
	for i := range s {
		s[i] = st(fmt.Sprintf("s%d", i))
	}
	return s
}

func negZero() float64 { z := 0.0; return -z }
