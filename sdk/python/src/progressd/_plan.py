"""What every API call does, written once for both clients.

Each call is a *plan*: a generator that yields ``Send`` (a request to make)
and ``Sleep`` (a pause before a retry) and returns the call's result. The
sync ``Client`` and the ``AsyncClient`` only drive plans — one with blocking
I/O and ``time.sleep``, the other with ``await`` — so retries, backoff,
error mapping and the rules below cannot drift between them.

Retries: a connection error, a timeout, or a 429/502/503/504 answer is
retried with exponential backoff and full jitter (``backoff_base`` doubling
up to ``backoff_max``, honouring ``Retry-After``) until ``retry_window``
seconds have passed since the call began; then the call raises
``ConnectionFailed`` or the typed error. A 503 from progressd means nothing
was changed, so any call may be retried. A request that may have reached the
server before its connection broke is retried too: reports and cancels are
idempotent in effect, creates carry an Idempotency-Key, and a terminal
report or cancel whose first try did land (so the retry gets 409
``job_finished``) is recognised by reading the job back: the state it asked
for is there, so the call succeeds. A terminal report is thus never lost
while the server comes back within the window, and never reported twice.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Generator, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote

import httpx

from .errors import APIError, ConnectionFailed, JobCanceled, JobFinished, error_from_response
from .models import LogPage, Page, Snapshot

# The statuses worth retrying: the server (or a proxy before it) is
# starting, overloaded or has a store down, and changed nothing.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Transport errors raised before the request was written: retrying them can
# never apply anything twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Settings:
    """A client's configuration (see ``Client`` for what each means)."""

    server: str
    token: Optional[str]
    timeout: float
    retry_window: float
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int, started: float, retry_after: Optional[float] = None) -> Optional[float]:
        """The pause before retry number ``attempt`` (from 0), or None when
        the retry window would be over by then."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** min(attempt, 30)))
        delay = self.rng.uniform(cap / 2, cap)  # jitter, but never a busy loop
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max * 5))
        left = started + self.retry_window - time.monotonic()
        if left <= 0:
            return None
        return min(delay, left)


@dataclass(frozen=True)
class Send:
    method: str
    path: str
    params: Optional[Dict[str, Any]] = None
    json: Any = None
    headers: Optional[Dict[str, str]] = None
    content: Optional[bytes] = None  # a body encoded already (with a Content-Type in headers)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Plan = Generator[Union[Send, Sleep], Any, Any]


def _retry_after(resp: httpx.Response) -> Optional[float]:
    v = resp.headers.get("Retry-After")
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def request(cfg: Settings, send: Send) -> Plan:
    """Send with retries; return the decoded JSON; raise a typed error. An
    APIError raised after a retry of a request that may have landed has
    ``maybe_applied = True``."""
    started = time.monotonic()
    attempt = 0
    maybe_sent = False
    while True:
        try:
            resp = yield send
        except httpx.TransportError as e:
            maybe_sent = maybe_sent or not isinstance(e, _NOT_SENT)
            delay = cfg.backoff(attempt, started)
            if delay is None:
                raise ConnectionFailed(
                    f"{send.method} {send.path}: could not reach progressd at {cfg.server} "
                    f"within the {cfg.retry_window:g} s retry window ({type(e).__name__}: {e}); "
                    "is it running, and is the server URL right?"
                ) from e
            yield Sleep(delay)
            attempt += 1
            continue
        body = _json(resp)
        if resp.status_code in RETRY_STATUSES:
            delay = cfg.backoff(attempt, started, _retry_after(resp))
            if delay is not None:
                yield Sleep(delay)
                attempt += 1
                continue
        if resp.status_code >= 400:
            err = error_from_response(resp.status_code, body, resp.text, method=send.method, path=send.path)
            err.maybe_applied = maybe_sent  # type: ignore[attr-defined]
            raise err
        return body


def _job_path(job_id: str, suffix: str = "") -> str:
    if not job_id or not isinstance(job_id, str):
        raise ValueError("a job id is required (a non-empty string)")
    return "/api/v1/jobs/" + quote(job_id, safe="") + suffix


def _finite(name: str, v: Any, lo: float = 0.0, hi: Optional[float] = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    f = float(v)
    if math.isnan(f) or math.isinf(f) or f < lo or (hi is not None and f > hi):
        rng = f"from {lo:g} to {hi:g}" if hi is not None else f"≥ {lo:g}"
        raise ValueError(f"{name} must be a finite number {rng}, got {v!r}")
    return f


def stage_specs(stages: Optional[Sequence[Any]]) -> Optional[List[Dict[str, Any]]]:
    """Stages as the API takes them, from names, (name, weight) pairs or dicts."""
    if stages is None:
        return None
    out: List[Dict[str, Any]] = []
    for s in stages:
        if isinstance(s, str):
            out.append({"name": s})
        elif isinstance(s, Mapping):
            out.append(dict(s))
        elif isinstance(s, (tuple, list)) and len(s) == 2:
            out.append({"name": s[0], "weight": _finite("stage weight", s[1])})
        else:
            raise TypeError(f"a stage is a name, a (name, weight) pair or a dict, got {s!r}")
    return out


def report_body(
    progress: Optional[float] = None,
    *,
    stage: Optional[str] = None,
    current: Optional[float] = None,
    total: Optional[float] = None,
    message: Optional[str] = None,
    state: Optional[str] = None,
    error: Optional[str] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    result: Optional[Mapping[str, Any]] = None,
    log: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """A report's JSON body with only the fields given (the server refuses
    unknown ones, and an absent field means "unchanged"). Numbers are
    checked here, because JSON cannot carry NaN at all."""
    body: Dict[str, Any] = {}
    if progress is not None:
        body["progress"] = _finite("progress", progress, 0.0, 1.0)
    if current is not None:
        body["current"] = _finite("current", current)
    if total is not None:
        body["total"] = _finite("total", total)
    for k, v in (("stage", stage), ("message", message), ("state", state), ("error", error)):
        if v is not None:
            body[k] = str(v)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if result is not None:
        body["result"] = dict(result)
    if log:
        body["log"] = [str(x) for x in log]
    return body


def create(cfg: Settings, body: Dict[str, Any], idempotency_key: Optional[str]) -> Plan:
    """Create a job. The Idempotency-Key (one per call, the same on every
    retry) lets the server answer a retry with the job the first try made."""
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    data = yield from request(cfg, Send("POST", "/api/v1/jobs", json=body, headers=headers))
    return Snapshot.from_dict(data)


def get(cfg: Settings, job_id: str) -> Plan:
    data = yield from request(cfg, Send("GET", _job_path(job_id)))
    return Snapshot.from_dict(data)


def after_finished(cfg: Settings, job_id: str, err: JobFinished, wanted: Optional[str]) -> Plan:
    """A 409 job_finished: read the job back. If a retried request asking
    for ``wanted`` finds the job in that state, the first try landed and the
    call succeeded: return the snapshot. Otherwise raise the error with the
    job's state, as JobCanceled when it was canceled."""
    try:
        snap = yield from get(cfg, job_id)
    except APIError:
        snap = None
    if snap is not None and wanted and getattr(err, "maybe_applied", False) and snap.state == wanted:
        return snap
    if snap is not None and snap.state == "canceled":
        new = JobCanceled(err.status, err.code, f"job {job_id} was canceled ({snap.error or 'canceled'}); stop working on it",
                          method=err.method, path=err.path)
        new.state = snap.state
        raise new from err
    if snap is not None:
        err.state = snap.state
    raise err


