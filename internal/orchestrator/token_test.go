package orchestrator

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/auth"
)

// TestStageEnvToken: with an auth secret each stage gets PROGRESSD_TOKEN,
// a token of the job's owner scoped to the job, that lasts as long as the
// stage can run plus a margin (a day without a timeout); without a secret
// it gets none.
func TestStageEnvToken(t *testing.T) {
	const secret = "stage-env-secret"
	o := &Orchestrator{cfg: Config{AuthSecret: secret, KillGrace: 2 * time.Second, ServerURL: "http://127.0.0.1:9"}}
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ttl     time.Duration
	}{
		{"with a timeout", 10 * time.Minute, 10*time.Minute + 2*time.Second + stageTokenMargin},
		{"without a timeout", 0, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second) // exp has second precision
			env, err := o.stageEnv("job-1", "alice", &Stage{Name: "encode", Timeout: tc.timeout}, 2)
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{}
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
			if vars["PROGRESSD_JOB_ID"] != "job-1" || vars["PROGRESSD_STAGE"] != "encode" || vars["PROGRESSD_ATTEMPT"] != "2" || vars["PROGRESSD_SERVER"] != "http://127.0.0.1:9" {
				t.Fatalf("env %v", env)
			}
			p, err := auth.New(secret).Verify(vars["PROGRESSD_TOKEN"])
			if err != nil {
				t.Fatalf("PROGRESSD_TOKEN does not verify: %v", err)
			}
			if p.Subject != "alice" || !p.Scoped() || !slices.Equal(p.Scope.Names(), []string{"job:job-1", "logs:job-1"}) || p.Admin {
				t.Fatalf("principal %+v, want alice scoped to job-1, not admin", p)
			}
			if p.Expires.Before(before.Add(tc.ttl)) || p.Expires.After(time.Now().Add(tc.ttl)) {
				t.Fatalf("token expires %s, want %s from now", p.Expires, tc.ttl)
			}
		})
	}

	o.cfg.AuthSecret = ""
	env, err := o.stageEnv("job-1", "local", &Stage{Name: "encode"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "PROGRESSD_TOKEN=") {
			t.Fatalf("single-user mode got a token: %v", env)
		}
	}
}
