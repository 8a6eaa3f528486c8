// Package auth decides who a caller is and what it may see.
//
// With a secret, callers present an HS256 JWT whose sub is their user id and
// whose optional "admin": true claim lets them do anything. A token with a
// "scope" claim (see Scope) opens only what it names, and one with
// "read_only": true writes nothing: a backend hands such a token to an end
// user's browser, and the server gives one scoped to its job to every
// pipeline stage it runs (MintForJob), so the stage's `progressd report`
// works with auth on and a leaked stage token reads nothing else of its
// owner's.
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
	"github.com/progressd/progressd/internal/protocol"
)

// LocalUser is the user every request acts as in single-user mode.
const LocalUser = "local"

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	Admin   bool
	// Scope, when not nil, limits the principal to what it names (see
	// Scope): it reads, watches and (without ReadOnly) reports on those
	// jobs of its own and nothing else — no lists beyond the scope, no
	// new jobs, no cancel or delete, no user: channel. Never with Admin.
	// An empty scope allows nothing at all.
	Scope *Scope
	// ReadOnly principals may read and subscribe but not create, report,
	// append logs, cancel or delete.
	ReadOnly bool
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
	case c.Admin && (c.Job != "" || c.Scope != nil):
		// Nothing mints this; refusing it keeps "scoped" and "admin" from
		// ever having to be weighed against each other.
		return Principal{}, fmt.Errorf("%w: a scoped token cannot be an admin token", ErrInvalidToken)
	case c.Job != "" && c.Scope != nil:
		return Principal{}, fmt.Errorf("%w: it has both a job and a scope claim; use scope alone", ErrInvalidToken)
	}
	p := Principal{Subject: c.Subject, Admin: c.Admin, ReadOnly: c.ReadOnly}
	switch {
	case c.Job != "":
		// Tokens minted before scopes existed: the same rights as
		// MintForJob's scope today.
		c.Scope = jobScope(c.Job)
		fallthrough
	case c.Scope != nil:
		sc, err := ParseScope(c.Scope)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
		p.Scope = sc
	}
	if c.ExpiresAt != nil {
		p.Expires = c.ExpiresAt.Time
	}
	return p, nil
}

type claims struct {
	jwt.RegisteredClaims
	Admin bool `json:"admin,omitempty"`
	// Job is the claim job-scoped tokens had before scopes: read as the
	// scope ["job:<id>", "logs:<id>"]. Nothing mints it any more.
	Job string `json:"job,omitempty"`
	// Scope is Principal.Scope as the token carries it. Absent (nil) is
	// an unscoped token; present and empty allows nothing.
	Scope    []string `json:"scope,omitempty"`
	ReadOnly bool     `json:"read_only,omitempty"`
}

// Mint returns an HS256 token for sub valid for ttl, signed with secret.
func Mint(secret, sub string, admin bool, ttl time.Duration, now time.Time) (string, error) {
	return mint(secret, claims{Admin: admin}, sub, ttl, now)
}

// Options are the optional claims of MintWith.
type Options struct {
	Admin bool
	// Scope, when not nil, limits the token to what it names (see Scope);
	// it must name something: an empty scope would allow nothing.
	Scope    []string
	ReadOnly bool
}

// MintWith returns an HS256 token for sub with o's claims, valid for
// ttl, signed with secret: the token a backend hands to an end user
// (scoped, often read-only). It refuses what Verify would refuse.
func MintWith(secret, sub string, o Options, ttl time.Duration, now time.Time) (string, error) {
	if o.Scope != nil {
		if o.Admin {
			return "", errors.New("auth: a scoped token cannot be an admin token: drop --admin or --scope")
		}
		if len(o.Scope) == 0 {
			return "", errors.New("auth: an empty scope allows nothing; name what the token may open (job:<id>, children:<id>, logs:<id>, tag:<t>, project:<p>) or leave the scope out")
		}
		if _, err := ParseScope(o.Scope); err != nil {
			return "", err
		}
	}
	return mint(secret, claims{Admin: o.Admin, Scope: o.Scope, ReadOnly: o.ReadOnly}, sub, ttl, now)
}

// MintForJob returns an HS256 token for sub scoped to job and its log
// lines (scope ["job:<id>", "logs:<id>"]), valid for ttl, signed with
// secret. The orchestrator gives one to each stage attempt it runs as
// PROGRESSD_TOKEN; `progressd token --job` mints the same.
func MintForJob(secret, sub, job string, ttl time.Duration, now time.Time) (string, error) {
	if job == "" {
		return "", errors.New("auth: a job-scoped token needs a job id")
	}
	return MintWith(secret, sub, Options{Scope: jobScope(job)}, ttl, now)
}