def report(cfg: Settings, job_id: str, body: Dict[str, Any]) -> Plan:
    try:
        data = yield from request(cfg, Send("POST", _job_path(job_id, "/progress"), json=body))
    except JobFinished as e:
        return (yield from after_finished(cfg, job_id, e, body.get("state")))
    return Snapshot.from_dict(data)


def cancel(cfg: Settings, job_id: str) -> Plan:
    try:
        data = yield from request(cfg, Send("POST", _job_path(job_id, "/cancel")))
    except JobFinished as e:
        return (yield from after_finished(cfg, job_id, e, "canceled"))
    return Snapshot.from_dict(data)


def log(cfg: Settings, job_id: str, lines: Sequence[str]) -> Plan:
    """Append log lines; returns the number of the job's newest line."""
    if isinstance(lines, str):
        lines = [lines]
    body = {"lines": [str(x) for x in lines]}
    try:
        data = yield from request(cfg, Send("POST", _job_path(job_id, "/logs"), json=body))
    except JobFinished as e:
        return (yield from after_finished(cfg, job_id, e, None))
    return int((data or {}).get("last", 0))


# The status a per-report error of a batch stands for, to pick its class.
_BATCH_STATUS = {"unauthorized": 401, "forbidden": 403, "not_found": 404, "job_finished": 409, "conflict": 409,
                 "too_large": 413, "unavailable": 503}


