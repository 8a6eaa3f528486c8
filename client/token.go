package client

import (
	"time"

	"github.com/progressd/progressd/internal/auth"
)

// TokenOptions are the claims of a token MintToken makes.
type TokenOptions struct {
	// Scope, when not nil, limits the token to what it names:
	// "job:<id>", "children:<id>", "logs:<id>", "tag:<t>", "project:<p>"
	// (literally; no wildcards). It must name something.
	Scope []string
	// ReadOnly tokens may read and watch but not report or append logs.
	ReadOnly bool
	// Admin tokens may do anything; never with a Scope.
	Admin bool
	// TTL is how long the token is valid; zero means one hour.
	TTL time.Duration
}

// MintToken returns a token for user sub signed with the server's
// --auth-secret: the token a backend hands to an end user's browser, e.g.
// MintToken(secret, "alice", TokenOptions{Scope: []string{"job:" + id,
// "logs:" + id}, ReadOnly: true, TTL: 15 * time.Minute}). The server
// lets such a token open only what its scope names, of sub's own jobs.
func MintToken(secret, sub string, o TokenOptions) (string, error) {
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	return auth.MintWith(secret, sub, auth.Options{Admin: o.Admin, Scope: o.Scope, ReadOnly: o.ReadOnly}, o.TTL, time.Now())
}
