package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/progressd/progressd/internal/progress"
)

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a := New("s3cret")
	a.now = func() time.Time { return now }
	good, err := Mint("s3cret", "alice", false, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := Mint("s3cret", "root", true, time.Hour, now)
	expired, _ := Mint("s3cret", "alice", false, time.Minute, now.Add(-time.Hour))
	otherSecret, _ := Mint("other", "alice", false, time.Hour, now)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte("s3cret"))
	noSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}).SignedString([]byte("s3cret"))
	scoped, err := MintForJob("s3cret", "alice", "job-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	scopedExpired, _ := MintForJob("s3cret", "alice", "job-1", time.Minute, now.Add(-time.Hour))
	scopedOtherSecret, _ := MintForJob("other", "alice", "job-1", time.Hour, now)
	scopedAdmin, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "admin": true, "job": "job-1", "exp": now.Add(time.Hour).Unix()}).SignedString([]byte("s3cret"))
	legacy, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "job": "job-1", "exp": now.Add(time.Hour).Unix()}).SignedString([]byte("s3cret"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)

	for _, tc := range []struct {
		name    string
		token   string
		want    Principal
		wantErr error
	}{
		{"valid", good, Principal{Subject: "alice", Expires: now.Add(time.Hour)}, nil},
		{"admin claim", admin, Principal{Subject: "root", Admin: true, Expires: now.Add(time.Hour)}, nil},
		{"empty", "", Principal{}, ErrNoToken},
		{"expired", expired, Principal{}, ErrExpiredToken},
		{"wrong secret", otherSecret, Principal{}, ErrInvalidToken},
		{"no exp", noExp, Principal{}, ErrInvalidToken},
		{"no sub", noSub, Principal{}, ErrInvalidToken},
		{"alg none", none, Principal{}, ErrInvalidToken},
		{"garbage", "not.a.jwt", Principal{}, ErrInvalidToken},
		{"job-scoped", scoped, Principal{Subject: "alice", Scope: mustScope(t, "job:job-1", "logs:job-1"), Expires: now.Add(time.Hour)}, nil},
		{"job claim of old tokens", legacy, Principal{Subject: "alice", Scope: mustScope(t, "job:job-1", "logs:job-1"), Expires: now.Add(time.Hour)}, nil},
		{"job-scoped expired", scopedExpired, Principal{}, ErrExpiredToken},
		{"job-scoped wrong secret", scopedOtherSecret, Principal{}, ErrInvalidToken},
		{"job-scoped admin", scopedAdmin, Principal{}, ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Verify(tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !got.Expires.Equal(tc.want.Expires) || got.Subject != tc.want.Subject || got.Admin != tc.want.Admin || !sameScope(got.Scope, tc.want.Scope) {
				t.Fatalf("principal = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSingleUserMode(t *testing.T) {
	a := New("")
	if a.Enabled() {
		t.Fatal("no secret must mean auth disabled")
	}
	p, err := a.Verify("")
	if err != nil || p.Subject != LocalUser {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
}

func TestMintNeedsSecretAndSub(t *testing.T) {
	if _, err := Mint("", "alice", false, time.Hour, time.Now()); err == nil || !strings.Contains(err.Error(), "--auth-secret") {
		t.Fatalf("no secret: %v", err)
	}
	if _, err := Mint("s", "", false, time.Hour, time.Now()); err == nil {
		t.Fatal("no sub accepted")
	}
	if _, err := Mint("s", "a", false, 0, time.Now()); err == nil {
		t.Fatal("zero ttl accepted")
	}
	if _, err := MintForJob("s", "a", "", time.Hour, time.Now()); err == nil {
		t.Fatal("job-scoped token without a job accepted")
	}
	if _, err := MintForJob("", "a", "j", time.Hour, time.Now()); err == nil {
		t.Fatal("job-scoped token without a secret accepted")
	}
}

// TestJobScope checks the limits of a job-scoped principal: its own job
// only, of its own owner, and nothing that covers many jobs.
func TestJobScope(t *testing.T) {
	stage := Principal{Subject: "alice", Scope: mustScope(t, "job:j1", "logs:j1")}
	alice := Principal{Subject: "alice"}
	for _, tc := range []struct {
		name string
		job  progress.Snapshot
		want bool
	}{
		{"its job", progress.Snapshot{JobID: "j1", Owner: "alice"}, true},
		{"another job of its owner", progress.Snapshot{JobID: "j2", Owner: "alice"}, false},
		{"its job id, another owner", progress.Snapshot{JobID: "j1", Owner: "bob"}, false},
	} {
		if got := stage.CanSee(tc.job); got != tc.want {
			t.Errorf("%s: CanSee = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !stage.Covers("j1") || stage.Covers("j2") || stage.Covers("") {
		t.Error("Covers must hold for the scoped job only")
	}
	if stage.ManyJobs() || stage.MaySubscribe("project:p") || stage.MaySubscribeUser("alice") {
		t.Error("a job-scoped principal may not create, list or subscribe to project: or user: channels")
	}
	if !alice.Covers("j2") || !alice.ManyJobs() || !alice.MaySubscribe("project:p") || !alice.MaySubscribeUser("alice") {
		t.Error("an unscoped principal keeps its rights")
	}
	if !strings.Contains(stage.ScopeNote(), "j1") {
		t.Errorf("ScopeNote %q does not name the job", stage.ScopeNote())
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr, secret string
		ok           bool
	}{
		{"127.0.0.1:8000", "", true},
		{"[::1]:8000", "", true},
		{"localhost:8000", "", true},
		{"0.0.0.0:8000", "", false},
		{":8000", "", false},
		{"192.168.1.5:8000", "", false},
		{"0.0.0.0:8000", "secret", true},
	} {
		err := CheckListen(tc.addr, New(tc.secret))
		if (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, secret=%q) = %v, want ok=%v", tc.addr, tc.secret, err, tc.ok)
		}
	}
}

func TestVisibility(t *testing.T) {
	job := progress.Snapshot{Owner: "alice"}
	if !(Principal{Subject: "alice"}).CanSee(job) || (Principal{Subject: "bob"}).CanSee(job) || !(Principal{Subject: "bob", Admin: true}).CanSee(job) {
		t.Fatal("CanSee must allow the owner and admins only")
	}
	if !(Principal{Subject: "alice"}).MaySubscribeUser("alice") || (Principal{Subject: "alice"}).MaySubscribeUser("bob") {
		t.Fatal("MaySubscribeUser must allow only one's own user channel")
	}
}

func TestParseChannel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind ChannelKind
		key  string
		ok   bool
	}{
		{"job:01JD", JobChannel, "01JD", true},
		{"project:p1", ProjectChannel, "p1", true},
		{"user:alice", UserChannel, "alice", true},
		{"project:", "", "", false},
		{"queue:x", "", "", false},
		{"nocolon", "", "", false},
		{"project:a b", "", "", false},
		{"project:" + strings.Repeat("x", 200), "", "", false},
	} {
		k, key, err := ParseChannel(tc.in)
		if (err == nil) != tc.ok || k != tc.kind || key != tc.key {
			t.Errorf("ParseChannel(%q) = %q, %q, %v", tc.in, k, key, err)
		}
	}
}
