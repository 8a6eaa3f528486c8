package orchestrator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

// MaxAttemptsLimit bounds max_attempts: a pipeline that needs more retries
// than this has a problem retries will not fix.
const MaxAttemptsLimit = 100

// Pipelines is a loaded, validated pipelines file. It is immutable and safe
// for concurrent use.
type Pipelines struct {
	source string
	byName map[string]*Pipeline
	names  []string // sorted
}

// Pipeline is one named pipeline: its params and its stages, in order.
type Pipeline struct {
	Name        string
	Description string
	// Params are the only params a caller may pass, and all are required.
	Params []string
	// MaxAttempts is how many times the job runs before it fails: 1 is no
	// retry.
	MaxAttempts int
	Stages      []Stage
}

// Stage is one command of a pipeline.
type Stage struct {
	Name   string
	Weight float64
	// Run is the argv; "{{name}}" anywhere in an element is replaced by
	// the value of param name. No shell is involved.
	Run []string
	// Timeout bounds the stage; 0 is none.
	Timeout time.Duration
	// timeoutText is the timeout as the file spelled it, for messages.
	timeoutText string
}

// placeholder matches {{name}} and {{ name }}.
var placeholder = regexp.MustCompile(`\{\{\s*([^{}\s]+)\s*\}\}`)

// file is the YAML shape of a pipelines file.
type file struct {
	Pipelines map[string]*pipelineYAML `yaml:"pipelines"`
}

type pipelineYAML struct {
	Description string      `yaml:"description"`
	Params      []string    `yaml:"params"`
	MaxAttempts *int        `yaml:"max_attempts"`
	Stages      []stageYAML `yaml:"stages"`
}

type stageYAML struct {
	Name    string   `yaml:"name"`
	Weight  *float64 `yaml:"weight"`
	Run     argv     `yaml:"run"`
	Timeout string   `yaml:"timeout"`
}

// argv is a run list; a plain string gets an error that says why not.
type argv []string

func (a *argv) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return fmt.Errorf("line %d: run must be a list of arguments such as [\"sh\", \"-c\", \"...\"], not a string: commands never go through a shell unless you name one", n.Line)
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*a = s
	return nil
}

// yamlFieldNames turns the Go types in yaml's errors into what the file's
// reader knows.
var yamlFieldNames = strings.NewReplacer(
	"in type orchestrator.stageYAML", "in a stage (a stage has name, weight, run, timeout)",
	"in type orchestrator.pipelineYAML", "in a pipeline (a pipeline has description, params, max_attempts, stages)",
	"in type orchestrator.file", "at the top level (the file has pipelines)",
	"orchestrator.stageYAML", "a stage", "orchestrator.pipelineYAML", "a pipeline",
	"orchestrator.file", "a pipelines file", "orchestrator.argv", "a run list",
)

// LoadPipelines reads and validates the pipelines file at path.
func LoadPipelines(path string) (*Pipelines, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	return ParsePipelines(data, path)
}

// ParsePipelines validates a pipelines file's content; source names it in
// errors. Every problem is reported, each naming its pipeline, stage and
// field.
func ParsePipelines(data []byte, source string) (*Pipelines, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("pipelines file %s is empty; it needs a top-level \"pipelines:\" map", source)
		}
		return nil, fmt.Errorf("pipelines file %s: %s", source, yamlFieldNames.Replace(err.Error()))
	}
	if len(f.Pipelines) == 0 {
		return nil, fmt.Errorf("pipelines file %s declares no pipelines; it needs a top-level \"pipelines:\" map of name → pipeline", source)
	}
	ps := &Pipelines{source: source, byName: make(map[string]*Pipeline, len(f.Pipelines))}
	var errs []error
	for name := range f.Pipelines {
		ps.names = append(ps.names, name)
	}
	slices.Sort(ps.names)
	for _, name := range ps.names {
		p, perrs := buildPipeline(name, f.Pipelines[name])
		for _, e := range perrs {
			errs = append(errs, fmt.Errorf("pipeline %s: %w", name, e))
		}
		ps.byName[name] = p
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("pipelines file %s: %w", source, errors.Join(errs...))
	}
	return ps, nil
}

