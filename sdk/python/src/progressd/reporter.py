"""The coalescing reporter: report from a tight loop for the cost of a dict update.

``report()`` never waits on the network: it merges the report into the one
pending for the job and returns. A background thread (``Reporter``) or task
(``AsyncReporter``) sends what is pending at most once per ``min_interval``
(default 0.1 s) — so a loop of a million iterations costs about ten
requests a second — plus, when there are log lines, one ``/logs`` request
in the same tick (log lines are batched, never coalesced). The
``Reporter``s of one client share one thread (the ``AsyncReporter``s of an
``AsyncClient`` one task), and the reports of the jobs
due at the same tick go in one ``POST /api/v1/reports`` (``progressd._batch``):
a process reporting on a thousand jobs sends about ten requests a second,
not ten thousand.

Order: log lines go before the report of the same tick; the terminal report
(succeeded, failed, canceled) is always the last thing sent, and reports or
lines queued after it are dropped. ``flush()`` and ``close()`` send what is
pending at once and wait for it; ``close()`` raises if the terminal report
could not be delivered within the client's retry window. A ``Reporter`` is
closed by ``atexit`` too, and by its ``with`` block on any exception.

When the server answers 409 ``job_finished`` (the job was canceled or
finished elsewhere) the reporter stops sending, sets ``canceled`` (for a
canceled job), and every later ``report()`` raises the ``JobCanceled`` /
``JobFinished`` error: that is how a worker learns to stop. A server that is
unreachable or answers 503 for longer than the retry window only logs a
warning (the newest state stays pending and is sent when it is back), so
progress reporting never kills the work it reports on; a 400 (a bad value)
is raised from the next ``report()``.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _plan
from ._batch import AsyncSender, Work, sender_of
from .errors import ConnectionFailed, JobCanceled, JobFinished, ProgressdError, Unavailable
from .models import TERMINAL_STATES, Snapshot

if TYPE_CHECKING:
    from .aio import AsyncClient, AsyncJob
    from .client import Client, Job

log = logging.getLogger("progressd")

# A /logs request carries at most this many lines (the server's limit).
MAX_LINES_PER_REQUEST = 1000
# Lines waiting beyond this many are dropped, oldest first, with a warning:
# a loop logging faster than the server takes lines must not grow memory.
MAX_PENDING_LINES = 100_000

_FRACTION = ("progress", "current", "total")


class Coalescer:
    """What is waiting to be sent for one job; not thread-safe (the
    reporters hold a lock around it). Pure, so both reporters share it."""

    def __init__(self) -> None:
        self.body: Dict[str, Any] = {}
        self.lines: List[str] = []
        self.terminal = False  # a terminal report was queued: nothing after it
        self.dropped_lines = 0

    def add(self, body: Dict[str, Any]) -> bool:
        """Merge a report into the pending one; False if it came after the
        terminal report and was dropped."""
        if self.terminal:
            return False
        p = self.body
        if "stage" in body and body["stage"] != p.get("stage"):
            for k in _FRACTION:  # the old stage's numbers mean nothing for the new one
                p.pop(k, None)
        if "progress" in body:
            p.pop("current", None)
            p.pop("total", None)
        elif "current" in body or "total" in body:
            p.pop("progress", None)
        meta = body.get("metadata")
        if meta is not None and isinstance(p.get("metadata"), dict):
            body = dict(body, metadata={**p["metadata"], **meta})
        p.update(body)
        if body.get("state") in TERMINAL_STATES:
            self.terminal = True
        return True

    def add_lines(self, lines: Sequence[str]) -> bool:
        if self.terminal:
            return False
        self.lines.extend(lines)
        over = len(self.lines) - MAX_PENDING_LINES
        if over > 0:
            del self.lines[:over]
            self.dropped_lines += over
        return True

    def has_work(self) -> bool:
        return bool(self.body) or bool(self.lines)

    def take(self) -> Tuple[List[str], Dict[str, Any]]:
        """The next tick's lines and report. The terminal report stays back
        until every line queued before it is sent."""
        lines = self.lines[:MAX_LINES_PER_REQUEST]
        del self.lines[: len(lines)]
        body: Dict[str, Any] = {}
        if self.body and not (self.terminal and self.lines):
            body, self.body = self.body, {}
        return lines, body

    def put_back(self, body: Dict[str, Any]) -> None:
        """A report that could not be sent yet: newer fields win over it."""
        merged = dict(body)
        newer = self.body
        if "stage" in newer and newer["stage"] != merged.get("stage") or any(k in newer for k in _FRACTION):
            for k in _FRACTION:
                merged.pop(k, None)
        merged.update(newer)
        self.body = merged


class _Closing:
    """The clock of a close(): it keeps trying to deliver until its own
    ``timeout`` (if any) or the client's retry window runs out."""

    def __init__(self, timeout: Optional[float], retry_window: float) -> None:
        now = time.monotonic()
        self.deadline = None if timeout is None else now + timeout
        self.give_up = now + retry_window

    def left(self) -> Optional[float]:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def over(self) -> bool:
        now = time.monotonic()
        return now >= self.give_up or (self.deadline is not None and now >= self.deadline)


