// Package api is progressd's HTTP API: jobs (create, get, list, report,
// cancel), health and readiness, metrics, the OpenAPI document and the
// /docs page that renders it offline. Operations are declared with huma, so
// the OpenAPI document is generated from the same types the handlers use.
//
// Handlers do no work of their own: they authenticate, check visibility
// (package auth), and call the jobs service. The API is safe for concurrent
// use, as an http.Handler must be.
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

func init() {
	// huma's errors are built through this hook; ours take the contract's
	// {"error": {"code", "message"}} shape.
	huma.NewError = newHumaError
}

// MaxBodyBytes bounds a request body; a report is a few hundred bytes.
const MaxBodyBytes = 64 << 10

// Checker is something /readyz asks; Ping returns nil while it answers.
type Checker struct {
	Name string
	Ping func(context.Context) error
}

// Config wires an API.
type Config struct {
	Jobs    *jobs.Service
	Auth    *auth.Authenticator
	Ready   []Checker
	Version string
	Log     *slog.Logger
}

// API holds the routes.
type API struct {
	jobs  *jobs.Service
	auth  *auth.Authenticator
	ready []Checker
	log   *slog.Logger
	huma  huma.API
}

type principalKey struct{}

// New registers the API's operations on mux: /api/v1/jobs…, /healthz,
// /readyz and /openapi.json. The /docs page is a static file of package web.
func New(mux *http.ServeMux, cfg Config) *API {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &API{jobs: cfg.Jobs, auth: cfg.Auth, ready: cfg.Ready, log: cfg.Log}

	hc := huma.DefaultConfig("progressd", cfg.Version)
	hc.Info.Description = "Live progress of long-running jobs. Every job change is one snapshot; " +
		"subscribe to them over WebSocket at /ws or Server-Sent Events. " +
		"With auth on, send `Authorization: Bearer <token>` (HS256 JWT, sub = user id). " +
		"A token may carry a scope (job:, children:, logs:, tag:, project: entries) and read_only: it may then only get, list (with a filter its scope names) and, unless read-only, report on what its scope names; other calls answer 403. The token a pipeline stage gets as PROGRESSD_TOKEN is scoped to its job. " +
		"Browsers: a page on an origin other than the server's own or one of --allowed-origins may not write (403 forbidden; without a secret it may not read either); " +
		"listed origins get CORS (preflight without a token; Authorization, Content-Type, Idempotency-Key and traceparent allowed)."
	hc.OpenAPIPath = "/openapi" // serves /openapi.json and /openapi.yaml
	hc.DocsPath = ""            // huma's page loads from a CDN; ours is embedded in package web
	hc.SchemasPath = ""
	hc.CreateHooks = nil // no $schema links in bodies: snapshots keep the contract's shape
	hc.Tags = []*huma.Tag{
		{Name: "jobs", Description: "Create jobs, report progress, read snapshots."},
		{Name: "streams", Description: "Live updates: WebSocket and Server-Sent Events."},
		{Name: "operations", Description: "Health and readiness."},
	}
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", BearerFormat: "JWT"},
	}
	jsonFormat := huma.Format{Marshal: marshalJSON, Unmarshal: huma.DefaultJSONFormat.Unmarshal}
	hc.Formats = map[string]huma.Format{"application/json": jsonFormat, "json": jsonFormat}
	hc.Components.Schemas.RegisterTypeAlias(reflect.TypeFor[progress.Time](), reflect.TypeFor[time.Time]())
	a.huma = huma.NewAPI(hc, &adapter{Adapter: humago.NewAdapter(mux, ""), mux: mux,
		fast: map[string]fastRoute{"report-progress": a.reportFast}})
	a.huma.UseMiddleware(a.authenticate)

	a.registerJobs()
	a.registerLogs()
	a.registerReports()
	a.registerProjects()
	a.registerPipelines()
	a.registerHealth()
	a.documentStreams()
	return a
}