def encode_batch_item(job_id: str, body: Mapping[str, Any]) -> bytes:
    """One report of a batch, as JSON (``job_id`` and the report's fields)."""
    return json.dumps(dict(body, job_id=job_id), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def report_many(cfg: Settings, reports: Sequence[Mapping[str, Any]]) -> Plan:
    """POST /api/v1/reports: each report applied as if posted alone; the
    result per report, in order, is its seq or its typed error."""
    if not 1 <= len(reports) <= 1000:
        raise ValueError(f"a batch holds 1 to 1,000 reports, got {len(reports)}")
    items = []
    for r in reports:
        fields = dict(r)
        job_id = fields.pop("job_id", None)
        if not job_id or not isinstance(job_id, str):
            raise ValueError("every report in a batch needs a job_id")
        items.append(encode_batch_item(job_id, report_body(**fields)))
    return (yield from report_batch(cfg, items))


def report_batch(cfg: Settings, items: Sequence[bytes]) -> Plan:
    """POST /api/v1/reports with reports encoded already (encode_batch_item);
    returns each one's seq or typed error, in order."""
    content = b'{"reports":[' + b",".join(items) + b"]}"
    data = yield from request(cfg, Send("POST", "/api/v1/reports", content=content,
                                        headers={"Content-Type": "application/json"}))
    results = (data or {}).get("results") or []
    if len(results) != len(items):
        raise APIError(200, "bad_answer", f"{len(items)} reports sent, {len(results)} results answered",
                       method="POST", path="/api/v1/reports")
    out: List[Union[int, APIError]] = []
    for res in results:
        err = res.get("error") if isinstance(res, dict) else None
        if isinstance(err, dict):
            code = str(err.get("code") or "")
            out.append(error_from_response(_BATCH_STATUS.get(code, 400), {"error": err}, method="POST", path="/api/v1/reports"))
        else:
            out.append(int(res.get("seq", 0)))
    return out


def read_logs(cfg: Settings, job_id: str, after: Optional[int], limit: Optional[int]) -> Plan:
    q = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
    data = yield from request(cfg, Send("GET", _job_path(job_id, "/logs"), params=q))
    return LogPage.from_dict(data or {})


def list_jobs(cfg: Settings, params: Dict[str, Any]) -> Plan:
    q = {k: v for k, v in params.items() if v is not None}
    if isinstance(q.get("state"), (list, tuple, set, frozenset)):
        q["state"] = ",".join(q["state"])
    data = yield from request(cfg, Send("GET", "/api/v1/jobs", params=q))
    return Page.from_dict(data or {})


def create_body(
    project: str,
    *,
    name: Optional[str] = None,
    pipeline: Optional[str] = None,
    params: Optional[Mapping[str, str]] = None,
    stages: Optional[Sequence[Any]] = None,
    tags: Optional[Sequence[str]] = None,
    parent_id: Optional[str] = None,
    weight: Optional[float] = None,
    expected_children: Optional[int] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    owner: Optional[str] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """A create request's body with only the fields given."""
    if not project or not isinstance(project, str):
        raise ValueError("project is required: the project the job belongs to, such as 'imports'")
    body: Dict[str, Any] = {"project": project}
    for k, v in (
        ("name", name),
        ("pipeline", pipeline),
        ("params", dict(params) if params is not None else None),
        ("stages", stage_specs(stages)),
        ("tags", list(tags) if tags is not None else None),
        ("parent_id", parent_id),
        ("weight", weight),
        ("expected_children", expected_children),
        ("metadata", dict(metadata) if metadata is not None else None),
        ("owner", owner),
    ):
        if v is not None:
            body[k] = v
    body.update({k: v for k, v in extra.items() if v is not None})
    return body
