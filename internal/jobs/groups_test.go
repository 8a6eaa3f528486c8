package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/testsvc"
)

func code(err error) string {
	var pe *progress.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return fmt.Sprint(err)
}

func mustCreate(t *testing.T, svc *jobs.Service, owner string, req jobs.CreateRequest) progress.Snapshot {
	t.Helper()
	s, err := svc.Create(context.Background(), owner, req)
	if err != nil {
		t.Fatalf("Create %+v: %v", req, err)
	}
	return s
}

func get(t *testing.T, svc *jobs.Service, id string) progress.Snapshot {
	t.Helper()
	s, err := svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreateChildRefusals(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, snapshot.MemoryOptions{})
	root := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p", ExpectedChildren: 3})
	// A chain root → l1 → l2 → l3 is as deep as jobs go.
	parent := root
	for range 3 {
		parent = mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	}
	finished := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p"})
	if _, err := svc.Report(ctx, finished.JobID, progress.Report{State: ptr(progress.Succeeded)}); err != nil {
		t.Fatal(err)
	}
	onlyAlice := func(s progress.Snapshot) bool { return s.Owner == "alice" }
	zero := 0.0
	testsvc.Eventually(t, 10*time.Second, "the root to count its child", func() bool {
		c := get(t, svc, root.JobID).Children
		return c != nil && c.Total == 1
	})
	before := get(t, svc, root.JobID)
	for _, tc := range []struct {
		name string
		req  jobs.CreateRequest
		code string
	}{
		{"unknown parent", jobs.CreateRequest{ParentID: "nope"}, progress.CodeParentNotFound},
		{"another user's parent", jobs.CreateRequest{ParentID: root.JobID, MaySee: func(s progress.Snapshot) bool { return s.Owner == "bob" }}, progress.CodeParentNotFound},
		{"depth 5", jobs.CreateRequest{ParentID: parent.JobID, MaySee: onlyAlice}, progress.CodeTooDeep},
		{"terminal parent", jobs.CreateRequest{ParentID: finished.JobID}, progress.CodeParentFinished},
		{"another project", jobs.CreateRequest{Project: "q", ParentID: root.JobID}, progress.CodeInvalidParent},
		{"weight without parent", jobs.CreateRequest{Project: "p", Weight: &zero}, progress.CodeInvalidWeight},
		{"weight 0", jobs.CreateRequest{ParentID: root.JobID, Weight: &zero}, progress.CodeInvalidWeight},
		{"expected -1", jobs.CreateRequest{Project: "p", ExpectedChildren: -1}, progress.CodeInvalidExpected},
		{"a tag with a space", jobs.CreateRequest{ParentID: root.JobID, Tags: []string{"a b"}}, progress.CodeInvalidTag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := svc.Create(ctx, "alice", tc.req); code(err) != tc.code {
				t.Fatalf("Create = %v, want %s", err, tc.code)
			}
		})
	}
	// No count moved: the root has its one child of the chain, as before.
	after := get(t, svc, root.JobID)
	if fmt.Sprint(after.Children) != fmt.Sprint(before.Children) || after.Seq != before.Seq {
		t.Fatalf("refused creates moved the parent: %+v → %+v", before.Children, after.Children)
	}
	page, _, err := svc.List(ctx, storeQuery(root.JobID))
	if err != nil || len(page) != 1 {
		t.Fatalf("children of the root after refusals: %d, %v", len(page), err)
	}
}