// authenticate puts the caller's principal in the context of every
// operation that declares security; others (health) pass through. It also
// holds read-only and scoped principals to what they may do (allowed).
func (a *API) authenticate(ctx huma.Context, next func(huma.Context)) {
	if len(ctx.Operation().Security) == 0 {
		next(ctx)
		return
	}
	p, status, err := a.caller(ctx)
	if err != nil {
		_ = huma.WriteErr(a.huma, ctx, status, "", err)
		return
	}
	next(huma.WithValue(ctx, principalKey{}, p))
}

// caller is the principal of a request to a secured operation, or the
// status and error that refuse it: no or a bad token (401), or an
// operation its token may never call (403, allowed).
func (a *API) caller(ctx huma.Context) (auth.Principal, int, error) {
	var token string
	if ctx.URL().RawQuery != "" {
		token = ctx.Query("token")
	}
	if h := ctx.Header("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return auth.Principal{}, http.StatusUnauthorized,
				apiError(http.StatusUnauthorized, "unauthorized", "the Authorization header must be \"Bearer <token>\"")
		}
		token = strings.TrimSpace(t)
	}
	p, err := a.auth.Verify(token)
	if err != nil {
		return auth.Principal{}, http.StatusUnauthorized, apiError(http.StatusUnauthorized, "unauthorized", err.Error())
	}
	if err := allowed(p, ctx); err != nil {
		return auth.Principal{}, http.StatusForbidden, err
	}
	return p, 0, nil
}

// allowed refuses, before any handler runs, what p's token can never do
// whatever the job: a write with a read-only token, and for a scoped
// token an operation not in scopedOps or a job its scope cannot cover.
// An operation added later stays closed to scoped tokens until listed.
func allowed(p auth.Principal, ctx huma.Context) error {
	op := ctx.Operation()
	if p.ReadOnly && op.Method != http.MethodGet {
		return apiError(http.StatusForbidden, "forbidden", "this token is read-only: it may read and watch, not change anything")
	}
	if !p.Scoped() {
		return nil
	}
	if !scopedOps[op.OperationID] {
		return apiError(http.StatusForbidden, "forbidden", p.ScopeNote()+"; it never creates, cancels or deletes jobs")
	}
	if id := ctx.Param("id"); id != "" && !p.Covers(id) {
		return apiError(http.StatusForbidden, "forbidden", p.ScopeNote())
	}
	return nil
}

// scopedOps are the operations a scoped token (a pipeline stage's, an end
// user's) may call, and then only on what its scope names (the handlers
// ask Principal.CanSee and CanWrite): reading a job, reporting on it,
// its log lines, and lists filtered to a parent, tag or project the scope
// names. The batch of reports has no {id}: it checks each job it names.
var scopedOps = map[string]bool{
	"get-job": true, "report-progress": true, "report-batch": true, "list-jobs": true,
	"read-logs": true, "append-logs": true,
}

// marshalJSON writes response bodies. A snapshot, the body of most
// responses, goes straight through its hand-written encoder: encoding/json
// would call the same encoder and then re-scan its output to compact it,
// which BenchmarkReportHTTP showed as the largest single cost of a report.
func marshalJSON(w io.Writer, v any) error {
	if s, ok := v.(progress.Snapshot); ok {
		v = &s
	}
	if s, ok := v.(*progress.Snapshot); ok {
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		b, err := s.AppendJSON((*buf)[:0])
		if err != nil {
			return err
		}
		*buf = append(b, '\n')
		_, err = w.Write(*buf)
		return err
	}
	return huma.DefaultJSONFormat.Marshal(w, v)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func principal(ctx context.Context) auth.Principal {
	p, _ := ctx.Value(principalKey{}).(auth.Principal)
	return p
}

var secured = []map[string][]string{{"bearer": {}}}

// JSONByDefault treats request bodies sent without a JSON content type
// (curl -d sends application/x-www-form-urlencoded; many scripts send none)
// as JSON. The API has no other body format, so this only saves callers a
// confusing "unknown content type" error.
func JSONByDefault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && strings.HasPrefix(r.URL.Path, "/api/") {
			switch ct := r.Header.Get("Content-Type"); {
			case ct == "", strings.HasPrefix(ct, "application/x-www-form-urlencoded"), strings.HasPrefix(ct, "text/plain"):
				r.Header.Set("Content-Type", "application/json")
			}
		}
		next.ServeHTTP(w, r)
	})
}
