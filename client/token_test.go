package client_test

import (
	"testing"
	"time"

	"github.com/progressd/progressd/client"
	"github.com/progressd/progressd/internal/node/nodetest"
)

// TestMintToken: a backend mints a read-only token scoped to one job for
// an end user; it reads and watches that job, and is refused a report,
// another job and a create. A bad scope is refused at mint.
func TestMintToken(t *testing.T) {
	t.Parallel()
	const secret = "mint-token-secret-mint-token"
	s := nodetest.Start(t, nodetest.Options{Pipelines: quickPipelines, AuthSecret: secret})
	full, err := client.MintToken(secret, "alice", client.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := newClient(t, s.URL, full)
	job, err := owner.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := owner.Create(t.Context(), client.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := client.MintToken(secret, "alice", client.TokenOptions{Scope: []string{"job:" + job.JobID, "logs:" + job.JobID}, ReadOnly: true, TTL: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	browser := newClient(t, s.URL, tok)
	if got, err := browser.Get(t.Context(), job.JobID); err != nil || got.JobID != job.JobID {
		t.Fatalf("get with the scoped token: %v", err)
	}
	p := 0.5
	if _, err := browser.Report(t.Context(), job.JobID, client.Report{Progress: &p}); apiCode(err) != "forbidden" {
		t.Errorf("report with a read-only token: %v", err)
	}
	if _, err := browser.Get(t.Context(), other.JobID); apiCode(err) != "forbidden" {
		t.Errorf("another job: %v", err)
	}
	if _, err := browser.Create(t.Context(), client.CreateRequest{Project: "p"}); apiCode(err) != "forbidden" {
		t.Errorf("create: %v", err)
	}
	for _, bad := range [][]string{{}, {"project:*"}, {"user:alice"}} {
		if _, err := client.MintToken(secret, "alice", client.TokenOptions{Scope: bad}); err == nil {
			t.Errorf("minted scope %q", bad)
		}
	}
}
