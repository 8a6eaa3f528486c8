package protocol_test

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/progressd/progressd/internal/protocol"
)

var update = flag.Bool("update", false, "rewrite "+protocol.TypeScriptPath+" from the tables")

// TestTypeScriptCopyMatches holds the TypeScript client's tables to the Go
// ones: after a change to a table, run `go test ./internal/protocol
// -update` and rebuild web/dist.
func TestTypeScriptCopyMatches(t *testing.T) {
	path := filepath.Join("..", "..", filepath.FromSlash(protocol.TypeScriptPath))
	want := protocol.TypeScript()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test ./internal/protocol -update", err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the tables of package protocol: run `go test ./internal/protocol -update`, then (cd web && npm run build)\n got:\n%s\nwant:\n%s",
			protocol.TypeScriptPath, got, want)
	}
}

// TestTablesAreWellFormed checks what the clients rely on: one row per
// code, a name for every row, a delay only where reconnecting is allowed.
func TestTablesAreWellFormed(t *testing.T) {
	codes, names := map[int]bool{}, map[string]bool{}
	for _, c := range protocol.Closes {
		if codes[c.Code] || names[c.Name] {
			t.Errorf("close %d %q: code or name repeated", c.Code, c.Name)
		}
		codes[c.Code], names[c.Name] = true, true
		if c.Name == "" || c.Meaning == "" {
			t.Errorf("close %d: name and meaning are needed", c.Code)
		}
		if c.Code < 1000 || c.Code > 4999 {
			t.Errorf("close %d: not a WebSocket close code", c.Code)
		}
		if !c.Reconnect && c.MinDelay != 0 {
			t.Errorf("close %d: a delay means nothing when clients do not reconnect", c.Code)
		}
		if got, ok := protocol.CloseOf(c.Code); !ok || got != c {
			t.Errorf("CloseOf(%d) = %v, %v", c.Code, got, ok)
		}
	}
	if _, ok := protocol.CloseOf(1000); ok {
		t.Error("CloseOf(1000) found a row: the server never closes with 1000, clients treat it as a dropped connection")
	}
	errs := map[string]bool{}
	for _, e := range protocol.Errors {
		if errs[e.Code] || e.Code == "" || e.Meaning == "" || strings.ToLower(e.Code) != e.Code {
			t.Errorf("error %q: repeated, empty or not lower case", e.Code)
		}
		errs[e.Code] = true
	}
}

// TestChannelsAreWellFormed: one row per kind, lower case, with a key and
// a meaning, and ChannelForms names each.
func TestChannelsAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range protocol.Channels {
		if seen[c.Kind] || c.Kind == "" || strings.ToLower(c.Kind) != c.Kind || strings.Contains(c.Kind, ":") || c.Key == "" || c.Meaning == "" {
			t.Errorf("channel %+v: repeated, empty, not lower case, or without key or meaning", c)
		}
		seen[c.Kind] = true
		if got, ok := protocol.ChannelOf(c.Kind); !ok || got != c {
			t.Errorf("ChannelOf(%q) = %v, %v", c.Kind, got, ok)
		}
		if !strings.Contains(protocol.ChannelForms(), c.Kind+":<"+c.Key+">") {
			t.Errorf("ChannelForms() = %q lacks %s", protocol.ChannelForms(), c.Kind)
		}
	}
	if _, ok := protocol.ChannelOf("jobs"); ok {
		t.Error("ChannelOf(jobs) found a row")
	}
}

// TestDescribeNamesEveryCode checks the OpenAPI paragraph lists each code.
func TestDescribeNamesEveryCode(t *testing.T) {
	d := protocol.Describe()
	for _, c := range protocol.Closes {
		if !strings.Contains(d, "`"+strconv.Itoa(c.Code)+"` "+c.Name) {
			t.Errorf("Describe() lacks close %d %s:\n%s", c.Code, c.Name, d)
		}
	}
	for _, e := range protocol.Errors {
		if !strings.Contains(d, "`"+e.Code+"`") {
			t.Errorf("Describe() lacks error %s", e.Code)
		}
	}
}