func buildPipeline(name string, y *pipelineYAML) (*Pipeline, []error) {
	var errs []error
	if err := progress.CheckName("pipeline name", name); err != nil {
		errs = append(errs, err)
	}
	if y == nil {
		return nil, append(errs, errors.New("is empty; it needs stages"))
	}
	p := &Pipeline{Name: name, Description: y.Description, MaxAttempts: 1}
	declared := map[string]bool{}
	for _, param := range y.Params {
		if err := progress.CheckName("param name", param); err != nil {
			errs = append(errs, fmt.Errorf("params: %w", err))
			continue
		}
		if declared[param] {
			errs = append(errs, fmt.Errorf("params: %q is declared twice", param))
			continue
		}
		declared[param] = true
		p.Params = append(p.Params, param)
	}
	if len(p.Params) > progress.MaxParams {
		errs = append(errs, fmt.Errorf("params: %d declared; the limit is %d", len(p.Params), progress.MaxParams))
	}
	if y.MaxAttempts != nil {
		p.MaxAttempts = *y.MaxAttempts
		if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttemptsLimit {
			errs = append(errs, fmt.Errorf("max_attempts must be from 1 (no retry) to %d, got %d", MaxAttemptsLimit, p.MaxAttempts))
		}
	}
	switch {
	case len(y.Stages) == 0:
		errs = append(errs, errors.New("stages: a pipeline needs at least one stage"))
	case len(y.Stages) > progress.MaxStages:
		errs = append(errs, fmt.Errorf("stages: %d declared; the limit is %d", len(y.Stages), progress.MaxStages))
	}
	seen := map[string]bool{}
	for i, sy := range y.Stages {
		st, serrs := buildStage(sy, declared)
		where := fmt.Sprintf("stage %d", i+1)
		if sy.Name != "" {
			where = fmt.Sprintf("stage %d (%s)", i+1, sy.Name)
		}
		if sy.Name != "" && seen[sy.Name] {
			serrs = append(serrs, errors.New("name: another stage has this name; stage names must be unique"))
		}
		seen[sy.Name] = true
		for _, e := range serrs {
			errs = append(errs, fmt.Errorf("%s: %w", where, e))
		}
		p.Stages = append(p.Stages, st)
	}
	return p, errs
}

func buildStage(y stageYAML, declared map[string]bool) (Stage, []error) {
	var errs []error
	st := Stage{Name: y.Name, Weight: 1, Run: y.Run, timeoutText: y.Timeout}
	if err := progress.CheckName("stage name", y.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if y.Weight != nil {
		st.Weight = *y.Weight
		if math.IsNaN(st.Weight) || math.IsInf(st.Weight, 0) || st.Weight <= 0 {
			errs = append(errs, fmt.Errorf("weight must be a finite number > 0, got %v", st.Weight))
		}
	}
	if len(y.Run) == 0 || y.Run[0] == "" {
		errs = append(errs, errors.New("run: needs the command to run as a list, such as [\"my-tool\", \"--in\", \"{{input}}\"]"))
	}
	for _, arg := range y.Run {
		for _, m := range placeholder.FindAllStringSubmatch(arg, -1) {
			if !declared[m[1]] {
				errs = append(errs, fmt.Errorf("run: {{%s}} is not a declared param; add it to the pipeline's params", m[1]))
			}
		}
		if strings.IndexByte(arg, 0) >= 0 {
			errs = append(errs, errors.New("run: an argument contains a NUL byte"))
		}
	}
	if y.Timeout != "" {
		d, err := time.ParseDuration(y.Timeout)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("timeout %q is not a duration such as 90s, 10m or 2h", y.Timeout))
		case d <= 0:
			errs = append(errs, fmt.Errorf("timeout must be positive, got %q (leave it out for no timeout)", y.Timeout))
		default:
			st.Timeout = d
		}
	}
	return st, errs
}

// Get returns the pipeline called name.
func (ps *Pipelines) Get(name string) (*Pipeline, bool) {
	p, ok := ps.byName[name]
	return p, ok
}

// Names returns the pipeline names, sorted.
func (ps *Pipelines) Names() []string { return slices.Clone(ps.names) }

// Info describes the pipelines for callers, sorted by name: params and
// stage weights, not the commands.
func (ps *Pipelines) Info() []jobs.PipelineInfo {
	out := make([]jobs.PipelineInfo, 0, len(ps.names))
	for _, name := range ps.names {
		p := ps.byName[name]
		info := jobs.PipelineInfo{Name: p.Name, Description: p.Description,
			Params: slices.Clone(p.Params), Stages: make([]jobs.PipelineStageInfo, len(p.Stages))}
		if info.Params == nil {
			info.Params = []string{}
		}
		for i, st := range p.Stages {
			info.Stages[i] = jobs.PipelineStageInfo{Name: st.Name, Weight: st.Weight}
		}
		out = append(out, info)
	}
	return out
}

