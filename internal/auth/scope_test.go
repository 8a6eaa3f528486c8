package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/progressd/progressd/internal/progress"
)

func mustScope(t *testing.T, entries ...string) *Scope {
	t.Helper()
	s, err := ParseScope(entries)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameScope(a, b *Scope) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.names, b.names)
}

// TestScopedTokens mints and verifies scoped tokens, and refuses the bad
// ones (SPEC.md part two, "Scoped tokens"): wildcards, user:, unknown
// kinds, admin with a scope, an empty scope at mint.
func TestScopedTokens(t *testing.T) {
	now := time.Now()
	a := New("0123456789abcdef")
	tok, err := MintWith("0123456789abcdef", "alice", Options{Scope: []string{"job:j1", "children:p", "logs:j1", "tag:t-1", "project:web", "job:j1"}, ReadOnly: true}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Scoped() || !p.ReadOnly || p.Admin || !slices.Equal(p.Scope.Names(), []string{"job:j1", "children:p", "logs:j1", "tag:t-1", "project:web"}) {
		t.Fatalf("verified %+v %v", p, p.Scope.Names())
	}
	for _, bad := range [][]string{{"project:*"}, {"job:*"}, {"user:alice"}, {"queue:x"}, {"job:"}, {"tag:has space"}, {"nokind"}} {
		if _, err := MintWith("0123456789abcdef", "alice", Options{Scope: bad}, time.Hour, now); err == nil {
			t.Errorf("minted scope %q", bad)
		}
		// A token made elsewhere with the entry is refused on use, too.
		forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "alice", "scope": bad, "exp": now.Add(time.Hour).Unix()}).SignedString([]byte("0123456789abcdef"))
		if _, err := a.Verify(forged); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("verified scope %q: %v", bad, err)
		}
	}
	if _, err := MintWith("0123456789abcdef", "alice", Options{Scope: []string{}}, time.Hour, now); err == nil || !strings.Contains(err.Error(), "empty scope") {
		t.Errorf("minted an empty scope: %v", err)
	}
	if _, err := MintWith("0123456789abcdef", "alice", Options{Admin: true, Scope: []string{"job:j"}}, time.Hour, now); err == nil {
		t.Error("minted a scoped admin token")
	}
	for name, claims := range map[string]jwt.MapClaims{
		"admin with scope":   {"sub": "a", "admin": true, "scope": []string{"job:j"}},
		"job and scope":      {"sub": "a", "job": "j", "scope": []string{"job:j"}},
		"too many entries":   {"sub": "a", "scope": slices.Repeat([]string{"job:j"}, MaxScopeEntries+1)},
		"scope not a list":   {"sub": "a", "scope": "job:j"},
		"read_only not bool": {"sub": "a", "read_only": "yes"},
	} {
		claims["exp"] = now.Add(time.Hour).Unix()
		forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("0123456789abcdef"))
		if _, err := a.Verify(forged); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: verified: %v", name, err)
		}
	}
	// An empty scope in a token made elsewhere is valid and allows nothing:
	// it is never read as "no scope".
	empty, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "scope": []string{}, "exp": now.Add(time.Hour).Unix()}).SignedString([]byte("0123456789abcdef"))
	p, err = a.Verify(empty)
	if err != nil {
		t.Fatal(err)
	}
	mine := progress.Snapshot{JobID: "j1", Owner: "alice", Project: "web"}
	if !p.Scoped() || p.CanSee(mine) || p.Covers("j1") || p.MaySubscribe("job:j1") || p.ManyJobs() || !strings.Contains(p.ScopeNote(), "empty scope") {
		t.Errorf("an empty scope allows something: %+v", p)
	}
}

// TestScopeRules checks what a scoped principal may see, write and
// subscribe to: what its scope names, and only of its own jobs.
func TestScopeRules(t *testing.T) {
	p := Principal{Subject: "alice", Scope: mustScope(t, "job:j1", "children:p1", "tag:blue", "project:web")}
	ro := p
	ro.ReadOnly = true
	for _, tc := range []struct {
		name string
		job  progress.Snapshot
		want bool
	}{
		{"named job", progress.Snapshot{JobID: "j1", Owner: "alice", Project: "x"}, true},
		{"child of a named parent", progress.Snapshot{JobID: "c", ParentID: "p1", Owner: "alice", Project: "x"}, true},
		{"the named parent itself", progress.Snapshot{JobID: "p1", Owner: "alice", Project: "x"}, false},
		{"named tag", progress.Snapshot{JobID: "k", Tags: []string{"red", "blue"}, Owner: "alice", Project: "x"}, true},
		{"named project", progress.Snapshot{JobID: "k", Owner: "alice", Project: "web"}, true},
		{"nothing named", progress.Snapshot{JobID: "k", Owner: "alice", Project: "x", Tags: []string{"red"}}, false},
		{"named job of another user", progress.Snapshot{JobID: "j1", Owner: "bob", Project: "web"}, false},
		{"named tag of another user", progress.Snapshot{JobID: "k", Tags: []string{"blue"}, Owner: "bob"}, false},
	} {
		if got := p.CanSee(tc.job); got != tc.want {
			t.Errorf("%s: CanSee = %v, want %v", tc.name, got, tc.want)
		}
		if got := p.CanWrite(tc.job); got != tc.want {
			t.Errorf("%s: CanWrite = %v, want %v", tc.name, got, tc.want)
		}
		if ro.CanWrite(tc.job) {
			t.Errorf("%s: a read-only principal may write", tc.name)
		}
	}
	for ch, want := range map[string]bool{
		"job:j1": true, "children:p1": true, "tag:blue": true, "project:web": true,
		"job:p1": false, "logs:j1": false, "project:other": false, "user:alice": false, "tag:red": false,
	} {
		if got := p.MaySubscribe(ch); got != want {
			t.Errorf("MaySubscribe(%s) = %v, want %v", ch, got, want)
		}
	}
	if p.MaySubscribeUser("alice") || p.ManyJobs() {
		t.Error("a scoped principal may subscribe to user: or create jobs")
	}
	jobsOnly := Principal{Subject: "alice", Scope: mustScope(t, "job:j1")}
	if !jobsOnly.Covers("j1") || jobsOnly.Covers("j2") || !p.Covers("j2") {
		t.Error("Covers: only named ids without field entries; any id with them")
	}
	if !strings.Contains(ro.ScopeNote(), "read and watch") || !strings.Contains(p.ScopeNote(), "project:web") {
		t.Errorf("ScopeNote: %q / %q", ro.ScopeNote(), p.ScopeNote())
	}
}
