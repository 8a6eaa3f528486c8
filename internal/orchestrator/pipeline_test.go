package orchestrator

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

const specExample = `
pipelines:
  thumbnail:
    params: [input]              # the only params a caller may pass
    max_attempts: 2              # retries after a failure (default 1: none)
    stages:
      - name: fetch
        weight: 1                # share of overall progress (default 1)
        run: ["fetch-tool", "{{input}}"]   # argv; {{name}} is a param; no shell
        timeout: 10m
      - name: encode
        weight: 8
        run: ["sh", "-c", "my-encoder --in \"$1\"", "sh", "{{input}}"]
`

func TestParsePipelinesSpecExample(t *testing.T) {
	ps, err := ParsePipelines([]byte(specExample), "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := ps.Get("thumbnail")
	if !ok {
		t.Fatal("no thumbnail pipeline")
	}
	if p.MaxAttempts != 2 || !slices.Equal(p.Params, []string{"input"}) || len(p.Stages) != 2 {
		t.Fatalf("parsed %+v", p)
	}
	fetch, encode := p.Stages[0], p.Stages[1]
	if fetch.Weight != 1 || fetch.Timeout != 10*time.Minute || encode.Weight != 8 || encode.Timeout != 0 {
		t.Fatalf("stages %+v", p.Stages)
	}
	argv, err := p.Argv(1, map[string]string{"input": "a b; rm -rf /"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sh", "-c", "my-encoder --in \"$1\"", "sh", "a b; rm -rf /"}; !slices.Equal(argv, want) {
		t.Fatalf("argv %q, want %q", argv, want)
	}
	specs := p.StageSpecs()
	if len(specs) != 2 || specs[1].Name != "encode" || *specs[1].Weight != 8 {
		t.Fatalf("specs %+v", specs)
	}
}

func TestParsePipelinesDefaults(t *testing.T) {
	ps, err := ParsePipelines([]byte("pipelines:\n  p:\n    stages:\n      - name: s\n        run: [\"true\"]\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ps.Get("p")
	if p.MaxAttempts != 1 || p.Stages[0].Weight != 1 || p.Stages[0].Timeout != 0 || len(p.Params) != 0 {
		t.Fatalf("defaults %+v", p)
	}
}

func TestParsePipelinesErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"empty"}},
		{"no pipelines", "pipelines: {}\n", []string{"declares no pipelines"}},
		{"unknown field", "pipelines:\n  p:\n    stages:\n      - name: s\n        run: [x]\n        retries: 3\n", []string{"retries", "not found"}},
		{"run as string", "pipelines:\n  p:\n    stages:\n      - name: s\n        run: \"echo hi\"\n", []string{"run must be a list", "line 5"}},
		{"no stages", "pipelines:\n  p:\n    params: [a]\n", []string{"pipeline p", "stages", "at least one"}},
		{"bad weight", "pipelines:\n  p:\n    stages:\n      - name: s\n        weight: 0\n        run: [x]\n", []string{"pipeline p", "stage 1 (s)", "weight"}},
		{"negative weight", "pipelines:\n  p:\n    stages:\n      - name: s\n        weight: -2\n        run: [x]\n", []string{"weight must be a finite number > 0"}},
		{"empty run", "pipelines:\n  p:\n    stages:\n      - name: s\n        run: []\n", []string{"stage 1 (s)", "run:"}},
		{"undeclared param", "pipelines:\n  p:\n    params: [a]\n    stages:\n      - name: s\n        run: [x, \"{{b}}\"]\n", []string{"stage 1 (s)", "{{b}} is not a declared param"}},
		{"bad timeout", "pipelines:\n  p:\n    stages:\n      - name: s\n        run: [x]\n        timeout: soon\n", []string{"stage 1 (s)", "timeout \"soon\""}},
		{"zero timeout", "pipelines:\n  p:\n    stages:\n      - name: s\n        run: [x]\n        timeout: 0s\n", []string{"timeout must be positive"}},
		{"duplicate stage", "pipelines:\n  p:\n    stages:\n      - name: s\n        run: [x]\n      - name: s\n        run: [y]\n", []string{"stage 2 (s)", "unique"}},
		{"missing stage name", "pipelines:\n  p:\n    stages:\n      - run: [x]\n", []string{"stage 1:", "stage name is required"}},
		{"bad attempts", "pipelines:\n  p:\n    max_attempts: 0\n    stages:\n      - name: s\n        run: [x]\n", []string{"pipeline p", "max_attempts"}},
		{"duplicate param", "pipelines:\n  p:\n    params: [a, a]\n    stages:\n      - name: s\n        run: [x]\n", []string{"params", "twice"}},
		{"bad pipeline name", "pipelines:\n  \"has space\":\n    stages:\n      - name: s\n        run: [x]\n", []string{"pipeline has space", "spaces"}},
		{"two problems", "pipelines:\n  a:\n    stages: []\n  b:\n    max_attempts: 1000\n    stages:\n      - name: s\n        run: [x]\n", []string{"pipeline a", "pipeline b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePipelines([]byte(tc.yaml), "test.yaml")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "test.yaml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadPipelinesMissingFile(t *testing.T) {
	_, err := LoadPipelines(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestCheckParams(t *testing.T) {
	p := &Pipeline{Name: "p", Params: []string{"a", "b"}}
	for _, tc := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"a": "1", "b": "2"}, ""},
		{map[string]string{"a": "1"}, "needs param b"},
		{map[string]string{"a": "1", "b": "2", "c": "3"}, "does not declare param c"},
		{nil, "needs param a, b"},
	} {
		err := p.CheckParams(tc.params)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.params, err)
			}
			continue
		}
		var pe *progress.Error
		if !errors.As(err, &pe) || pe.Code != jobs.CodeInvalidParam || !strings.Contains(pe.Message, tc.want) {
			t.Errorf("%v: got %v, want invalid_param %q", tc.params, err, tc.want)
		}
	}
	_, err := DemoPipelines().lookup("nope")
	var pe *progress.Error
	if !errors.As(err, &pe) || pe.Code != jobs.CodeUnknownPipeline || !strings.Contains(pe.Message, "demo") {
		t.Errorf("unknown pipeline: %v", err)
	}
}

