package auth

import (
	"fmt"
	"slices"
	"strings"

	"github.com/progressd/progressd/internal/progress"
)

// LogsChannel carries a job's log lines (SPEC.md part two, "Log lines").
const LogsChannel ChannelKind = "logs"

// MaxScopeEntries bounds a token's scope: a token travels in every
// request, and a backend that needs more should scope by tag: or
// project: instead.
const MaxScopeEntries = 64

// Scope is what a scoped token may open (SPEC.md part two, "Scoped
// tokens"): entries "job:<id>", "children:<id>", "logs:<id>", "tag:<t>"
// and "project:<p>". Every entry names one thing literally: there are no
// wildcards, so "project:*" is refused rather than read as "every
// project", and user: is refused (a scoped token is narrower than its
// user). A Scope never widens its user's rights: it selects among the
// jobs the user could see anyway (Principal.CanSee checks ownership
// first). It is immutable once parsed, so principals share it.
type Scope struct {
	names    []string        // the entries, as given (deduplicated)
	channels map[string]bool // every entry, as a channel name
	jobs     map[string]bool // job:<id>
	children map[string]bool // children:<id>: jobs whose parent is id
	logs     map[string]bool // logs:<id>
	tags     map[string]bool // tag:<t>
	projects map[string]bool // project:<p>
}

// ParseScope checks a scope's entries and returns the Scope they name.
// An empty list is a valid scope that allows nothing.
func ParseScope(entries []string) (*Scope, error) {
	if len(entries) > MaxScopeEntries {
		return nil, fmt.Errorf("the scope has %d entries; at most %d (scope by tag: or project: to cover many jobs)", len(entries), MaxScopeEntries)
	}
	s := &Scope{
		channels: map[string]bool{}, jobs: map[string]bool{}, children: map[string]bool{}, logs: map[string]bool{},
		tags: map[string]bool{}, projects: map[string]bool{},
	}
	for _, e := range entries {
		if strings.Contains(e, "*") {
			return nil, fmt.Errorf("scope entry %q: a scope names things literally and has no wildcards; name each job, tag or project", e)
		}
		kind, key, err := parseScopeEntry(e)
		if err != nil {
			return nil, err
		}
		if s.channels[e] {
			continue
		}
		s.channels[e] = true
		s.names = append(s.names, e)
		switch kind {
		case JobChannel:
			s.jobs[key] = true
		case ChildrenChannel:
			s.children[key] = true
		case LogsChannel:
			s.logs[key] = true
		case TagChannel:
			s.tags[key] = true
		case ProjectChannel:
			s.projects[key] = true
		}
	}
	return s, nil
}

// parseScopeEntry is ParseChannel for the kinds a scope may name.
func parseScopeEntry(e string) (ChannelKind, string, error) {
	kind, key, ok := strings.Cut(e, ":")
	if ok && ChannelKind(kind) == LogsChannel {
		if err := progress.CheckName("logs", key); err != nil {
			return "", "", fmt.Errorf("scope entry %q: %s", e, err.(*progress.Error).Message)
		}
		return LogsChannel, key, nil
	}
	k, key, err := ParseChannel(e)
	switch {
	case err != nil:
		return "", "", fmt.Errorf("scope entry %q: %v (a scope takes job:, children:, logs:, tag: and project: entries)", e, err)
	case k == UserChannel:
		return "", "", fmt.Errorf("scope entry %q: a scope cannot name user:; an unscoped token is the user's whole view", e)
	}
	return k, key, nil
}

// Names returns the scope's entries.
func (s *Scope) Names() []string { return slices.Clone(s.names) }

// byJobFields reports whether some entry selects jobs by a field of the
// job (parent, tag, project) rather than by id.
func (s *Scope) byJobFields() bool {
	return len(s.children) > 0 || len(s.tags) > 0 || len(s.projects) > 0
}

// contains reports whether the scope names job snap: by id, by parent,
// by one of its tags or by its project.
func (s *Scope) contains(snap progress.Snapshot) bool {
	if s.jobs[snap.JobID] || s.projects[snap.Project] || (snap.ParentID != "" && s.children[snap.ParentID]) {
		return true
	}
	for _, t := range snap.Tags {
		if s.tags[t] {
			return true
		}
	}
	return false
}
