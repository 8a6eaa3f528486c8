"""The synchronous client: ``Client`` and its ``Job`` handle."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import httpx

from . import _plan
from ._job import JobBase
from ._plan import Plan, Send, Settings, Sleep
from ._version import __version__
from ._watch import Follower, SSEParser
from .errors import APIError, JobCanceled
from .models import LogPage, Page, Snapshot
from .reporter import Reporter

DEFAULT_SERVER = "http://127.0.0.1:8000"


def _settings(server: Optional[str], token: Optional[str], timeout: float, retry_window: float) -> Settings:
    server = (server or os.environ.get("PROGRESSD_SERVER") or DEFAULT_SERVER).rstrip("/")
    url = httpx.URL(server)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"server {server!r} must be a URL such as {DEFAULT_SERVER}")
    if token is None:
        token = os.environ.get("PROGRESSD_TOKEN") or None
    if timeout <= 0 or retry_window < 0:
        raise ValueError("timeout must be > 0 and retry_window ≥ 0 seconds")
    return Settings(server=server, token=token, timeout=float(timeout), retry_window=float(retry_window))


def _http_options(cfg: Settings, transport: Any) -> Dict[str, Any]:
    """The arguments of the httpx client under a Client or AsyncClient."""
    h = {"Accept": "application/json", "User-Agent": f"progressd-python/{__version__}"}
    if cfg.token:
        h["Authorization"] = "Bearer " + cfg.token
    return {"base_url": cfg.server, "headers": h, "timeout": cfg.timeout, "transport": transport}


class _ClientBase:
    def __init__(self, server: Optional[str], token: Optional[str], timeout: float, retry_window: float) -> None:
        self._cfg = _settings(server, token, timeout, retry_window)

    @property
    def server(self) -> str:
        return self._cfg.server

    @property
    def timeout(self) -> float:
        return self._cfg.timeout

    @property
    def retry_window(self) -> float:
        return self._cfg.retry_window

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._cfg.server}>"


class Job(JobBase):
    """A handle on one job (see ``JobBase``): ``id``, ``report``, ``log``,
    ``cancel``, ``tqdm``. As a context manager it reports ``succeeded``
    when the block ends, ``failed`` with the exception when one escapes,
    and ends quietly (swallowing ``JobCanceled``) when the job was canceled."""

    _reporter_class = Reporter
    client: "Client"

    def cancel(self) -> Snapshot:
        return self.client.cancel(self.id)

    def get(self) -> Snapshot:
        """The job's latest snapshot (also kept as ``job.snapshot``)."""
        self.snapshot = self.client.get(self.id)
        return self.snapshot

    def watch(self, timeout: Optional[float] = None) -> Iterator[Snapshot]:
        return self.client.watch(self.id, timeout=timeout)

    def child(self, name: Optional[str] = None, **fields: Any) -> "Job":
        """Create a child job (same project; ``weight``, ``stages``…): the
        parent's progress follows its children's."""
        return self.client.create_job(self.snapshot.project, **self._child_fields(name, fields))

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send what the reporter holds now and wait for it."""
        if self._reporter is not None:
            self._reporter.flush(timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver what is pending and stop the reporter's thread."""
        if self._reporter is not None:
            self._reporter.close(timeout)

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        final = self._exit_report(exc)
        try:
            if final:
                self.reporter.report(**final)
            self.close()
        except Exception:
            if exc is None:
                raise
        return isinstance(exc, JobCanceled)


