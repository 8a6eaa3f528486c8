package storetest

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// groupTests are the suite's tests of parents, children and the project
// list; Run runs them with the others.
var groupTests = []struct {
	name string
	fn   func(t *testing.T, b *bundle)
}{
	{"ChildTotalsFollowStateChanges", testChildTotals},
	{"ChildOfMissingOrFinishedParent", testBadParent},
	{"ChildTotalsConcurrentWriters", testChildTotalsConcurrent},
	{"DirtyGroups", testDirtyGroups},
	{"Projects", testProjects},
	{"ProjectsPaging", testProjectsPaging},
	{"GroupsSurviveReopen", testGroupsReopen},
	{"ListByParentAndTag", testListByParentAndTag},
}

func testListByParentAndTag(t *testing.T, b *bundle) {
	p1, p2 := b.job(t, "p", "alice"), b.job(t, "p", "alice")
	b.create(t, p1, p2)
	var kids []progress.Snapshot
	for range 3 {
		kids = append(kids, b.child(t, p1, 1)) // tagged batch:1
	}
	other := b.child(t, p2, 1)
	other.Tags = []string{"other"}
	b.create(t, kids...)
	b.create(t, other)
	b.save(t, to(t, kids[0], progress.Succeeded, 0))
	ids := func(q progress.Query) []string {
		all, _ := pages(t, b.store, q)
		return all
	}
	want := []string{kids[2].JobID, kids[1].JobID, kids[0].JobID}
	if got := ids(progress.Query{Parent: p1.JobID, Limit: 2}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("children of p1 = %v, want %v", got, want)
	}
	active := progress.Query{Parent: p1.JobID, States: []progress.State{progress.Queued, progress.Running}}
	if got := ids(active); fmt.Sprint(got) != fmt.Sprint(want[:2]) {
		t.Fatalf("active children of p1 = %v, want %v", got, want[:2])
	}
	if got := ids(progress.Query{Tag: "batch:1", Limit: 2}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tag batch:1 = %v, want %v", got, want)
	}
	if got := ids(progress.Query{Tag: "batch:1", Owner: "bob"}); len(got) != 0 {
		t.Fatalf("bob's batch:1 = %v", got)
	}
	if got := ids(progress.Query{Tag: "other", Parent: p2.JobID}); fmt.Sprint(got) != fmt.Sprint([]string{other.JobID}) {
		t.Fatalf("tag other under p2 = %v", got)
	}
	if got := ids(progress.Query{Tag: "nope"}); len(got) != 0 {
		t.Fatalf("unknown tag = %v", got)
	}
}

// child returns a new child snapshot of parent with the given weight.
func (b *bundle) child(t *testing.T, parent progress.Snapshot, weight float64) progress.Snapshot {
	t.Helper()
	root := parent.RootID
	if root == "" {
		root = parent.JobID
	}
	s, err := progress.New(progress.NewJob{ID: b.ids.next(), Project: parent.Project, Owner: parent.Owner,
		ParentID: parent.JobID, RootID: root, Weight: &weight, Tags: []string{"batch:1"}}, b.base)
	if err != nil {
		t.Fatalf("progress.New: %v", err)
	}
	return s
}

// to returns s moved to state st (at progress p for running), seq one higher.
func to(t *testing.T, s progress.Snapshot, st progress.State, p float64) progress.Snapshot {
	t.Helper()
	r := progress.Report{State: &st}
	if st == progress.Running {
		r.Progress = &p
	}
	if st == progress.Failed || st == progress.Canceled {
		msg := "x"
		r.Error = &msg
	}
	next, err := progress.Apply(s, r, s.UpdatedAt.Add(time.Second))
	if err != nil {
		t.Fatalf("Apply %s: %v", st, err)
	}
	return next
}

