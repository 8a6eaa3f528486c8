package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// update is an update frame of the WebSocket protocol.
type update struct {
	Type    string            `json:"type"`
	Channel string            `json:"channel"`
	Job     progress.Snapshot `json:"job"`
	ID      int               `json:"id"`
	Error   *struct{ Code string }
}

// pingID is the id of the ping watchWS sends after its subscribes: its
// reply comes after every subscribe's reply and first snapshots.
const pingID = 999

// watchWS subscribes to channels on node n and returns the updates it
// gets, until the test's context ends.
func watchWS(t *testing.T, ctx context.Context, base, token string, channels ...string) <-chan update {
	t.Helper()
	url := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	if token != "" {
		url += "?token=" + token
	}
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	for i, ch := range channels {
		frame := fmt.Sprintf(`{"op":"subscribe","id":%d,"channel":%q}`, i+1, ch)
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"op":"ping","id":%d}`, pingID)); err != nil {
		t.Fatal(err)
	}
	out := make(chan update, 4096)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		defer close(out)
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var u update
			if json.Unmarshal(data, &u) == nil {
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return out
}

// watchSSE follows /api/v1/events?channel=ch on base.
func watchSSE(t *testing.T, ctx context.Context, base, ch string) <-chan update {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events?channel="+ch, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE %s: %d", ch, resp.StatusCode)
	}
	out := make(chan update, 4096)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Go(func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data:")
			var u update
			if ok && json.Unmarshal([]byte(strings.TrimSpace(data)), &u) == nil {
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return out
}

// TestChildrenAcrossTwoNodes: children of one parent are created and
// reported on two nodes sharing PostgreSQL and Redis at once; the parent
// comes out exact on both, its snapshots are at least ParentInterval
// apart, and children: and tag: deliver every child's final state over
// WebSocket on one node and SSE on the other.
func TestChildrenAcrossTwoNodes(t *testing.T) {
	shared := scaleOut(t)
	a, b := startNode(t, "", shared), startNode(t, "", shared)
	ca, cb := client{t: t, base: a.URL()}, client{t: t, base: b.URL()}
	const n = 40
	parent := create(t, ca, fmt.Sprintf(`{"project":"p","expected_children":%d,"tags":["two-nodes"]}`, n))

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ws := watchWS(t, ctx, b.URL(), "", "children:"+parent.JobID, "tag:two-nodes", "job:"+parent.JobID)
	sse := watchSSE(t, ctx, a.URL(), "children:"+parent.JobID)

	kids := make([]progress.Snapshot, n)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			c := []client{ca, cb}[i%2]
			kids[i] = create(t, c, fmt.Sprintf(`{"parent_id":%q,"tags":["two-nodes"]}`, parent.JobID))
			for k, p := range []float64{0.2, 0.6} {
				report(t, []client{ca, cb}[(i+k)%2], kids[i].JobID, fmt.Sprintf(`{"progress":%v}`, p))
			}
			end := `{"state":"succeeded"}`
			if i%4 == 0 {
				end = `{"state":"failed","error":"x"}`
			}
			report(t, []client{cb, ca}[i%2], kids[i].JobID, end)
		})
	}
	wg.Wait()
	failed := (n + 3) / 4
	want := progress.Children{Total: n, Succeeded: n - failed, Failed: failed}
	mean := (float64(n-failed) + 0.6*float64(failed)) / n
	for _, c := range []client{ca, cb} {
		testsvc.Eventually(t, 10*time.Second, "the parent to finish on both nodes", func() bool { return get(t, c, parent.JobID).State.Terminal() })
		p := get(t, c, parent.JobID)
		if p.State != progress.Failed || *p.Children != want || !near(p.Progress, mean) {
			t.Fatalf("parent on %s: %s %+v %v, want failed %+v %v", c.base, p.State, p.Children, p.Progress, want, mean)
		}
	}

	// Every child's last update on children: and tag: is terminal; the
	// parent's snapshots are ParentInterval apart.
	final := map[string]map[string]progress.Snapshot{}
	var parents []progress.Snapshot
	collect := func(src <-chan update, until func() bool) {
		for !until() {
			select {
			case u, ok := <-src:
				if !ok {
					t.Fatal("stream ended early")
				}
				if u.Type == "update" || u.Type == "" && u.Channel != "" {
					if u.Job.JobID == parent.JobID && strings.HasPrefix(u.Channel, "job:") {
						parents = append(parents, u.Job)
						continue
					}
					m := final[u.Channel]
					if m == nil {
						m = map[string]progress.Snapshot{}
						final[u.Channel] = m
					}
					if u.Job.Seq > m[u.Job.JobID].Seq {
						m[u.Job.JobID] = u.Job
					}
				}
			case <-ctx.Done():
				t.Fatalf("timed out; have %d children on children:, %d on tag:", len(final["children:"+parent.JobID]), len(final["tag:two-nodes"]))
			}
		}
	}
	allDone := func(ch string, count int) func() bool {
		return func() bool {
			m := final[ch]
			done := 0
			for _, s := range m {
				if s.State.Terminal() {
					done++
				}
			}
			return done == count
		}
	}
	parentDone := func() bool { return len(parents) > 0 && parents[len(parents)-1].State.Terminal() }
	collect(ws, func() bool {
		return allDone("children:"+parent.JobID, n)() && allDone("tag:two-nodes", n+1)() && parentDone()
	})
	collect(sse, allDone("children:"+parent.JobID, n))
	for i := 1; i < len(parents); i++ {
		if gap := parents[i].UpdatedAt.Sub(parents[i-1].UpdatedAt.Time); parents[i-1].Seq > 1 && gap < 100*time.Millisecond {
			t.Errorf("parent seq %d → %d only %v apart", parents[i-1].Seq, parents[i].Seq, gap)
		}
	}
}

// TestChildrenAndTagChannelVisibility: children: is job:'s visibility,
// tag: carries only the caller's jobs (an admin's: all).
func TestChildrenAndTagChannelVisibility(t *testing.T) {
	t.Parallel()
	n, alice, bob, admin := authClients(t, nil)
	parent := create(t, alice, `{"project":"p","tags":["shared"]}`)
	create(t, bob, `{"project":"p","tags":["shared"]}`)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// reply returns the reply to the one subscribe of a connection.
	reply := func(token, channel string) update {
		for u := range watchWS(t, ctx, n.URL(), token, channel) {
			if u.Type == "reply" && u.ID == 1 {
				return u
			}
		}
		t.Fatal("no reply")
		return update{}
	}
	if r := reply(bob.token, "children:"+parent.JobID); r.Error == nil || r.Error.Code != "forbidden" {
		t.Fatalf("bob's children: of alice's job: %+v", r)
	}
	if r := reply(alice.token, "children:"+parent.JobID); r.Error != nil {
		t.Fatalf("alice's children: of her job: %+v", r)
	}
	if r := reply(alice.token, "tag:a b"); r.Error == nil || r.Error.Code != "bad_request" {
		t.Fatalf("tag: with a space: %+v", r)
	}
	owners := func(token string) map[string]bool {
		seen := map[string]bool{}
		for u := range watchWS(t, ctx, n.URL(), token, "tag:shared") {
			if u.Type == "update" {
				seen[u.Job.Owner] = true
			}
			if u.Type == "reply" && u.ID == pingID {
				break
			}
		}
		return seen
	}
	if got := owners(alice.token); !got["alice"] || got["bob"] {
		t.Fatalf("alice's tag:shared: %v", got)
	}
	if got := owners(admin.token); !got["alice"] || !got["bob"] {
		t.Fatalf("admin's tag:shared: %v", got)
	}
}