class Client(_ClientBase):
    """A client for one progressd server, safe to share between threads.

    ``server`` defaults to ``$PROGRESSD_SERVER`` or http://127.0.0.1:8000,
    ``token`` to ``$PROGRESSD_TOKEN``. ``timeout`` bounds every request
    (connect, read, write); ``retry_window`` is how long a call keeps
    retrying a server that is unreachable or answers 503 before it raises
    (see ``progressd._plan`` for the rules). Close it, or use ``with``.
    """

    def __init__(
        self,
        server: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retry_window: float = 30.0,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        super().__init__(server, token, timeout, retry_window)
        self._http = httpx.Client(**_http_options(self._cfg, transport))

    def _run(self, plan: Plan) -> Any:
        """Drive a plan with blocking I/O."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = plan.send(None)
                    continue
                assert isinstance(step, Send)
                try:
                    resp = self._http.request(step.method, step.path, params=step.params, json=step.json,
                                              content=step.content, headers=step.headers)
                except httpx.TransportError as e:
                    step = plan.throw(e)
                    continue
                step = plan.send(resp)
        except StopIteration as stop:
            return stop.value

    def create_job(self, project: str, *, idempotency_key: Optional[str] = None, min_interval: float = 0.1, **fields: Any) -> Job:
        """Create a job and return its handle. ``fields``: ``name``,
        ``stages`` (names, (name, weight) pairs or dicts), ``pipeline``,
        ``params``, ``tags``, ``parent_id``, ``weight``, ``metadata``…
        A retried create carries the same Idempotency-Key."""
        body = _plan.create_body(project, **fields)
        snap = self._run(_plan.create(self._cfg, body, idempotency_key))
        return Job(self, snap, min_interval=min_interval)

    def job(self, project: str, **fields: Any) -> Job:
        """``with client.job(project=…) as job:`` — create_job for a ``with`` block."""
        return self.create_job(project, **fields)

    def attach(self, job_id: str, *, min_interval: float = 0.1) -> Job:
        """A handle on an existing job (a worker given a job id)."""
        return Job(self, self.get(job_id), min_interval=min_interval)

    def get(self, job_id: str) -> Snapshot:
        return self._run(_plan.get(self._cfg, job_id))

    def report(self, job_id: str, progress: Optional[float] = None, **fields: Any) -> Snapshot:
        """Send one report now and return the snapshot it produced. Raises
        ``JobCanceled`` / ``JobFinished`` (409) once the job is over."""
        return self._run(_plan.report(self._cfg, job_id, _plan.report_body(progress, **fields)))

    def report_many(self, reports: Sequence[Dict[str, Any]]) -> List[Union[int, APIError]]:
        """Up to 1,000 reports (dicts with ``job_id`` and report fields) in one
        request; returns, in order, each one's new ``seq`` or its typed error."""
        return self._run(_plan.report_many(self._cfg, reports))

    def log(self, job_id: str, lines: Union[str, Sequence[str]]) -> int:
        """Append log lines now; returns the number of the job's newest line."""
        return self._run(_plan.log(self._cfg, job_id, lines))

    def cancel(self, job_id: str) -> Snapshot:
        return self._run(_plan.cancel(self._cfg, job_id))

    def logs(self, job_id: str, *, after: Optional[int] = None, limit: Optional[int] = None) -> LogPage:
        """The job's kept log lines after line ``after`` (all kept ones without it)."""
        return self._run(_plan.read_logs(self._cfg, job_id, after, limit))

    def list(self, project: Optional[str] = None, *, state: Any = None, limit: Optional[int] = None,
             cursor: Optional[str] = None, **filters: Any) -> Page:
        """One page of the jobs the caller may see, newest first."""
        return self._run(_plan.list_jobs(self._cfg, dict(filters, project=project, state=state, limit=limit, cursor=cursor)))

    def iter_jobs(self, project: Optional[str] = None, **filters: Any) -> Iterator[Snapshot]:
        """Every job the caller may see, page after page."""
        cursor = None
        while True:
            page = self.list(project, cursor=cursor, **filters)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def watch(self, job_id: str, *, timeout: Optional[float] = None) -> Iterator[Snapshot]:
        """Snapshots of the job as they change, over Server-Sent Events,
        ending with the terminal one. Reconnects when the stream drops
        (raising ``ConnectionFailed`` after the retry window without one);
        only snapshots newer than every one before are yielded. ``timeout``:
        raise ``WatchTimeout`` if the job has not finished by then."""
        f = Follower(self._cfg, job_id, timeout)
        while True:
            try:
                with self._http.stream("GET", f.path, headers={"Accept": "text/event-stream"},
                                       timeout=f.request_timeout()) as resp:
                    if resp.status_code >= 400:
                        delay = f.on_status(resp.status_code, resp.read().decode("utf-8", "replace"))
                    else:
                        parser = SSEParser()
                        for line in resp.iter_lines():
                            ev = parser.feed(line.rstrip("\r\n"))
                            snap = f.on_event(*ev) if ev else None
                            if snap is not None:
                                yield snap
                                if f.done:
                                    return
                            f.check_deadline()
                        delay = f.on_end()
            except httpx.TransportError as e:
                delay = f.on_error(e)
            time.sleep(delay)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