// Source is the file the pipelines came from ("built-in" for the demo).
func (ps *Pipelines) Source() string { return ps.source }

// lookup returns the pipeline called name or a CodeUnknownPipeline error
// that lists the ones there are.
func (ps *Pipelines) lookup(name string) (*Pipeline, error) {
	if p, ok := ps.byName[name]; ok {
		return p, nil
	}
	return nil, &progress.Error{Code: jobs.CodeUnknownPipeline,
		Message: fmt.Sprintf("pipeline %q is not defined; this server has: %s", name, strings.Join(ps.names, ", "))}
}

// CheckParams returns a CodeInvalidParam error unless params holds exactly
// the pipeline's declared params.
func (p *Pipeline) CheckParams(params map[string]string) error {
	var undeclared []string
	for k := range params {
		if !slices.Contains(p.Params, k) {
			undeclared = append(undeclared, k)
		}
	}
	if len(undeclared) > 0 {
		slices.Sort(undeclared)
		allowed := "it takes none"
		if len(p.Params) > 0 {
			allowed = "it takes: " + strings.Join(p.Params, ", ")
		}
		return &progress.Error{Code: jobs.CodeInvalidParam,
			Message: fmt.Sprintf("pipeline %s does not declare param %s; %s", p.Name, strings.Join(undeclared, ", "), allowed)}
	}
	var missing []string
	for _, k := range p.Params {
		if _, ok := params[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return &progress.Error{Code: jobs.CodeInvalidParam,
			Message: fmt.Sprintf("pipeline %s needs param %s", p.Name, strings.Join(missing, ", "))}
	}
	return nil
}

// StageSpecs returns the stages a job of p has.
func (p *Pipeline) StageSpecs() []progress.StageSpec {
	specs := make([]progress.StageSpec, len(p.Stages))
	for i, st := range p.Stages {
		w := st.Weight
		specs[i] = progress.StageSpec{Name: st.Name, Weight: &w}
	}
	return specs
}

// Argv returns the argv of stage i with params substituted. A value is
// inserted byte for byte, in one pass: a value that looks like a
// placeholder, or holds quotes, ';', '$(…)' or newlines, stays exactly
// that, because no shell ever reads it.
func (p *Pipeline) Argv(i int, params map[string]string) ([]string, error) {
	if err := p.CheckParams(params); err != nil {
		return nil, err
	}
	out := make([]string, len(p.Stages[i].Run))
	for j, arg := range p.Stages[i].Run {
		out[j] = placeholder.ReplaceAllStringFunc(arg, func(m string) string {
			return params[placeholder.FindStringSubmatch(m)[1]]
		})
	}
	return out, nil
}

// timeoutString is how messages name a stage's timeout.
func (st *Stage) timeoutString() string {
	if st.timeoutText != "" {
		return st.timeoutText
	}
	return st.Timeout.String()
}

// DemoPipelines is what a server without --pipelines runs: one pipeline,
// "demo", three stages of simulated work over about seven seconds, each
// printing progress in one of the forms a real command may use (NN%, a
// JSON object, N/M). It needs only sh and sleep.
func DemoPipelines() *Pipelines {
	p := &Pipeline{
		Name:        "demo",
		Description: "Built-in demo: three stages of simulated work, about 7 seconds. Start the server with --pipelines FILE to run real commands.",
		MaxAttempts: 1,
		Stages: []Stage{
			{Name: "demo-download", Weight: 1, Timeout: time.Minute, Run: []string{"sh", "-c",
				`i=0; while [ $i -le 100 ]; do echo "simulated download $i%"; i=$((i+10)); sleep 0.15; done`}},
			{Name: "demo-process", Weight: 4, Timeout: time.Minute, Run: []string{"sh", "-c",
				`n=20; i=1; while [ $i -le $n ]; do sleep 0.2; printf '{"current": %d, "total": %d, "message": "demo: simulated item %d of %d"}\n' $i $n $i $n; i=$((i+1)); done`}},
			{Name: "demo-upload", Weight: 1, Timeout: time.Minute, Run: []string{"sh", "-c",
				`n=5; i=0; while [ $i -le $n ]; do echo "demo: simulated upload part $i/$n"; i=$((i+1)); sleep 0.2; done`}},
		},
	}
	return &Pipelines{source: "built-in", byName: map[string]*Pipeline{"demo": p}, names: []string{"demo"}}
}
