"""``progressd.tqdm.tqdm``: a drop-in tqdm whose bar is also a job's progress.

It subclasses tqdm (as ``tqdm.contrib.slack`` does) and reports from
``display``, which tqdm already calls at most every ``mininterval`` (0.1 s):
the loop itself runs tqdm's own fast path, untouched. Each report carries
the bar's fraction (to ``stage`` when given), ``current``/``total`` and a
message with the description, count and rate, and goes through the job's
coalescing ``Reporter`` (so it never waits on the network).

Nested bars on the same job and stage refine each other, like the bars on
a terminal: an outer bar over 3 files at 1 and an inner bar over a file's
bytes at 50% report 0.5. A bar with another ``stage`` reports that stage.
A bar with ``child=True`` (or a dict of create fields, such as
``{"weight": 2}``) is a child job of ``job``, named by its ``desc``: the
parent's progress is then its children's weighted mean (declare
``expected_children`` on the parent when you know how many), and the child
succeeds when its bar runs to the end, or fails where it stopped.
When the job is canceled, the next display raises ``JobCanceled`` out of
the loop.

Needs the ``tqdm`` extra; ``progressd.tqdm.rich`` is the same over
``tqdm.rich`` (the ``rich`` extra).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

from tqdm.std import tqdm as _std_tqdm

from .errors import JobFinished
from .reporter import Reporter

_MAX_MESSAGE = 1000  # the server takes 1,024 bytes; leave room for multi-byte text

_stacks_lock = threading.Lock()


def _resolve(job: Any, client: Any, min_interval: float, child: Any, desc: Any) -> "tuple[Any, bool]":
    """The reporter a bar reports through, and whether the bar owns it.
    With ``child``, a new child job of ``job`` is created for the bar."""
    if job is None:
        raise TypeError("progressd.tqdm.tqdm needs job= (a Job or a job id)")
    if client is None:
        client = getattr(job, "client", None)
    if client is None:
        from .client import Client

        client = Client()
    if child:
        from .client import Client, Job

        if not isinstance(client, Client):
            raise TypeError("child=True needs a synchronous Client (or a Job of one): the bar creates its job as it starts")
        parent = job.snapshot if isinstance(job, Job) else client.get(job)
        fields = dict(child) if isinstance(child, dict) else {}
        if desc and "name" not in fields:
            fields["name"] = str(desc)
        kid = client.create_job(parent.project, parent_id=parent.job_id, min_interval=min_interval, **fields)
        return kid.reporter, True
    own = getattr(job, "reporter", None)
    if own is not None:
        return own, False
    return Reporter(client, job, min_interval), True


class ReportingMixin:
    """The reporting part, for any tqdm class that draws through ``display``."""

    def __init__(self, iterable: Any = None, *args: Any, job: Any = None, client: Any = None,
                 stage: Optional[str] = None, child: Any = False, min_interval: float = 0.1, **kwargs: Any) -> None:
        self._pd_reporter, self._pd_owned = _resolve(job, client, min_interval, child, kwargs.get("desc"))
        self._pd_child = bool(child)
        self._pd_stage = stage
        self._pd_closed = False
        with _stacks_lock:
            stack: List[Any] = self._pd_reporter.__dict__.setdefault("_tqdm_bars", [])
            stack.append(self)
        super().__init__(iterable, *args, **kwargs)  # type: ignore[call-arg]

    # tqdm calls display() whenever it redraws: that is the report.
    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> Any:
        shown = super().display(msg, pos)  # type: ignore[misc]
        if not self._pd_closed:
            self._pd_report()
        return shown

    def refresh(self, nolock: bool = False, lock_args: Any = None) -> Any:
        """tqdm's refresh, without its lock leak: it takes tqdm's lock, calls
        display() and releases the lock with no ``finally``, so the
        JobCanceled our display raises would leave the lock held and hang
        every later bar of the process (and its exit, which joins tqdm's
        monitor thread, waiting for that lock)."""
        try:
            return super().refresh(nolock=nolock, lock_args=lock_args)  # type: ignore[misc]
        except JobFinished:
            if nolock:
                return True  # tqdm's monitor thread, holding the lock itself: the loop's own next refresh raises
            self._lock.release()  # type: ignore[attr-defined]
            raise

    def _pd_chain(self) -> List[Any]:
        """The open bars of this job and stage, outermost first."""
        with _stacks_lock:
            bars = list(self._pd_reporter.__dict__.get("_tqdm_bars", ()))
        return [b for b in bars if b._pd_stage == self._pd_stage]

    def _pd_body(self) -> Dict[str, Any]:
        d = self.format_dict  # type: ignore[attr-defined]
        n, total = d["n"], d["total"]
        body: Dict[str, Any] = {}
        if self._pd_stage is not None:
            body["stage"] = self._pd_stage
        chain = self._pd_chain() or [self]
        outer = chain[0]
        fraction, scale = 0.0, 1.0
        for bar in chain:
            if not bar.total:
                break
            fraction += scale * min(bar.n, bar.total) / bar.total
            scale /= bar.total
        if outer.total:
            body["progress"] = min(1.0, max(0.0, fraction))
            if 0 <= outer.n <= outer.total:
                body["current"], body["total"] = float(outer.n), float(outer.total)
        elif n >= 0:
            body["current"] = float(n)
        body["message"] = self._pd_message(d, n, total)
        return body

    def _pd_message(self, d: Dict[str, Any], n: Any, total: Any) -> str:
        fmt = _std_tqdm.format_sizeof
        unit = d.get("unit") or "it"
        scale = d.get("unit_scale")
        count = (fmt(n) if scale else str(n)) + ("/" + (fmt(total) if scale else str(total)) if total else "")
        rate = d.get("rate")
        if rate is None and d.get("elapsed"):
            rate = n / d["elapsed"]
        parts = [p for p in (d.get("prefix") or "", f"{count} {unit}" if not total else count) if p]
        if rate:
            parts.append(f"{fmt(rate) if scale else f'{rate:.1f}'} {unit}/s")
        msg = " · ".join(parts)
        return msg[:_MAX_MESSAGE]

    def _pd_report(self) -> None:
        self._pd_reporter.report(**self._pd_body())

    def close(self) -> None:
        if self._pd_closed:
            return super().close()  # type: ignore[misc]
        drawn = not getattr(self, "disable", True)
        try:
            super().close()  # type: ignore[misc]
            self._pd_closed = True
            if drawn:
                try:
                    self._pd_report()  # the final count, even if tqdm drew no final frame
                except JobFinished:
                    pass
        finally:
            self._pd_closed = True
            with _stacks_lock:
                stack = self._pd_reporter.__dict__.get("_tqdm_bars", [])
                if self in stack:
                    stack.remove(self)
            if self._pd_child and drawn:
                self._pd_finish_child()
            if self._pd_owned:
                self._pd_reporter.close()

    def _pd_finish_child(self) -> None:
        """A child bar's job ends with the bar: succeeded when it ran to its
        total (or its iterable ran out), failed where it stopped otherwise."""
        done = self.total is None or self.n >= self.total  # type: ignore[attr-defined]
        try:
            if done:
                self._pd_reporter.report(state="succeeded")
            else:
                self._pd_reporter.report(state="failed", error=f"the bar stopped at {self.n}/{self.total}")  # type: ignore[attr-defined]
        except JobFinished:
            pass


class tqdm(ReportingMixin, _std_tqdm):  # noqa: N801 - the name users import
    """``tqdm(iterable, job=…, client=None, stage=None, **tqdm_kwargs)``: a
    tqdm bar that also reports to ``job`` (a ``Job``, or a job id with
    ``client``). Everything else is tqdm's."""


def trange(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(range(*args), **kwargs)``."""
    return tqdm(range(*args), **kwargs)


def __getattr__(name: str) -> Any:
    # progressd.tqdm.rich is built on first use: it needs the rich extra.
    if name == "rich":
        from tqdm.rich import tqdm_rich

        cls = type("rich", (ReportingMixin, tqdm_rich), {"__doc__": "``tqdm`` over ``tqdm.rich`` (the rich extra)."})
        globals()["rich"] = cls
        return cls
    raise AttributeError(name)
