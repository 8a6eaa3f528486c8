package node

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// authClients starts a node with auth on and returns clients for alice,
// bob and an admin.
func authClients(t *testing.T, mod func(*Config)) (n *Node, alice, bob, admin client) {
	t.Helper()
	const secret = "groups-test-secret-0123456789"
	n = startNode(t, "", func(c *Config) {
		c.AuthSecret = secret
		if mod != nil {
			mod(c)
		}
	})
	mint := func(sub string, isAdmin bool) client {
		tok, err := auth.Mint(secret, sub, isAdmin, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return client{t: t, base: n.URL(), token: tok, contentType: "application/json"}
	}
	return n, mint("alice", false), mint("bob", false), mint("root", true)
}

func TestCreateRefusalsOverHTTP(t *testing.T) {
	t.Parallel()
	_, alice, bob, _ := authClients(t, nil)
	root := create(t, alice, `{"project":"p","expected_children":2}`)
	chain := root
	for range 3 {
		chain = create(t, alice, fmt.Sprintf(`{"parent_id":%q}`, chain.JobID))
	}
	done := create(t, alice, `{"project":"p"}`)
	report(t, alice, done.JobID, `{"state":"succeeded"}`)
	testsvc.Eventually(t, 10*time.Second, "the root to count its child", func() bool {
		g := get(t, alice, root.JobID)
		return g.Children != nil && g.Children.Total == 1
	})
	bobs := create(t, bob, `{"project":"p"}`)
	tags17 := make([]string, 17)
	for i := range tags17 {
		tags17[i] = fmt.Sprintf("%q", fmt.Sprint("t", i))
	}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown parent", `{"parent_id":"nope"}`, 404, progress.CodeParentNotFound},
		{"another user's parent", fmt.Sprintf(`{"parent_id":%q}`, bobs.JobID), 404, progress.CodeParentNotFound},
		{"depth 5", fmt.Sprintf(`{"parent_id":%q}`, chain.JobID), 400, progress.CodeTooDeep},
		{"terminal parent", fmt.Sprintf(`{"parent_id":%q}`, done.JobID), 409, progress.CodeParentFinished},
		{"another project", fmt.Sprintf(`{"project":"q","parent_id":%q}`, root.JobID), 400, progress.CodeInvalidParent},
		{"weight without parent", `{"project":"p","weight":2}`, 400, progress.CodeInvalidWeight},
		{"weight 0", fmt.Sprintf(`{"parent_id":%q,"weight":0}`, root.JobID), 400, progress.CodeInvalidWeight},
		{"expected_children -1", `{"project":"p","expected_children":-1}`, 400, progress.CodeInvalidExpected},
		{"17 tags", `{"project":"p","tags":[` + strings.Join(tags17, ",") + `]}`, 400, progress.CodeInvalidTag},
		{"a tag with a space", `{"project":"p","tags":["a b"]}`, 400, progress.CodeInvalidTag},
		{"a name of 201 characters", `{"project":"p","name":"` + strings.Repeat("x", 201) + `"}`, 400, progress.CodeInvalidName},
		{"another owner without admin", `{"project":"p","owner":"bob"}`, 400, "invalid_owner"},
	} {
		r := alice.do("POST", "/api/v1/jobs", tc.body)
		if r.status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	// Nothing moved: the root has its one child, alice's project its jobs.
	if g := get(t, alice, root.JobID); g.Children == nil || g.Children.Total != 1 {
		t.Fatalf("root children after refusals: %+v", g.Children)
	}
	var projects struct {
		Projects []progress.ProjectSummary `json:"projects"`
	}
	alice.do("GET", "/api/v1/projects", nil).decode(t, &projects)
	want := progress.JobCounts{Queued: 4, Succeeded: 1} // root, 3 in the chain, done
	if len(projects.Projects) != 1 || projects.Projects[0].Jobs != want {
		t.Fatalf("alice's projects after refusals: %+v, want p with %+v", projects.Projects, want)
	}
}

func TestAdminCreatesForUser(t *testing.T) {
	t.Parallel()
	_, alice, bob, admin := authClients(t, nil)
	s := create(t, admin, `{"project":"p","owner":"alice","name":"Import for alice"}`)
	if s.Owner != "alice" || s.Name != "Import for alice" {
		t.Fatalf("admin create for alice: %+v", s)
	}
	if g := get(t, alice, s.JobID); g.JobID != s.JobID {
		t.Fatal("alice cannot see the job created for her")
	}
	if r := bob.do("GET", "/api/v1/jobs/"+s.JobID, nil); r.status != 404 {
		t.Fatalf("bob sees alice's job: %d", r.status)
	}
	// Naming oneself is not naming another owner.
	if s := create(t, bob, `{"project":"p","owner":"bob"}`); s.Owner != "bob" {
		t.Fatalf("owner bob by bob: %+v", s)
	}
	// A pipeline job is named after its pipeline unless given a name.
	if s := create(t, bob, `{"project":"p","pipeline":"demo"}`); s.Name != "demo" {
		t.Fatalf("a demo job's name: %q", s.Name)
	}
	if s := create(t, bob, `{"project":"p","pipeline":"demo","name":"Nightly"}`); s.Name != "Nightly" {
		t.Fatalf("a named demo job's name: %q", s.Name)
	}
}

func TestBatchOverHTTP(t *testing.T) {
	t.Parallel()
	_, alice, bob, admin := authClients(t, nil)
	const n = 20
	parent := create(t, alice, fmt.Sprintf(`{"project":"imports","name":"November","expected_children":%d,"tags":["batch:nov"]}`, n))
	kids := make([]progress.Snapshot, n)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			kids[i] = create(t, alice, fmt.Sprintf(`{"parent_id":%q,"tags":["batch:nov"],"name":"file %d"}`, parent.JobID, i))
		})
	}
	wg.Wait()
	for i, k := range kids {
		wg.Go(func() {
			for _, p := range []float64{0.25, 0.5, 0.75} {
				report(t, alice, k.JobID, fmt.Sprintf(`{"progress":%v}`, p))
			}
			if i%5 == 0 {
				report(t, alice, k.JobID, `{"state":"failed","error":"bad row"}`)
			} else {
				report(t, alice, k.JobID, `{"state":"succeeded"}`)
			}
		})
	}
	wg.Wait()
	testsvc.Eventually(t, 10*time.Second, "the batch to finish by itself", func() bool { return get(t, alice, parent.JobID).State.Terminal() })
	p := get(t, alice, parent.JobID)
	want := progress.Children{Total: n, Succeeded: n - n/5, Failed: n / 5}
	if p.State != progress.Failed || *p.Children != want || *p.Error != fmt.Sprintf("%d of %d children failed", n/5, n) {
		t.Fatalf("parent %s %+v %v", p.State, p.Children, p.Error)
	}
	if mean := (float64(n-n/5) + 0.75*float64(n/5)) / n; !near(p.Progress, mean) {
		t.Fatalf("parent progress %v, want %v", p.Progress, mean)
	}
	// ?parent= and ?tag= list them; bob sees neither.
	var list struct {
		Jobs       []progress.Snapshot `json:"jobs"`
		NextCursor *string             `json:"next_cursor"`
	}
	alice.do("GET", "/api/v1/jobs?parent="+parent.JobID+"&limit=500", nil).decode(t, &list)
	if len(list.Jobs) != n || list.Jobs[0].ParentID != parent.JobID {
		t.Fatalf("?parent= listed %d", len(list.Jobs))
	}
	alice.do("GET", "/api/v1/jobs?tag=batch:nov&limit=500", nil).decode(t, &list)
	if len(list.Jobs) != n+1 {
		t.Fatalf("?tag= listed %d, want %d", len(list.Jobs), n+1)
	}
	if r := bob.do("GET", "/api/v1/jobs?parent="+parent.JobID, nil); r.status != 404 {
		t.Fatalf("bob's ?parent= of alice's job: %d", r.status)
	}
	bob.do("GET", "/api/v1/jobs?tag=batch:nov", nil).decode(t, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("bob's ?tag= listed %d", len(list.Jobs))
	}
	admin.do("GET", "/api/v1/jobs?tag=batch:nov&limit=500", nil).decode(t, &list)
	if len(list.Jobs) != n+1 {
		t.Fatalf("admin's ?tag= listed %d", len(list.Jobs))
	}
	if r := alice.do("GET", "/api/v1/jobs?tag=a%20b", nil); r.status != 400 || r.errCode() != progress.CodeInvalidTag {
		t.Fatalf("?tag= with a space: %d %s", r.status, r.body)
	}
}

