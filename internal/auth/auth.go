// Package auth decides who a caller is and what it may see.
//
// With a secret, callers present an HS256 JWT whose sub is their user id and
// whose optional "admin": true claim lets them do anything. A token with a
// "job" claim is scoped to that one job (MintForJob): the server gives one
// to every pipeline stage it runs, so the stage's `progressd report` works
// with auth on, and a leaked stage token reads nothing else of its owner's.
// Without a secret the server is in single-user mode and every caller is
// LocalUser; that mode is only allowed on loopback addresses (see
// CheckListen). The rules for jobs and channels live here, in one place, so
// the HTTP API, WebSocket and SSE apply the same ones. Everything here is
// safe for concurrent use.
package auth

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/progressd/progressd/internal/progress"
)

// LocalUser is the user every request acts as in single-user mode.
const LocalUser = "local"

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	Admin   bool
	// Job, when set, scopes the principal to that one job: it may read
	// the job, report on it and watch it (job:<id>), and nothing else —
	// not other jobs of the same owner, not lists, not new jobs, not
	// project: or user: channels. Such tokens are minted for pipeline
	// stages (MintForJob), whose commands run code and write logs the
	// owner's full token should not be exposed to. Never with Admin.
	Job string
	// Expires is when the token stops being valid; zero means never.
	Expires time.Time
}

// Errors Verify returns; all mean "401: bring a valid token".
var (
	ErrNoToken      = errors.New("auth: a token is required: send Authorization: Bearer <token> or ?token=")
	ErrInvalidToken = errors.New("auth: the token is invalid")
	ErrExpiredToken = errors.New("auth: the token has expired; get a fresh one")
)

// Authenticator verifies tokens, or admits everyone as LocalUser when it has
// no secret.
type Authenticator struct {
	secret []byte
	now    func() time.Time
}

// New returns an Authenticator for secret; an empty secret is single-user
// mode.
func New(secret string) *Authenticator {
	return &Authenticator{secret: []byte(secret), now: time.Now}
}

// Enabled reports whether tokens are required.
func (a *Authenticator) Enabled() bool { return len(a.secret) > 0 }

// Verify returns the principal a token stands for. In single-user mode it
// ignores the token and returns LocalUser as admin of its own server.
func (a *Authenticator) Verify(token string) (Principal, error) {
	if !a.Enabled() {
		return Principal{Subject: LocalUser, Admin: true}, nil
	}
	if token == "" {
		return Principal{}, ErrNoToken
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(a.now),
		jwt.WithExpirationRequired())
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Principal{}, ErrExpiredToken
	case err != nil:
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	case c.Subject == "":
		return Principal{}, fmt.Errorf("%w: it has no sub (user id)", ErrInvalidToken)
	case c.Admin && c.Job != "":
		// Nothing mints this; refusing it keeps "scoped" and "admin" from
		// ever having to be weighed against each other.
		return Principal{}, fmt.Errorf("%w: a token scoped to one job cannot be an admin token", ErrInvalidToken)
	}
	p := Principal{Subject: c.Subject, Admin: c.Admin, Job: c.Job}
	if c.ExpiresAt != nil {
		p.Expires = c.ExpiresAt.Time
	}
	return p, nil
}

type claims struct {
	jwt.RegisteredClaims
	Admin bool `json:"admin,omitempty"`
	// Job scopes the token to one job id (Principal.Job).
	Job string `json:"job,omitempty"`
}

// Mint returns an HS256 token for sub valid for ttl, signed with secret.
func Mint(secret, sub string, admin bool, ttl time.Duration, now time.Time) (string, error) {
	return mint(secret, claims{Admin: admin}, sub, ttl, now)
}

// MintForJob returns an HS256 token for sub, scoped to job (a "job"
// claim; see Principal.Job), valid for ttl, signed with secret. The
// orchestrator gives one to each stage attempt it runs as PROGRESSD_TOKEN.
func MintForJob(secret, sub, job string, ttl time.Duration, now time.Time) (string, error) {
	if job == "" {
		return "", errors.New("auth: a job-scoped token needs a job id")
	}
	return mint(secret, claims{Job: job}, sub, ttl, now)
}

// mint fills in c's registered claims and signs it.
func mint(secret string, c claims, sub string, ttl time.Duration, now time.Time) (string, error) {
	if secret == "" {
		return "", errors.New("auth: no secret: pass --auth-secret or set PROGRESSD_AUTH_SECRET")
	}
	if sub == "" {
		return "", errors.New("auth: no subject: pass --sub USER")
	}
	if ttl <= 0 {
		return "", errors.New("auth: --ttl must be positive")
	}
	c.RegisteredClaims = jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}

