"""One sender for every Reporter of a Client: the reports of all the jobs
due at one tick go out together.

A process reporting on many jobs at once (a backend running a thousand
imports) would otherwise pay one request per job per ``min_interval``:
10,000 requests a second for 1,000 jobs at the default 0.1 s, which no
Python process sends. Here one thread per ``Client`` serves its reporters:
each tick it takes what every due reporter holds and sends it in as few
requests as the API allows —

- log lines first, one ``/logs`` request per job that has some (lines are
  never coalesced, and a refused report must not take its job's lines with
  it, so they do not ride in the reports);
- then the reports: a lone one to its job's ``/progress`` (the reporter
  gets the snapshot back, as ``Reporter.last``), several in one ``POST
  /api/v1/reports`` (up to ``BATCH_MAX`` reports and about
  ``BATCH_BYTES`` a request), each applied by the server as if posted
  alone and answered with its own seq or error.

A reporter's rules are unchanged (at most one request's worth per job per
``min_interval``, the terminal report last, a 409 stops the job, a server
away keeps the newest state pending): the reporter keeps its state; the
sender only decides when, and in which request, it goes. Jobs sent in the
same tick stay due together, so their reports keep sharing requests.

The tick itself is a plan (see ``_plan``), so it is written once; the
thread here drives it with the client's blocking I/O.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import _plan
from ._plan import Plan, Settings
from .errors import JobFinished

# The server takes at most 1,000 reports a batch, and 1 MiB + 64 KiB.
BATCH_MAX = 1000
BATCH_BYTES = 960 * 1024

# How long the sender's thread waits for new work before it ends (a new
# report starts another). The asyncio sender's task ends at once.
IDLE_SECONDS = 1.0


@dataclass
class Work:
    """One reporter's share of a tick, and what became of it."""

    reporter: Any
    lines: List[str]
    body: Dict[str, Any]
    lines_error: Optional[BaseException] = None
    # The report's fate: a Snapshot (sent alone), a seq (in a batch), the
    # exception that refused it; None if it was not sent (no body, or the
    # job turned out to be finished when its lines were sent).
    outcome: Any = None