func TestArgvSubstitutesOnce(t *testing.T) {
	ps, err := ParsePipelines([]byte(`
pipelines:
  p:
    params: [a, b]
    stages:
      - name: s
        run: ["cmd", "--x={{a}}", "{{ b }}{{a}}", "{{a}} {{nope", "{{}}"]
`), "x")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ps.Get("p")
	argv, err := p.Argv(0, map[string]string{"a": "{{b}}", "b": "$(id)\n'\""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cmd", "--x={{b}}", "$(id)\n'\"{{b}}", "{{b}} {{nope", "{{}}"}
	if !slices.Equal(argv, want) {
		t.Fatalf("argv %q, want %q", argv, want)
	}
}

func TestDemoPipelineIsValid(t *testing.T) {
	ps := DemoPipelines()
	p, ok := ps.Get("demo")
	if !ok || !strings.Contains(p.Description, "demo") {
		t.Fatalf("demo pipeline %+v", p)
	}
	for _, st := range p.Stages {
		if !strings.HasPrefix(st.Name, "demo-") {
			t.Errorf("stage %s does not say it is a demo", st.Name)
		}
		if err := progress.CheckName("stage", st.Name); err != nil {
			t.Error(err)
		}
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	// Each stage's script runs and prints parseable progress.
	for _, st := range p.Stages {
		out, err := exec.Command(st.Run[0], st.Run[1:]...).Output()
		if err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		last, ok := ParseLine([]byte(lines[len(lines)-1]))
		if !ok {
			t.Fatalf("%s: last line %q reports nothing", st.Name, lines[len(lines)-1])
		}
		if done := last.Progress != nil && *last.Progress == 1 || last.Current != nil && *last.Current == *last.Total; !done {
			t.Errorf("%s: last line %q does not reach 100%%", st.Name, lines[len(lines)-1])
		}
	}
}