// jobScope is the scope of a worker's token for job id.
func jobScope(id string) []string { return []string{"job:" + id, "logs:" + id} }

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
// WebSocket gateway and SSE only ask them. A scoped principal's limits are
// applied here too, so no caller has to remember them.

// Scoped reports whether p is limited to a scope.
func (p Principal) Scoped() bool { return p.Scope != nil }

// Covers reports whether p's token may cover job id: every job for an
// unscoped token (ownership is CanSee's question); for a scoped one, a job
// its scope names, or any job when the scope has children:, tag: or
// project: entries (which only a read of the job can settle). It needs no
// read of the job, so a refusal reveals nothing about whether another job
// exists.
func (p Principal) Covers(id string) bool {
	return p.Scope == nil || p.Scope.jobs[id] || p.Scope.logs[id] || p.Scope.byJobFields()
}

// ManyJobs reports whether p may create jobs and list them unfiltered:
// only an unscoped principal may.
func (p Principal) ManyJobs() bool { return p.Scope == nil }

// ScopeNote says what a scoped principal may do, for the message of a
// refusal.
func (p Principal) ScopeNote() string {
	if p.Scope == nil {
		return "this token may not do that"
	}
	what := "read, report on and watch"
	if p.ReadOnly {
		what = "read and watch"
	}
	if len(p.Scope.names) == 0 {
		return "this token has an empty scope: it may open nothing; ask for a token that names what you need"
	}
	return fmt.Sprintf("this token is scoped to %s: it may only %s what those name", strings.Join(p.Scope.names, ", "), what)
}

// Owns reports whether s is p's to see by ownership alone: its own jobs,
// or any job for an admin.
func (p Principal) Owns(s progress.Snapshot) bool { return p.Admin || s.Owner == p.Subject }

// CanSee reports whether p may read the job s and receive its updates:
// its own jobs, or any job for an admin; for a scoped principal, only
// those of them its scope names.
func (p Principal) CanSee(s progress.Snapshot) bool {
	return p.Owns(s) && (p.Scope == nil || p.Scope.contains(s))
}

// CanSeeLogs reports whether p may read the log lines of job s: CanSee,
// or a scope naming logs:<id> of a job p owns.
func (p Principal) CanSeeLogs(s progress.Snapshot) bool {
	return p.CanSee(s) || (p.Scope != nil && p.Scope.logs[s.JobID] && p.Owns(s))
}

// CanWrite reports whether p may report on, append logs to and (unless
// scoped) cancel the job s: CanSee, and not read-only.
func (p Principal) CanWrite(s progress.Snapshot) bool { return !p.ReadOnly && p.CanSee(s) }

// MaySubscribe reports whether p's scope lets it subscribe to channel ch
// (always, without a scope; ownership is checked separately). A scoped
// principal subscribes only to the channels its scope names, literally.
func (p Principal) MaySubscribe(ch string) bool { return p.Scope == nil || p.Scope.channels[ch] }

// ChannelKind is the part of a channel name before the colon.
type ChannelKind string

// The channel kinds a client may subscribe to: the rows of package
// protocol's table (protocol.Channels), which ParseChannel accepts.
const (
	JobChannel     ChannelKind = protocol.ChannelJob
	ProjectChannel ChannelKind = protocol.ChannelProject
	UserChannel    ChannelKind = protocol.ChannelUser
	// ChildrenChannel carries the direct children of a job, with the
	// visibility of job: of that job.
	ChildrenChannel ChannelKind = protocol.ChannelChildren
	// TagChannel carries the jobs with a tag that the subscriber may see.
	TagChannel ChannelKind = protocol.ChannelTag
)

// ParseChannel splits "kind:key" and checks both parts.
func ParseChannel(ch string) (ChannelKind, string, error) {
	kind, key, ok := strings.Cut(ch, ":")
	if !ok || key == "" {
		return "", "", fmt.Errorf("channel %q must be %s", ch, protocol.ChannelForms())
	}
	if _, ok := protocol.ChannelOf(kind); !ok {
		return "", "", fmt.Errorf("channel %q: unknown kind %q (use %s)", ch, kind, protocol.ChannelForms())
	}
	switch k := ChannelKind(kind); k {
	case TagChannel:
		if err := progress.CheckTag(key); err != nil {
			return "", "", fmt.Errorf("channel %q: %s", ch, err.(*progress.Error).Message)
		}
		return k, key, nil
	default: // an id or a name
		if err := progress.CheckName(kind, key); err != nil {
			return "", "", fmt.Errorf("channel %q: %s", ch, err.(*progress.Error).Message)
		}
		return k, key, nil
	}
}

// MaySubscribeUser reports whether p may subscribe to user:<id>: its own,
// or any for an admin; never for a scoped principal.
func (p Principal) MaySubscribeUser(id string) bool {
	return p.Scope == nil && (p.Admin || p.Subject == id)
}

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