class _Base:
    """The state and rules both reporters share; subclasses do the I/O."""

    def __init__(self, client: Any, job: Any, min_interval: float) -> None:
        if min_interval < 0:
            raise ValueError("min_interval must be ≥ 0 seconds")
        self.client = client
        self.job_id: str = getattr(job, "id", job)
        if not isinstance(self.job_id, str) or not self.job_id:
            raise ValueError("job must be a Job or a job id")
        self.min_interval = float(min_interval)
        self.last: Optional[Snapshot] = None  # the newest snapshot the server answered with
        self.canceled = False
        self.finished: Optional[JobFinished] = None
        self.error: Optional[BaseException] = None  # a refused report, raised by the next call
        self.requests = 0  # requests sent, for tests and benchmarks
        self._pending = Coalescer()
        self._inflight = False  # a tick's requests are on their way
        self._failed_rounds = 0  # ticks whose delivery failed (server unreachable or 503)
        self._closed = False
        self._warned: Dict[str, float] = {}

    def _raise_pending_error(self) -> None:
        if self.finished is not None:
            raise self.finished
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def _queue(self, body: Dict[str, Any]) -> None:
        self._raise_pending_error()
        if self._closed:
            raise ProgressdError(f"the reporter for job {self.job_id} is closed")
        self._pending.add(body)

    def _queue_lines(self, lines: Sequence[str]) -> None:
        if self.finished is not None or self._closed:
            return  # a log record must never raise into the code that logged it
        self._pending.add_lines([str(x) for x in lines])

    def _warn(self, what: str, err: BaseException) -> None:
        """Log a delivery problem, at most once per kind every 10 s."""
        now = time.monotonic()
        if now - self._warned.get(what, -1e9) >= 10:
            self._warned[what] = now
            log.warning("progressd: %s for job %s: %s (will keep trying)", what, self.job_id, err)

    def _on_report_error(self, body: Dict[str, Any], err: BaseException) -> None:
        if isinstance(err, JobFinished):
            self.finished = err
            self.canceled = isinstance(err, JobCanceled)
            self._pending = Coalescer()
            self._pending.terminal = True
        elif isinstance(err, (ConnectionFailed, Unavailable)):
            self._pending.put_back(body)
            self._failed_rounds += 1
            self._warn("cannot deliver a report", err)
        else:
            self.error = err

    def _on_lines_error(self, err: BaseException) -> None:
        if isinstance(err, JobFinished):
            self.finished = err
            self.canceled = isinstance(err, JobCanceled)
        else:
            self._warn("cannot deliver log lines", err)

    def report(self, progress: Optional[float] = None, **fields: Any) -> None:
        """Queue a report (``stage``, ``current``, ``total``, ``message``,
        ``state``, ``error``, ``metadata``, ``result``), merged with the one
        pending; never waits on the network. Raises JobCanceled/JobFinished
        once the job is over, and a refused earlier report's error."""
        body = _plan.report_body(progress, **fields)
        if body:
            self._queue(body)
            self._wake()

    def log(self, *lines: str) -> None:
        """Queue log lines; they are sent in batches, in order, never coalesced."""
        if lines:
            self._queue_lines(lines)
            self._wake()

    def _wake(self) -> None:
        raise NotImplementedError

    def _settled(self, failed_before: int) -> bool:
        """Whether a flush that began when ``_failed_rounds`` was
        ``failed_before`` is over: everything sent, the job over, or a
        delivery failed since."""
        return (self.finished is not None or self._failed_rounds > failed_before
                or (not self._pending.has_work() and not self._inflight))

    def _after_flush(self) -> None:
        """Raise what a flush leaves: a refused report, or undelivered work."""
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        if self.finished is None and (self._pending.has_work() or self._inflight):
            raise ConnectionFailed(f"job {self.job_id}: reports are still pending: progressd at "
                                   f"{self.client.server} was unreachable for the retry window")

    def _settle(self, w: Work) -> None:
        """The sender's report on this reporter's share of a tick (``cond`` held)."""
        self._inflight = False
        if w.lines_error is not None:
            self._on_lines_error(w.lines_error)
        if isinstance(w.outcome, Snapshot):
            self.last = w.outcome
        elif isinstance(w.outcome, BaseException):
            self._on_report_error(w.body, w.outcome)

    def _undelivered(self) -> bool:
        return self.finished is None and self._pending.has_work()