def _chunks(work: List[Work]) -> Iterator[List[Tuple[Work, bytes]]]:
    chunk: List[Tuple[Work, bytes]] = []
    size = 0
    for w in work:
        enc = _plan.encode_batch_item(w.reporter.job_id, w.body)
        if chunk and (len(chunk) >= BATCH_MAX or size + len(enc) > BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append((w, enc))
        size += len(enc) + 1
    if chunk:
        yield chunk


def tick(cfg: Settings, work: List[Work]) -> Plan:
    """Send one tick's work (see the module doc); returns the number of
    requests it made, not counting retries. Every outcome is recorded on
    the Work, never raised."""
    requests = 0
    for w in work:
        if w.lines:
            requests += 1
            try:
                yield from _plan.log(cfg, w.reporter.job_id, w.lines)
            except Exception as e:  # recorded for the reporter; the others' work goes on
                w.lines_error = e
    reports = [w for w in work if w.body and not isinstance(w.lines_error, JobFinished)]
    if len(reports) == 1:
        w = reports[0]
        requests += 1
        try:
            w.outcome = yield from _plan.report(cfg, w.reporter.job_id, w.body)
        except Exception as e:
            w.outcome = e
        return requests
    for chunk in _chunks(reports):
        requests += 1
        try:
            results = yield from _plan.report_batch(cfg, [enc for _, enc in chunk])
        except Exception as e:
            for w, _ in chunk:
                w.outcome = e
            continue
        for (w, _), res in zip(chunk, results):
            if isinstance(res, JobFinished):
                # As for a report sent alone: a terminal report finding its
                # job in the state it asked for has landed (an earlier try,
                # or the job ended the same way elsewhere); else the error
                # says whether the job was canceled.
                res.maybe_applied = True  # type: ignore[attr-defined]
                try:
                    res = yield from _plan.after_finished(cfg, w.reporter.job_id, res, w.body.get("state"))
                except Exception as e:
                    res = e
            w.outcome = res
    return requests


class _SenderBase:
    """What both senders share: the reporters with work, and a tick's
    taking and settling. Reporters keep their own state; the sender only
    picks who is due."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.active: Dict[int, Any] = {}  # reporters with work pending or in flight, by id()
        self.requests = 0  # requests sent, retries not counted: for tests and benchmarks

    def forget(self, reporter: Any) -> None:
        """Called (with the lock held, for the threaded one) when ``reporter`` closes."""
        self.active.pop(id(reporter), None)

    def _due(self) -> Tuple[List[Work], Optional[float]]:
        """The work to send now (taken from the due reporters), or how long
        until the next reporter is due."""
        now = time.monotonic()
        work: List[Work] = []
        wait: Optional[float] = None
        for key, r in list(self.active.items()):
            if not r._pending.has_work():
                del self.active[key]  # nothing held: no reference kept either
            elif r._hurry or now >= r._next_at:
                lines, body = r._pending.take()
                r._inflight = True
                r._next_at = now + r.min_interval
                r.requests += bool(lines) + bool(body)
                work.append(Work(r, lines, body))
            else:
                left = r._next_at - now
                wait = left if wait is None else min(wait, left)
        return work, wait

    @staticmethod
    def _settle_all(work: List[Work], err: Optional[BaseException]) -> None:
        """Hand each reporter its outcome; ``err``: the tick itself failed
        (the client was closed under it), and every part not done yet
        learns why."""
        for w in work:
            if err is not None:
                if w.lines and w.lines_error is None:
                    w.lines_error = err
                if w.body and w.outcome is None and not isinstance(w.lines_error, JobFinished):
                    w.outcome = err
            w.reporter._settle(w)


class Sender(_SenderBase):
    """The thread that sends for every Reporter of one Client. Reporters
    share its condition (``cond``) as their lock."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.cond = threading.Condition()
        self.thread: Optional[threading.Thread] = None

    def wake(self, reporter: Any) -> None:
        """Called with ``cond`` held when ``reporter`` has new work."""
        self.active[id(reporter)] = reporter
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="progressd-reporter", daemon=True)
            self.thread.start()
        self.cond.notify_all()

    def alive(self) -> bool:
        t = self.thread
        return t is not None and t.is_alive()

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    work, wait = self._due()
                    if work:
                        break
                    if not self.active:
                        self.cond.wait(IDLE_SECONDS)
                        if not self.active:
                            self.thread = None
                            return
                        continue
                    self.cond.wait(wait)
            err: Optional[BaseException] = None
            try:
                self.requests += self.client._run(tick(self.client._cfg, work))
            except Exception as e:  # the client was closed under it: each reporter of the tick learns why
                err = e
            finally:
                with self.cond:
                    self._settle_all(work, err)
                    self.cond.notify_all()


class AsyncSender(_SenderBase):
    """The task that sends for every AsyncReporter of one AsyncClient, on
    the loop that first needed it. ``changed`` is set after every tick."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.task: Optional["asyncio.Task[None]"] = None
        # Made with the task, on its loop (Python 3.9 binds an Event to a loop).
        self.wakeup: Optional[asyncio.Event] = None
        self.changed: Optional[asyncio.Event] = None

    def wake(self, reporter: Any) -> None:
        self.active[id(reporter)] = reporter
        if self.task is None or self.task.done():
            self.wakeup, self.changed = asyncio.Event(), asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run())
        assert self.wakeup is not None
        self.wakeup.set()

    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def _sleep(self, seconds: Optional[float]) -> None:
        """Wait for a wake-up or ``seconds``."""
        assert self.wakeup is not None
        try:
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _run(self) -> None:
        assert self.wakeup is not None and self.changed is not None
        while True:
            self.wakeup.clear()
            work, wait = self._due()
            if not work:
                if not self.active:
                    return  # nothing held anywhere: the next report starts another task (cheap, and no task outlives the work)
                await self._sleep(wait)
                continue
            err: Optional[BaseException] = None
            try:
                self.requests += await self.client._run(tick(self.client._cfg, work))
            except Exception as e:  # the client was closed under it: each reporter of the tick learns why
                err = e
            finally:
                self._settle_all(work, err)
                self.changed.set()


_senders_lock = threading.Lock()


def sender_of(client: Any, kind: type = Sender) -> Any:
    """The client's sender (a ``Sender``, or an ``AsyncSender`` for an
    AsyncClient), made on first use."""
    s = getattr(client, "_sender", None)
    if s is None:
        with _senders_lock:
            s = getattr(client, "_sender", None)
            if s is None:
                s = client._sender = kind(client)
    return s
