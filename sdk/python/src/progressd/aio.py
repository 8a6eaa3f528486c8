"""The asyncio client: ``AsyncClient`` and ``AsyncJob``, the same calls as
``Client`` and ``Job`` with ``await`` (the plans in ``_plan`` are shared)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List, Optional, Sequence, Union

import httpx

from . import _plan
from ._job import JobBase
from ._plan import Plan, Send, Sleep
from ._watch import Follower, SSEParser
from .client import _ClientBase, _http_options
from .errors import APIError, JobCanceled
from .models import LogPage, Page, Snapshot
from .reporter import AsyncReporter


class AsyncJob(JobBase):
    """``Job`` for asyncio. ``report``/``log``/``tqdm`` stay plain calls
    (they only queue); ``cancel``, ``get``, ``flush`` and ``aclose`` are
    awaited; ``async with`` ends it as ``Job``'s ``with`` does."""

    _reporter_class = AsyncReporter
    client: "AsyncClient"

    async def cancel(self) -> Snapshot:
        return await self.client.cancel(self.id)

    async def get(self) -> Snapshot:
        self.snapshot = await self.client.get(self.id)
        return self.snapshot

    def watch(self, timeout: Optional[float] = None) -> AsyncIterator[Snapshot]:
        return self.client.watch(self.id, timeout=timeout)

    async def child(self, name: Optional[str] = None, **fields: Any) -> "AsyncJob":
        """See ``Job.child``."""
        return await self.client.create_job(self.snapshot.project, **self._child_fields(name, fields))

    async def flush(self, timeout: Optional[float] = None) -> None:
        if self._reporter is not None:
            await self._reporter.flush(timeout)

    async def aclose(self, timeout: Optional[float] = None) -> None:
        if self._reporter is not None:
            await self._reporter.aclose(timeout)

    async def __aenter__(self) -> "AsyncJob":
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        final = self._exit_report(exc)
        try:
            if final:
                self.reporter.report(**final)
            await self.aclose()
        except Exception:
            if exc is None:
                raise
        return isinstance(exc, JobCanceled)


class AsyncClient(_ClientBase):
    """``Client`` for asyncio, with the same arguments and methods."""

    def __init__(
        self,
        server: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retry_window: float = 30.0,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        super().__init__(server, token, timeout, retry_window)
        self._http = httpx.AsyncClient(**_http_options(self._cfg, transport))

    async def _run(self, plan: Plan) -> Any:
        """Drive a plan with awaited I/O."""
        try:
            step = next(plan)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = plan.send(None)
                    continue
                assert isinstance(step, Send)
                try:
                    resp = await self._http.request(step.method, step.path, params=step.params, json=step.json,
                                                    content=step.content, headers=step.headers)
                except httpx.TransportError as e:
                    step = plan.throw(e)
                    continue
                step = plan.send(resp)
        except StopIteration as stop:
            return stop.value

    async def create_job(self, project: str, *, idempotency_key: Optional[str] = None, min_interval: float = 0.1, **fields: Any) -> AsyncJob:
        body = _plan.create_body(project, **fields)
        snap = await self._run(_plan.create(self._cfg, body, idempotency_key))
        return AsyncJob(self, snap, min_interval=min_interval)

    def job(self, project: str, **fields: Any) -> "_JobContext":
        """``async with client.job(project=…) as job:``"""
        return _JobContext(self.create_job(project, **fields))

    async def attach(self, job_id: str, *, min_interval: float = 0.1) -> AsyncJob:
        return AsyncJob(self, await self.get(job_id), min_interval=min_interval)

    async def get(self, job_id: str) -> Snapshot:
        return await self._run(_plan.get(self._cfg, job_id))

    async def report(self, job_id: str, progress: Optional[float] = None, **fields: Any) -> Snapshot:
        return await self._run(_plan.report(self._cfg, job_id, _plan.report_body(progress, **fields)))

    async def report_many(self, reports: Sequence[Dict[str, Any]]) -> List[Union[int, APIError]]:
        return await self._run(_plan.report_many(self._cfg, reports))

    async def log(self, job_id: str, lines: Union[str, Sequence[str]]) -> int:
        return await self._run(_plan.log(self._cfg, job_id, lines))

    async def cancel(self, job_id: str) -> Snapshot:
        return await self._run(_plan.cancel(self._cfg, job_id))

    async def logs(self, job_id: str, *, after: Optional[int] = None, limit: Optional[int] = None) -> LogPage:
        return await self._run(_plan.read_logs(self._cfg, job_id, after, limit))

    async def list(self, project: Optional[str] = None, *, state: Any = None, limit: Optional[int] = None,
                   cursor: Optional[str] = None, **filters: Any) -> Page:
        return await self._run(_plan.list_jobs(self._cfg, dict(filters, project=project, state=state, limit=limit, cursor=cursor)))

    async def iter_jobs(self, project: Optional[str] = None, **filters: Any) -> AsyncIterator[Snapshot]:
        cursor = None
        while True:
            page = await self.list(project, cursor=cursor, **filters)
            for j in page.jobs:
                yield j
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def watch(self, job_id: str, *, timeout: Optional[float] = None) -> AsyncIterator[Snapshot]:
        """See ``Client.watch``."""
        f = Follower(self._cfg, job_id, timeout)
        while True:
            try:
                async with self._http.stream("GET", f.path, headers={"Accept": "text/event-stream"},
                                             timeout=f.request_timeout()) as resp:
                    if resp.status_code >= 400:
                        delay = f.on_status(resp.status_code, (await resp.aread()).decode("utf-8", "replace"))
                    else:
                        parser = SSEParser()
                        async for line in resp.aiter_lines():
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
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class _JobContext:
    """What ``AsyncClient.job`` returns: creates the job on ``async with``."""

    def __init__(self, create: Any) -> None:
        self._create = create
        self._job: Optional[AsyncJob] = None

    async def __aenter__(self) -> AsyncJob:
        self._job = await self._create
        return self._job

    async def __aexit__(self, *exc: Any) -> bool:
        assert self._job is not None
        return await self._job.__aexit__(*exc)
