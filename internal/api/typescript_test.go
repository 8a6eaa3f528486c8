package api

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var updateTS = flag.Bool("update", false, "rewrite "+typeScriptPath+" from /openapi.json")

// typeScriptPath is the web client's copy of the wire types, from the
// repository root. web/test/openapi-types.ts holds the client's own types
// (JobSnapshot, LogLine, …) equal to it, so the shape has one source: the
// Go structs behind /openapi.json.
const typeScriptPath = "web/packages/client/src/openapi.gen.ts"

// typeScriptSchemas are the component schemas the web client reads or
// sends, in the order the file lists them.
var typeScriptSchemas = []string{
	"Snapshot", "Stage", "Children", "LogLine", "LogPage", "ProjectSummary", "JobCounts",
	"PipelineInfo", "PipelineStageInfo", "ErrorDetail", "BatchResult", "Report", "JobReport", "CreateInputBody", "StageSpec",
}

// TestTypeScriptTypesMatchOpenAPI renders the schemas above as TypeScript
// interfaces and compares them with the committed file: a field added to,
// removed from or retyped in a snapshot or request fails here until the
// file is regenerated (`go test ./internal/api -run TypeScript -update`),
// and then the web type check fails until the client's types follow.
func TestTypeScriptTypesMatchOpenAPI(t *testing.T) {
	mux := http.NewServeMux()
	New(mux, Config{Version: "test"})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Body)
	}
	var doc struct {
		Components struct {
			Schemas map[string]tsSchema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got, err := renderTypeScript(doc.Components.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", filepath.FromSlash(typeScriptPath))
	if *updateTS {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test ./internal/api -run TypeScript -update", err)
	}
	if string(want) != got {
		t.Fatalf("%s differs from /openapi.json: run `go test ./internal/api -run TypeScript -update`, make the types in web/packages/client/src follow (cd web && npm run typecheck says where), then (cd web && npm run build)\n got:\n%s", typeScriptPath, got)
	}
}

// tsSchema is the part of a JSON Schema the renderer reads.
type tsSchema struct {
	Ref                  string              `json:"$ref"`
	Type                 json.RawMessage     `json:"type"` // a name or a list of names
	Description          string              `json:"description"`
	Format               string              `json:"format"`
	Enum                 []any               `json:"enum"`
	Items                *tsSchema           `json:"items"`
	Properties           map[string]tsSchema `json:"properties"`
	Required             []string            `json:"required"`
	AdditionalProperties json.RawMessage     `json:"additionalProperties"`
}

func renderTypeScript(schemas map[string]tsSchema) (string, error) {
	var b strings.Builder
	b.WriteString("// Code generated from /openapi.json by `go test ./internal/api -run TypeScript -update`. DO NOT EDIT.\n")
	b.WriteString("// The wire types as the server describes them; web/test/openapi-types.ts holds the client's types equal to them.\n")
	for _, name := range typeScriptSchemas {
		s, ok := schemas[name]
		if !ok {
			return "", fmt.Errorf("/openapi.json has no schema %q: update typeScriptSchemas", name)
		}
		b.WriteString("\n")
		if s.Description != "" {
			fmt.Fprintf(&b, "/** %s */\n", tsComment(s.Description))
		}
		fmt.Fprintf(&b, "export interface %s {\n", name)
		required := map[string]bool{}
		for _, r := range s.Required {
			required[r] = true
		}
		keys := make([]string, 0, len(s.Properties))
		for k := range s.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := s.Properties[k]
			if p.Description != "" {
				fmt.Fprintf(&b, "  /** %s */\n", tsComment(p.Description))
			}
			opt := "?"
			if required[k] {
				opt = ""
			}
			ty, err := tsType(p)
			if err != nil {
				return "", fmt.Errorf("%s.%s: %w", name, k, err)
			}
			fmt.Fprintf(&b, "  %s%s: %s;\n", k, opt, ty)
		}
		b.WriteString("}\n")
	}
	return b.String(), nil
}

// tsType is the TypeScript type of a schema: $ref by name, scalars, arrays,
// maps, enums as unions, "null" in the type list as | null, and a schema
// with no type (a raw JSON value) as unknown.
func tsType(s tsSchema) (string, error) {
	if s.Ref != "" {
		return s.Ref[strings.LastIndex(s.Ref, "/")+1:], nil
	}
	var types []string
	if len(s.Type) > 0 {
		var one string
		if err := json.Unmarshal(s.Type, &one); err == nil {
			types = []string{one}
		} else if err := json.Unmarshal(s.Type, &types); err != nil {
			return "", fmt.Errorf("type %s: %w", s.Type, err)
		}
	}
	if len(types) == 0 {
		return "unknown", nil
	}
	var out []string
	for _, t := range types {
		switch t {
		case "null":
			continue
		case "string":
			if len(s.Enum) > 0 {
				for _, e := range s.Enum {
					out = append(out, strconv.Quote(fmt.Sprint(e)))
				}
				continue
			}
			out = append(out, "string")
		case "number", "integer":
			out = append(out, "number")
		case "boolean":
			out = append(out, "boolean")
		case "array":
			if s.Items == nil {
				out = append(out, "unknown[]")
				continue
			}
			item, err := tsType(*s.Items)
			if err != nil {
				return "", err
			}
			if strings.Contains(item, " ") {
				item = "(" + item + ")"
			}
			out = append(out, item+"[]")
		case "object":
			var extra tsSchema
			if len(s.AdditionalProperties) > 0 && json.Unmarshal(s.AdditionalProperties, &extra) == nil && len(extra.Type)+len(extra.Ref) > 0 {
				v, err := tsType(extra)
				if err != nil {
					return "", err
				}
				out = append(out, "Record<string, "+v+">")
				continue
			}
			out = append(out, "Record<string, unknown>")
		default:
			return "", fmt.Errorf("type %q has no TypeScript rendering here", t)
		}
	}
	for _, t := range types {
		if t == "null" {
			out = append(out, "null")
		}
	}
	return strings.Join(out, " | "), nil
}

// tsComment makes a description safe inside /** … */ on one line.
func tsComment(s string) string {
	s = strings.ReplaceAll(s, "*/", "* /")
	return strings.Join(strings.Fields(s), " ")
}
