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
# report starts another).
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


class Sender:
    """The thread that sends for every Reporter of one Client. Reporters
    share its condition (``cond``) as their lock; ``requests`` counts the
    requests sent (retries not counted), for tests and benchmarks."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cond = threading.Condition()
        self.active: Dict[int, Any] = {}  # reporters with work pending or in flight, by id()
        self.thread: Optional[threading.Thread] = None
        self.requests = 0

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

    def forget(self, reporter: Any) -> None:
        """Called with ``cond`` held when ``reporter`` closes."""
        self.active.pop(id(reporter), None)

    def _due(self) -> Tuple[List[Any], Optional[float]]:
        """The reporters to send for now, or how long until the next one is due."""
        now = time.monotonic()
        due: List[Any] = []
        wait: Optional[float] = None
        for key, r in list(self.active.items()):
            if not r._pending.has_work():
                del self.active[key]  # nothing held: no reference kept either
            elif r._hurry or now >= r._next_at:
                due.append(r)
            else:
                left = r._next_at - now
                wait = left if wait is None else min(wait, left)
        return due, wait

    def _run(self) -> None:
        while True:
            with self.cond:
                while True:
                    due, wait = self._due()
                    if due:
                        break
                    if not self.active:
                        self.cond.wait(IDLE_SECONDS)
                        if not self.active:
                            self.thread = None
                            return
                        continue
                    self.cond.wait(wait)
                now = time.monotonic()
                work = []
                for r in due:
                    lines, body = r._pending.take()
                    r._inflight = True
                    r._next_at = now + r.min_interval
                    r.requests += bool(lines) + bool(body)
                    work.append(Work(r, lines, body))
            try:
                self.requests += self.client._run(tick(self.client._cfg, work))
            except Exception as e:  # the client was closed under it: each reporter of the tick learns why
                for w in work:
                    if w.lines and w.lines_error is None:
                        w.lines_error = e
                    if w.body and w.outcome is None and not isinstance(w.lines_error, JobFinished):
                        w.outcome = e
            finally:
                with self.cond:
                    for w in work:
                        w.reporter._settle(w)
                    self.cond.notify_all()


_senders_lock = threading.Lock()


def sender_of(client: Any) -> Sender:
    """The client's sender, made on first use."""
    s = getattr(client, "_sender", None)
    if s is None:
        with _senders_lock:
            s = getattr(client, "_sender", None)
            if s is None:
                s = client._sender = Sender(client)
    return s