func TestParentFollowsChildren(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, snapshot.MemoryOptions{})
	parent := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p", ExpectedChildren: 4, Name: "import"})
	three := 3.0
	a := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	b := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID, Weight: &three})
	if a.Project != "p" || a.ParentID != parent.JobID || a.RootID != parent.JobID || b.Weight != 3 {
		t.Fatalf("child fields: %+v", a)
	}
	// b at 0.5: 1.5 / (1 + 3 + 2 announced) = 0.25, and the parent runs.
	if _, err := svc.Report(ctx, b.JobID, progress.Report{Progress: ptr(0.5)}); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the parent at 0.25", func() bool {
		p := get(t, svc, parent.JobID)
		return p.Progress == 0.25 && p.State == progress.Running && p.Children != nil && p.Children.Running == 1
	})
	// succeeded over running children: 409.
	if _, err := svc.Report(ctx, parent.JobID, progress.Report{State: ptr(progress.Succeeded)}); code(err) != progress.CodeChildrenUnfinished {
		t.Fatalf("succeeded over running children = %v", err)
	}
	c := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	d := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	for _, id := range []string{a.JobID, b.JobID, c.JobID} {
		if _, err := svc.Report(ctx, id, progress.Report{State: ptr(progress.Succeeded)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Report(ctx, d.JobID, progress.Report{Progress: ptr(0.5), State: ptr(progress.Failed), Error: ptr("bad file")}); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the parent to fail by itself", func() bool { return get(t, svc, parent.JobID).State.Terminal() })
	p := get(t, svc, parent.JobID)
	want := progress.Children{Total: 4, Succeeded: 3, Failed: 1}
	if p.State != progress.Failed || *p.Children != want || p.Error == nil || *p.Error != "1 of 4 children failed" {
		t.Fatalf("parent: %s %+v %v", p.State, p.Children, p.Error)
	}
	if mean := (1 + 3 + 1 + 0.5) / 6; p.Progress != mean {
		t.Fatalf("parent progress %v, want the exact mean %v", p.Progress, mean)
	}
	// A child cannot join a finished parent.
	if _, err := svc.Create(ctx, "alice", jobs.CreateRequest{ParentID: parent.JobID}); code(err) != progress.CodeParentFinished {
		t.Fatalf("child of a finished parent = %v", err)
	}
}

func TestGrandparentFollows(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, snapshot.MemoryOptions{})
	root := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p", ExpectedChildren: 1})
	mid := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: root.JobID, ExpectedChildren: 2})
	leaf := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: mid.JobID})
	if leaf.RootID != root.JobID {
		t.Fatalf("leaf root_id %s, want %s", leaf.RootID, root.JobID)
	}
	if _, err := svc.Report(ctx, leaf.JobID, progress.Report{Progress: ptr(0.8)}); err != nil {
		t.Fatal(err)
	}
	// mid: 0.8 / 2 = 0.4; root: 0.4.
	testsvc.Eventually(t, 10*time.Second, "the grandparent at 0.4", func() bool { return get(t, svc, root.JobID).Progress == 0.4 })
}

func TestCancelCascades(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, snapshot.MemoryOptions{})
	root := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p"})
	var all []string
	for range 3 {
		c := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: root.JobID})
		g := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: c.JobID})
		all = append(all, c.JobID, g.JobID)
	}
	done := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: root.JobID})
	if _, err := svc.Report(ctx, done.JobID, progress.Report{State: ptr(progress.Succeeded)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Cancel(ctx, root.JobID, ""); err != nil {
		t.Fatal(err)
	}
	for _, id := range all {
		if s := get(t, svc, id); s.State != progress.Canceled {
			t.Fatalf("descendant %s is %s after the cancel", id, s.State)
		}
	}
	if s := get(t, svc, done.JobID); s.State != progress.Succeeded {
		t.Fatalf("a finished child changed: %s", s.State)
	}
}

func TestPipelineAndGivenNames(t *testing.T) {
	svc, _ := newService(t, snapshot.MemoryOptions{})
	s := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p", Name: "Invoices of November", Tags: []string{"customer-42"}})
	if s.Name != "Invoices of November" || fmt.Sprint(s.Tags) != "[customer-42]" {
		t.Fatalf("name/tags: %q %v", s.Name, s.Tags)
	}
}

func ptr[T any](v T) *T { return &v }

func storeQuery(parent string) progress.Query { return progress.Query{Parent: parent} }

// TestRecheckCorrectsWhatADeadNodeLeft: a child's terminal state committed
// to both stores by a node that died before passing it to the parent (here:
// written to the stores directly, around the service) reaches the parent
// through another service's recheck.
func TestRecheckCorrectsWhatADeadNodeLeft(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	wb := store.NewWriteBehind(db, 20*time.Millisecond, nil)
	snaps := snapshot.NewMemory(snapshot.MemoryOptions{})
	t.Cleanup(func() {
		_ = wb.Close(ctx)
		_ = db.Close()
	})
	svc := jobs.New(jobs.Config{Snapshots: snaps, DB: wb, Broker: broker.NewLocal(), GroupRecheck: 50 * time.Millisecond})
	t.Cleanup(svc.Close)
	parent := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p", ExpectedChildren: 1})
	child := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	testsvc.Eventually(t, 10*time.Second, "the parent to count its child", func() bool {
		c := get(t, svc, parent.JobID).Children
		return c != nil && c.Queued == 1
	})
	// The dead node's half-done work: both stores have the child's end.
	done, err := snaps.Update(ctx, child.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) {
		return progress.Apply(prev, progress.Report{State: ptr(progress.Succeeded)}, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := wb.Save(ctx, done, true); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the recheck to finish the parent", func() bool { return get(t, svc, parent.JobID).State == progress.Succeeded })
	if c := get(t, svc, parent.JobID).Children; *c != (progress.Children{Total: 1, Succeeded: 1}) {
		t.Fatalf("children after the recheck: %+v", c)
	}
}
