"""Following a job over Server-Sent Events, the part both clients share.

``Follower`` holds a watch's state — the highest ``seq`` seen, the retry
window, the overall deadline — and turns what the connection gives it
(a status, a line, an error) into snapshots to yield or a pause before
reconnecting. The clients' ``watch`` loops only do the I/O.
"""

from __future__ import annotations

import json
import time
from typing import Any, List, Optional

import httpx

from ._plan import RETRY_STATUSES, Settings, _job_path
from .errors import ConnectionFailed, ProgressdError, error_from_response
from .models import Snapshot

# The server sends ": ping" every 15 s on an idle stream; three missed
# pings mean the connection is dead even if TCP has not noticed.
READ_TIMEOUT = 45.0


class WatchTimeout(ProgressdError, TimeoutError):
    """``watch(timeout=…)`` passed before the job finished."""


class SSEParser:
    """The text/event-stream format, line by line (comments ignored)."""

    def __init__(self) -> None:
        self.event = ""
        self.data: List[str] = []

    def feed(self, line: str) -> Optional[tuple]:
        """One line without its ending; returns (event, data) when a blank
        line completes an event."""
        if line == "":
            if not self.data:
                self.event = ""
                return None
            ev = (self.event or "message", "\n".join(self.data))
            self.event, self.data = "", []
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


class Follower:
    """One watch's state; see the module doc."""

    def __init__(self, cfg: Settings, job_id: str, timeout: Optional[float]) -> None:
        self.cfg = cfg
        self.job_id = job_id
        self.path = _job_path(job_id, "/events")
        self.seq = 0
        self.done = False
        self.deadline = time.monotonic() + timeout if timeout is not None else None
        self.timeout = timeout
        self._reset_window()

    def _reset_window(self) -> None:
        self.started = time.monotonic()
        self.attempt = 0

    def request_timeout(self) -> httpx.Timeout:
        read = READ_TIMEOUT
        if self.deadline is not None:
            read = max(0.05, min(read, self.deadline - time.monotonic()))
        return httpx.Timeout(self.cfg.timeout, read=read)

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise WatchTimeout(f"job {self.job_id} did not finish within {self.timeout:g} s")

    def on_status(self, status: int, text: str) -> Optional[float]:
        """A refused stream: a pause before trying again, or the typed error."""
        if status in RETRY_STATUSES:
            delay = self.cfg.backoff(self.attempt, self.started)
            if delay is not None:
                self.attempt += 1
                return self._bounded(delay)
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        raise error_from_response(status, body, text, method="GET", path=self.path)

    def on_error(self, e: Exception) -> float:
        """The connection failed or dropped: a pause before reconnecting,
        or ConnectionFailed once the retry window (counted from the last
        moment the stream worked) is over."""
        if isinstance(e, httpx.ReadTimeout):
            self.check_deadline()
        delay = self.cfg.backoff(self.attempt, self.started)
        if delay is None:
            raise ConnectionFailed(
                f"watch job {self.job_id}: lost progressd at {self.cfg.server} for the "
                f"{self.cfg.retry_window:g} s retry window ({type(e).__name__}: {e})"
            ) from e
        self.attempt += 1
        return self._bounded(delay)

    def on_end(self) -> float:
        """The stream ended cleanly before the job finished (the server
        restarted or dropped a slow reader): reconnect soon."""
        return self._bounded(self.cfg.backoff(0, time.monotonic()) or 0.0)

    def _bounded(self, delay: float) -> float:
        self.check_deadline()
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - time.monotonic()))
        return delay

    def on_event(self, event: str, data: str) -> Optional[Snapshot]:
        """A snapshot to yield: only one newer than every one before."""
        if event != "update":
            return None
        self._reset_window()
        try:
            snap = Snapshot.from_dict(json.loads(data))
        except (ValueError, TypeError):
            return None
        if snap.seq <= self.seq:
            return None
        self.seq = snap.seq
        if snap.terminal:
            self.done = True
        return snap
