"""Typed errors: one class per kind of answer, so callers catch what they mean.

Every error the SDK raises is a ``ProgressdError``. An answer from the server
is an ``APIError`` subclass chosen by status (and, for 409, by code) carrying
the API's stable ``code`` and its ``message``; a server that cannot be
reached within the retry window is ``ConnectionFailed``.
"""

from __future__ import annotations

from typing import Any, Optional


class ProgressdError(Exception):
    """Base class of every error the SDK raises."""


class ConnectionFailed(ProgressdError):
    """The server could not be reached (refused, reset, timed out) for the
    whole retry window. ``__cause__`` is the last transport error."""


class APIError(ProgressdError):
    """The server answered with an error: ``status``, the API's stable
    ``code`` (``not_found``, ``job_finished``…) and its ``message``."""

    status: int = 0

    def __init__(self, status: int, code: str, message: str, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{status} {code}: {message}" if message else f"{where}{status} {code}")


class BadRequest(APIError):
    """400: a bad value (progress outside [0, 1], unknown stage…); nothing changed."""


class Unauthorized(APIError):
    """401: no token, or a bad or expired one. Pass token= or set PROGRESSD_TOKEN."""


class Forbidden(APIError):
    """403: the token may not do this (another user's job, a scoped token)."""


class NotFound(APIError):
    """404: no such job, or it is not the caller's to see."""


class Conflict(APIError):
    """409: the request conflicts with the job's state."""


class JobFinished(Conflict):
    """409 ``job_finished``: the job is terminal, so it takes no more reports
    or log lines. ``state`` is its terminal state when the SDK could read it."""

    state: Optional[str] = None


class JobCanceled(JobFinished):
    """The job was canceled (by a user or a parent) while this worker ran:
    stop working on it. ``with client.job(...)`` ends its block quietly on
    this error."""


class TooLarge(APIError):
    """413 ``too_large``: the body (metadata, result, log lines) is over the limit."""


class IdempotencyConflict(APIError):
    """422 ``idempotency_conflict``: the Idempotency-Key was used with another body."""


class RateLimited(APIError):
    """429: too many requests or connections; retried, then raised."""


class Unavailable(APIError):
    """503: a store the server depends on is down; nothing was changed.
    Retried with backoff for the retry window, then raised."""


class ServerError(APIError):
    """Any other 5xx."""


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: IdempotencyConflict,
    429: RateLimited,
    503: Unavailable,
}


def error_from_response(status: int, body: Any, text: str = "", *, method: str = "", path: str = "") -> APIError:
    """The typed error for an error answer. ``body`` is the decoded JSON (or
    None); a body that is not the API's shape (a proxy's page) still gives
    a code made from the status and the first bytes of ``text``."""
    code, message = "", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code") or "")
        message = str(body["error"].get("message") or "")
    if not code:
        code = {500: "internal", 502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout"}.get(status, "http_%d" % status)
        message = text.strip()[:200]
    if code == "job_finished":
        cls: type = JobFinished
    elif status == 422 and code != "idempotency_conflict":
        cls = BadRequest
    else:
        cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, code, message, method=method, path=path)