// These methods are the whole of the permission rules; the HTTP API, the
// WebSocket gateway and SSE only ask them. A job-scoped principal's limits
// are applied here too, so no caller has to remember them.

// Covers reports whether p's token covers job id: every job for an
// unscoped token (ownership is CanSee's question), only its own job for a
// job-scoped one. It needs no read of the job, so a refusal reveals
// nothing about whether another job exists.
func (p Principal) Covers(id string) bool { return p.Job == "" || p.Job == id }

// ManyJobs reports whether p may act on more than one job at a time:
// create jobs, list them, subscribe to project: and user: channels. Only
// a job-scoped principal may not.
func (p Principal) ManyJobs() bool { return p.Job == "" }

// ScopeNote says what a job-scoped principal may do, for the message of a
// refusal.
func (p Principal) ScopeNote() string {
	return fmt.Sprintf("this token is scoped to job %s: it may only read, report on and watch that job", p.Job)
}

// CanSee reports whether p may read and subscribe to the job s: its own
// jobs, or any job for an admin; for a job-scoped principal, its job only.
func (p Principal) CanSee(s progress.Snapshot) bool {
	return p.Covers(s.JobID) && (p.Admin || s.Owner == p.Subject)
}

// ChannelKind is the part of a channel name before the colon.
type ChannelKind string

// The channel kinds a client may subscribe to.
const (
	JobChannel     ChannelKind = "job"
	ProjectChannel ChannelKind = "project"
	UserChannel    ChannelKind = "user"
	// ChildrenChannel carries the direct children of a job, with the
	// visibility of job: of that job.
	ChildrenChannel ChannelKind = "children"
	// TagChannel carries the jobs with a tag that the subscriber may see.
	TagChannel ChannelKind = "tag"
)

// ParseChannel splits "kind:key" and checks both parts.
func ParseChannel(ch string) (ChannelKind, string, error) {
	kind, key, ok := strings.Cut(ch, ":")
	if !ok || key == "" {
		return "", "", fmt.Errorf("channel %q must be job:<id>, project:<name>, user:<id>, children:<id> or tag:<tag>", ch)
	}
	switch k := ChannelKind(kind); k {
	case JobChannel, ProjectChannel, UserChannel, ChildrenChannel:
		if err := progress.CheckName(kind, key); err != nil {
			return "", "", fmt.Errorf("channel %q: %s", ch, err.(*progress.Error).Message)
		}
		return k, key, nil
	case TagChannel:
		if err := progress.CheckTag(key); err != nil {
			return "", "", fmt.Errorf("channel %q: %s", ch, err.(*progress.Error).Message)
		}
		return k, key, nil
	}
	return "", "", fmt.Errorf("channel %q: unknown kind %q (use job:, project:, user:, children: or tag:)", ch, kind)
}

// MaySubscribeUser reports whether p may subscribe to user:<id>: its own,
// or any for an admin; never for a job-scoped principal.
func (p Principal) MaySubscribeUser(id string) bool {
	return p.ManyJobs() && (p.Admin || p.Subject == id)
}

// MaySubscribeProject reports whether p may subscribe to project
// channels. Anyone may (the channel carries only the jobs CanSee allows)
// except a job-scoped principal.
func (p Principal) MaySubscribeProject() bool { return p.ManyJobs() }

// MinSecretBytes is the shortest secret a server accepts: HS256 with a
// short secret is open to guessing offline from any one token.
const MinSecretBytes = 16

// CheckSecret refuses a secret shorter than MinSecretBytes ("" is
// single-user mode, and passes), saying how to make a good one.
func CheckSecret(secret string) error {
	if secret == "" || len(secret) >= MinSecretBytes {
		return nil
	}
	return fmt.Errorf("--auth-secret is %d bytes; it must be at least %d (32 random bytes is good): "+
		"make one with `openssl rand -hex 32` or `head -c 32 /dev/urandom | base64`, and pass it as "+
		"PROGRESSD_AUTH_SECRET or in a file named by --auth-secret-file (on the command line it is visible in the process list)",
		len(secret), MinSecretBytes)
}

// CheckListen refuses single-user mode on an address other clients could
// reach: without a secret anyone who can connect acts as the local user.
func CheckListen(addr string, a *Authenticator) error {
	if a.Enabled() {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--addr %s is not a loopback address and no --auth-secret is set: anyone who can reach it would act as user %q; set --auth-secret (or PROGRESSD_AUTH_SECRET), or listen on 127.0.0.1", addr, LocalUser)
}