func (b *bundle) totals(t *testing.T, parent string) progress.ChildTotals {
	t.Helper()
	tot, err := b.store.ChildTotals(t.Context(), parent)
	if err != nil {
		t.Fatalf("ChildTotals: %v", err)
	}
	return tot
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func testChildTotals(t *testing.T, b *bundle) {
	parent := b.job(t, "p", "alice")
	b.create(t, parent)
	if tot := b.totals(t, parent.JobID); tot != (progress.ChildTotals{}) {
		t.Fatalf("a job without children has totals %+v", tot)
	}
	c1, c2, c3 := b.child(t, parent, 1), b.child(t, parent, 2), b.child(t, parent, 3)
	b.create(t, c1, c2, c3)
	tot := b.totals(t, parent.JobID)
	if tot.Counts != (progress.Children{Total: 3, Queued: 3}) || tot.WeightSum != 6 || tot.Version != 3 {
		t.Fatalf("after three creates: %+v", tot)
	}
	r1, r2 := to(t, c1, progress.Running, 0.5), to(t, c2, progress.Running, 0.25)
	b.save(t, r1, r2)
	// Progress within a state moves no count; a stale save moves nothing.
	b.save(t, report(t, r1, 0.75, "more"), c3)
	tot = b.totals(t, parent.JobID)
	if tot.Counts != (progress.Children{Total: 3, Queued: 1, Running: 2}) || tot.Version != 5 {
		t.Fatalf("after two start: %+v", tot)
	}
	live, err := b.store.ActiveChildProgress(t.Context(), parent.JobID)
	if err != nil || !near(live, 1*0.75+2*0.25) {
		t.Fatalf("ActiveChildProgress = %v, %v; want 1.25", live, err)
	}
	b.save(t, to(t, report(t, r1, 0.75, "more"), progress.Succeeded, 0), to(t, r2, progress.Failed, 0))
	b.save(t, to(t, c3, progress.Canceled, 0)) // queued straight to canceled
	tot = b.totals(t, parent.JobID)
	want := progress.Children{Total: 3, Succeeded: 1, Failed: 1, Canceled: 1}
	if tot.Counts != want || !near(tot.DoneWP, 1*1+2*0.25+0) || tot.Version != 8 {
		t.Fatalf("all terminal: %+v, want %+v and DoneWP 1.5", tot, want)
	}
	if live, _ := b.store.ActiveChildProgress(t.Context(), parent.JobID); live != 0 {
		t.Fatalf("ActiveChildProgress with no active child = %v", live)
	}
}

func testBadParent(t *testing.T, b *bundle) {
	parent := b.job(t, "p", "alice")
	b.create(t, parent)
	ghost := parent.Clone()
	ghost.JobID = b.ids.next()
	orphan := b.child(t, ghost, 1)
	if err := b.store.Create(t.Context(), orphan); !errors.Is(err, store.ErrParentNotFound) {
		t.Fatalf("Create under a missing parent = %v, want ErrParentNotFound", err)
	}
	b.save(t, to(t, parent, progress.Succeeded, 0))
	before := b.projects(t, "")
	late := b.child(t, parent, 1)
	if err := b.store.Create(t.Context(), late); !errors.Is(err, store.ErrParentFinished) {
		t.Fatalf("Create under a finished parent = %v, want ErrParentFinished", err)
	}
	for _, id := range []string{orphan.JobID, late.JobID} {
		if _, err := b.store.Get(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused child was stored: %v", err)
		}
	}
	if tot := b.totals(t, parent.JobID); tot != (progress.ChildTotals{}) {
		t.Fatalf("a refused child moved the parent's totals: %+v", tot)
	}
	if after := b.projects(t, ""); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused child moved the project counts: %+v → %+v", before, after)
	}
}