class Reporter(_Base):
    """Coalescing reporter; see the module doc. ``Reporter(client, job,
    min_interval=0.1)``, where ``job`` is a ``Job`` or a job id. Safe to
    call from any thread. The reporters of one client share one sending
    thread, which puts the reports of the jobs due together in one request
    (see ``progressd._batch``)."""

    def __init__(self, client: "Client", job: Union["Job", str], min_interval: float = 0.1) -> None:
        super().__init__(client, job, min_interval)
        self._sender = sender_of(client)
        self._cond = self._sender.cond  # guards everything; an RLock inside
        self._hurry = 0  # flushes waiting: send without waiting for the interval
        self._next_at = 0.0  # when the sender may send for this job again
        ref = weakref.ref(self)

        def at_exit() -> None:
            r = ref()
            if r is not None:
                r._close_at_exit()

        self._atexit = at_exit
        atexit.register(at_exit)

    def _queue(self, body: Dict[str, Any]) -> None:
        with self._cond:
            super()._queue(body)

    def _queue_lines(self, lines: Sequence[str]) -> None:
        with self._cond:
            super()._queue_lines(lines)

    def _wake(self) -> None:
        with self._cond:
            if not self._closed:
                self._sender.wake(self)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send what is pending now, without waiting for the interval, and
        wait until it is delivered. Raises a refused report's error,
        ``ConnectionFailed`` if the server stayed unreachable for the
        client's retry window, ``TimeoutError`` after ``timeout`` seconds."""
        if sys.is_finalizing():
            # Python is tearing down (a bar or handler collected after
            # atexit): the sender thread is frozen and can never answer, so
            # waiting would hang the exit forever. atexit already flushed.
            log.warning("progressd: job %s: interpreter exiting, pending reports not sent", self.job_id)
            return
        with self._cond:
            if self._pending.has_work():
                self._wake()
            failed_before = self._failed_rounds
            self._hurry += 1
            self._cond.notify_all()
            try:
                ok = self._cond.wait_for(lambda: self._settled(failed_before) or not self._sender.alive(), timeout)
            finally:
                self._hurry -= 1
            if not ok:
                raise TimeoutError(f"job {self.job_id}: pending reports were not sent within {timeout} s")
            self._after_flush()

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver what is pending (trying again for the client's retry
        window while the server is unreachable), then stop.
        Raises a refused report's error or ``ConnectionFailed`` if work is
        left undelivered. Idempotent."""
        if self._closed:
            return
        atexit.unregister(self._atexit)
        if timeout is None:  # never wait forever: the retry window, and one request's timeout past it
            timeout = self.client.retry_window + self.client.timeout
        clock = _Closing(timeout, self.client.retry_window)
        try:
            while True:
                try:
                    self.flush(clock.left())
                    break
                except ConnectionFailed:
                    if clock.over():
                        raise
        finally:
            with self._cond:
                self._closed = True
                self._sender.forget(self)

    def _close_at_exit(self) -> None:
        try:
            self.close(timeout=self.client.retry_window + self.client.timeout)
        except Exception as e:  # at exit there is no caller left to raise to
            log.warning("progressd: at exit, job %s: %s", self.job_id, e)

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncReporter(_Base):
    """The same reporter for asyncio: ``report()`` stays a plain call that
    never awaits; one task per client on the running loop sends for all its
    reporters, batching as the threaded one does. Close it with ``async
    with`` or ``await aclose()``: a loop that ends first cancels the task."""

    def __init__(self, client: "AsyncClient", job: Union["AsyncJob", str], min_interval: float = 0.1) -> None:
        super().__init__(client, job, min_interval)
        self._sender = sender_of(client, AsyncSender)
        self._hurry = 0
        self._next_at = 0.0

    def _wake(self) -> None:
        if not self._closed:
            self._sender.wake(self)

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Send what is pending now and wait for it; see ``Reporter.flush``."""
        s = self._sender
        if self._pending.has_work():
            self._wake()
        if not s.alive():
            self._after_flush()
            return
        assert s.wakeup is not None and s.changed is not None
        failed_before = self._failed_rounds
        self._hurry += 1
        s.wakeup.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._settled(failed_before) and s.alive():
                s.changed.clear()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"job {self.job_id}: pending reports were not sent within {timeout} s")
                try:
                    await asyncio.wait_for(s.changed.wait(), left)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._hurry -= 1
        self._after_flush()

    async def aclose(self, timeout: Optional[float] = None) -> None:
        """Deliver what is pending, then stop; see ``Reporter.close``."""
        if self._closed:
            return
        clock = _Closing(timeout, self.client.retry_window)
        try:
            while True:
                try:
                    await self.flush(clock.left())
                    break
                except ConnectionFailed:
                    if clock.over():
                        raise
        finally:
            self._closed = True
            self._sender.forget(self)

    async def __aenter__(self) -> "AsyncReporter":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