func TestSucceededOverUnfinishedChildrenOverHTTP(t *testing.T) {
	t.Parallel()
	_, alice, _, _ := authClients(t, nil)
	parent := create(t, alice, `{"project":"p"}`)
	child := create(t, alice, fmt.Sprintf(`{"parent_id":%q}`, parent.JobID))
	report(t, alice, child.JobID, `{"progress":0.5}`)
	if r := alice.do("POST", "/api/v1/jobs/"+parent.JobID+"/progress", `{"state":"succeeded"}`); r.status != 409 || r.errCode() != progress.CodeChildrenUnfinished {
		t.Fatalf("succeeded over a running child: %d %s", r.status, r.body)
	}
	// Cancel cascades; then a child cannot be added.
	if r := alice.do("POST", "/api/v1/jobs/"+parent.JobID+"/cancel", nil); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if g := get(t, alice, child.JobID); g.State != progress.Canceled {
		t.Fatalf("child after the parent's cancel: %s", g.State)
	}
	if r := alice.do("POST", "/api/v1/jobs", fmt.Sprintf(`{"parent_id":%q}`, parent.JobID)); r.status != http.StatusConflict {
		t.Fatalf("child of a canceled parent: %d %s", r.status, r.body)
	}
}

func TestProjectsOverHTTP(t *testing.T) {
	t.Parallel()
	n, alice, bob, admin := authClients(t, nil)
	for _, p := range []string{"a", "b", "c"} {
		create(t, alice, fmt.Sprintf(`{"project":%q}`, p))
	}
	bj := create(t, bob, `{"project":"a"}`)
	report(t, bob, bj.JobID, `{"state":"succeeded"}`)
	type page struct {
		Projects   []progress.ProjectSummary `json:"projects"`
		NextCursor *string                   `json:"next_cursor"`
	}
	all := func(c client) []progress.ProjectSummary {
		var out []progress.ProjectSummary
		path := "/api/v1/projects?limit=2"
		for range 10 {
			var pg page
			r := c.do("GET", path, nil)
			if r.status != 200 {
				t.Fatalf("projects: %d %s", r.status, r.body)
			}
			r.decode(t, &pg)
			out = append(out, pg.Projects...)
			if pg.NextCursor == nil {
				return out
			}
			path = "/api/v1/projects?limit=2&cursor=" + *pg.NextCursor
		}
		t.Fatal("paging never ended")
		return nil
	}
	names := func(ps []progress.ProjectSummary) string {
		var s []string
		for _, p := range ps {
			s = append(s, fmt.Sprintf("%s:%d/%d", p.Project, p.Jobs.Queued, p.Jobs.Succeeded))
		}
		return strings.Join(s, " ")
	}
	if got := names(all(alice)); got != "c:1/0 b:1/0 a:1/0" {
		t.Fatalf("alice's projects: %s", got)
	}
	if got := names(all(bob)); got != "a:0/1" {
		t.Fatalf("bob's projects: %s", got)
	}
	if got := names(all(admin)); got != "a:1/1 c:1/0 b:1/0" {
		t.Fatalf("all projects: %s", got)
	}
	if r := alice.do("GET", "/api/v1/projects?cursor=junk", nil); r.status != 400 {
		t.Fatalf("bad cursor: %d %s", r.status, r.body)
	}
	_ = n
}