// testChildTotalsConcurrentWriters moves children of one parent through
// their states from many goroutines at once, as nodes sharing a database
// do: the totals must come out exact.
func testChildTotalsConcurrent(t *testing.T, b *bundle) {
	const writers, each = 8, 12
	parent := b.job(t, "p", "alice")
	b.create(t, parent)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range each {
				c := b.child(t, parent, 1)
				if err := b.store.Create(t.Context(), c); err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				r := to(t, c, progress.Running, 0.5)
				final := progress.Succeeded
				if (w+k)%3 == 0 {
					final = progress.Failed
				}
				for _, s := range []progress.Snapshot{r, to(t, r, final, 0)} {
					if err := b.store.Save(t.Context(), []progress.Snapshot{s}); err != nil {
						t.Errorf("Save: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	failed := 0
	for w := range writers {
		for k := range each {
			if (w+k)%3 == 0 {
				failed++
			}
		}
	}
	tot := b.totals(t, parent.JobID)
	n := writers * each
	want := progress.Children{Total: n, Succeeded: n - failed, Failed: failed}
	if tot.Counts != want || tot.Version != int64(3*n) || !near(tot.DoneWP, float64(n-failed)+0.5*float64(failed)) {
		t.Fatalf("totals %+v, want %+v version %d", tot, want, 3*n)
	}
}

func testDirtyGroups(t *testing.T, b *bundle) {
	parent := b.job(t, "p", "alice")
	b.create(t, parent)
	b.create(t, b.child(t, parent, 1))
	future := time.Now().Add(time.Hour)
	marks, err := b.store.DirtyGroups(t.Context(), future, 10)
	if err != nil || len(marks) != 1 || marks[0] != (store.GroupMark{Parent: parent.JobID, Version: 1}) {
		t.Fatalf("DirtyGroups = %+v, %v", marks, err)
	}
	if marks, _ := b.store.DirtyGroups(t.Context(), time.Now().Add(-time.Hour), 10); len(marks) != 0 {
		t.Fatalf("DirtyGroups before the change = %+v", marks)
	}
	// A clean at an older version leaves it dirty: a change came since.
	b.create(t, b.child(t, parent, 1))
	if err := b.store.CleanGroup(t.Context(), parent.JobID, 1); err != nil {
		t.Fatal(err)
	}
	if marks, _ := b.store.DirtyGroups(t.Context(), future, 10); len(marks) != 1 || marks[0].Version != 2 {
		t.Fatalf("after a stale clean: %+v", marks)
	}
	if err := b.store.CleanGroup(t.Context(), parent.JobID, 2); err != nil {
		t.Fatal(err)
	}
	if marks, _ := b.store.DirtyGroups(t.Context(), future, 10); len(marks) != 0 {
		t.Fatalf("after the clean: %+v", marks)
	}
}

func (b *bundle) projects(t *testing.T, owner string) []progress.ProjectSummary {
	t.Helper()
	var all []progress.ProjectSummary
	q := progress.ProjectQuery{Owner: owner, Limit: 2}
	for range 100 {
		page, next, err := b.store.Projects(t.Context(), q)
		if err != nil {
			t.Fatalf("Projects: %v", err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		q.Cursor = next
	}
	t.Fatal("Projects never ended")
	return nil
}

// at returns s with updated_at moved to base+ms (seq one higher).
func (b *bundle) at(s progress.Snapshot, ms int) progress.Snapshot {
	s = s.Clone()
	s.Seq++
	s.UpdatedAt = progress.At(b.base.Add(time.Duration(ms) * time.Millisecond))
	return s
}

func testProjects(t *testing.T, b *bundle) {
	a1, a2, bob := b.job(t, "x", "alice"), b.job(t, "y", "alice"), b.job(t, "x", "bob")
	a1.UpdatedAt = progress.At(b.base.Add(1 * time.Second))
	a2.UpdatedAt = progress.At(b.base.Add(2 * time.Second))
	bob.UpdatedAt = progress.At(b.base.Add(3 * time.Second))
	b.create(t, a1, a2, bob)
	// Activity without a state change (a report) moves x to the top for
	// alice; bob's job finishing moves x for everyone.
	b.save(t, b.at(to(t, a1, progress.Running, 0.1), 5000))
	b.save(t, b.at(to(t, bob, progress.Succeeded, 0), 4000))
	got := fmt.Sprint(b.projects(t, "alice"))
	want := fmt.Sprint([]progress.ProjectSummary{
		{Project: "x", Jobs: progress.JobCounts{Running: 1}, LastActivityAt: progress.At(b.base.Add(5 * time.Second))},
		{Project: "y", Jobs: progress.JobCounts{Queued: 1}, LastActivityAt: progress.At(b.base.Add(2 * time.Second))},
	})
	if got != want {
		t.Fatalf("alice's projects:\n got %s\nwant %s", got, want)
	}
	got = fmt.Sprint(b.projects(t, ""))
	want = fmt.Sprint([]progress.ProjectSummary{
		{Project: "x", Jobs: progress.JobCounts{Running: 1, Succeeded: 1}, LastActivityAt: progress.At(b.base.Add(5 * time.Second))},
		{Project: "y", Jobs: progress.JobCounts{Queued: 1}, LastActivityAt: progress.At(b.base.Add(2 * time.Second))},
	})
	if got != want {
		t.Fatalf("all projects:\n got %s\nwant %s", got, want)
	}
	if _, _, err := b.store.Projects(t.Context(), progress.ProjectQuery{Cursor: "nonsense"}); !errors.Is(err, progress.ErrBadCursor) {
		t.Fatalf("a bad cursor = %v", err)
	}
}

func testProjectsPaging(t *testing.T, b *bundle) {
	const n = 7
	for i := range n {
		s := b.job(t, fmt.Sprintf("p%d", i), "alice")
		s.UpdatedAt = progress.At(b.base.Add(time.Duration(i%3) * time.Second)) // ties in activity
		b.create(t, s)
	}
	all := b.projects(t, "alice")
	seen := map[string]bool{}
	for i, p := range all {
		if seen[p.Project] {
			t.Fatalf("project %s listed twice", p.Project)
		}
		seen[p.Project] = true
		if i > 0 && p.LastActivityAt.After(all[i-1].LastActivityAt.Time) {
			t.Fatalf("not newest first: %v", all)
		}
	}
	if len(all) != n {
		t.Fatalf("%d projects paged, want %d", len(all), n)
	}
}

func testGroupsReopen(t *testing.T, b *bundle) {
	parent := b.job(t, "p", "alice")
	b.create(t, parent)
	c := b.child(t, parent, 2)
	b.create(t, c)
	b.save(t, to(t, c, progress.Running, 0.5))
	before, projects := b.totals(t, parent.JobID), b.projects(t, "")
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	b.store = b.open(t)
	if after := b.totals(t, parent.JobID); after != before {
		t.Fatalf("totals after reopen %+v, want %+v", after, before)
	}
	if got := b.projects(t, ""); fmt.Sprint(got) != fmt.Sprint(projects) {
		t.Fatalf("projects after reopen %v, want %v", got, projects)
	}
	got := b.get(t, c.JobID)
	if got.ParentID != parent.JobID || got.RootID != parent.JobID || got.Weight != 2 || len(got.Tags) != 1 {
		t.Fatalf("the child's group fields did not survive: %+v", got)
	}
}
