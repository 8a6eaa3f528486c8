package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

// Error is every error the API answers with:
// {"error": {"code": "...", "message": "..."}}. Code is stable for clients
// to match on; Message says what to do about it.
type Error struct {
	status int
	Body   ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of Error.
type ErrorDetail struct {
	Code    string `json:"code" doc:"Stable error code, e.g. bad_request, unauthorized, forbidden, not_found, invalid_progress, unknown_stage, job_finished."`
	Message string `json:"message" doc:"What went wrong and what to do about it."`
}

func (e *Error) Error() string  { return e.Body.Code + ": " + e.Body.Message }
func (e *Error) GetStatus() int { return e.status }

func apiError(status int, code, msg string) *Error {
	return &Error{status: status, Body: ErrorDetail{Code: code, Message: msg}}
}

// codeFor is the code of an error made by huma itself (bad JSON, a body
// that does not match the schema, a body too large).
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}

// newHumaError replaces huma.NewError so huma's own errors take our shape.
// Schema validation failures become 400, as the contract promises for any
// bad value, with every detail in the message.
func newHumaError(status int, msg string, errs ...error) huma.StatusError {
	for _, err := range errs {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
	}
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	var details []string
	for _, err := range errs {
		if err != nil {
			details = append(details, err.Error())
		}
	}
	if len(details) > 0 {
		msg = msg + ": " + strings.Join(details, "; ")
	}
	return apiError(status, codeFor(status), msg)
}

// fromService turns an error from the jobs service or auth into an API
// error. Anything unexpected is a 500 whose detail goes to the log, not the
// client.
func (a *API) fromService(ctx context.Context, err error) error {
	var pe *progress.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		switch pe.Code {
		case progress.CodeJobFinished, progress.CodeParentFinished, progress.CodeChildrenUnfinished, jobs.CodeNotFinished:
			return apiError(http.StatusConflict, pe.Code, pe.Message)
		case progress.CodeParentNotFound:
			return apiError(http.StatusNotFound, pe.Code, pe.Message)
		case progress.CodeTooLarge:
			return apiError(http.StatusRequestEntityTooLarge, pe.Code, pe.Message)
		case jobs.CodeIdempotencyConflict:
			return apiError(http.StatusUnprocessableEntity, pe.Code, pe.Message)
		}
		return apiError(http.StatusBadRequest, pe.Code, pe.Message)
	case errors.Is(err, jobs.ErrNotFound):
		return notFound()
	case errors.Is(err, jobs.ErrUnavailable):
		a.log.WarnContext(ctx, "request failed: a store is unavailable", "err", err)
		return apiError(http.StatusServiceUnavailable, "unavailable",
			"a store this server depends on is unavailable; nothing was changed: retry shortly (see /readyz)")
	case errors.Is(err, auth.ErrNoToken), errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrExpiredToken):
		return apiError(http.StatusUnauthorized, "unauthorized", err.Error())
	case errors.Is(err, context.Canceled):
		return apiError(499, "canceled", "the request was canceled")
	}
	a.log.ErrorContext(ctx, "request failed", "err", err)
	return apiError(http.StatusInternalServerError, "internal", "internal error; the server log has the details")
}

func notFound() *Error {
	return apiError(http.StatusNotFound, "not_found", "no such job, or it is not yours to see")
}
