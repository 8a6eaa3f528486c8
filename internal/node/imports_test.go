package node

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// module is the import path prefix of this repository's packages.
const module = "github.com/progressd/progressd/"

// forbidden lists the imports that would turn an arrow of the data flow
// (docs/architecture.md) around or let a reader depend on an
// implementation. A package name ending in "/..." stands for it and
// everything below it.
var forbidden = map[string][]string{
	// The HTTP API talks to the job service only; query types and the
	// not-found sentinel are in package progress.
	"internal/api": {"internal/store/...", "internal/snapshot/...", "internal/broker/...", "internal/gateway", "internal/orchestrator/...", "internal/node"},
	// The gateway reads jobs through its Jobs interface and hears updates
	// from the broker; it does not know who implements either.
	"internal/gateway": {"internal/jobs", "internal/snapshot/...", "internal/store/...", "internal/api", "internal/orchestrator/...", "internal/node", "internal/broker/redisbroker"},
	// The job service depends on the interfaces, never on an implementation.
	"internal/jobs": {"internal/store/sqlite", "internal/store/postgres", "internal/snapshot/redissnap", "internal/broker/redisbroker", "internal/gateway", "internal/api", "internal/node"},
	// The model is pure: it imports no other package of ours.
	"internal/progress": {"..."},
	// The public client speaks the wire protocol, not the server's internals.
	"client": {"internal/jobs", "internal/store/...", "internal/snapshot/...", "internal/broker/...", "internal/gateway", "internal/api", "internal/node"},
}

// TestImportGraphFlowsOneWay holds the import graph to the data-flow
// diagram: it fails when a package imports what its row above forbids, and
// when a package other than cmd/ and nodetest imports node (the one place
// parts are wired).
func TestImportGraphFlowsOneWay(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "web" || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		checked++
		for _, imp := range pkg.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if dep == "internal/node" && !strings.HasPrefix(rel, "cmd/") && rel != "internal/node/nodetest" {
				t.Errorf("%s imports internal/node: only cmd/ (and nodetest, for tests) may; wire parts in node and pass them in", rel)
			}
			for _, bad := range forbidden[rel] {
				if matches(bad, dep) {
					t.Errorf("%s imports %s, which docs/architecture.md's graph forbids: depend on the type in a lower package (progress, broker) or an interface instead", rel, dep)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked %d packages under %s; expected the whole module", checked, root)
	}
}

// matches reports whether import path dep is pattern or, for "x/...", x or
// below it ("..." alone matches everything).
func matches(pattern, dep string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return dep == base || strings.HasPrefix(dep, base+"/")
	}
	return dep == pattern
}
