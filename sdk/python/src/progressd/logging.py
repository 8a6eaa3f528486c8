"""``progressd.logging.Handler``: log records become the job's log lines.

``emit`` only queues the formatted record on the job's coalescing reporter,
so logging never waits on the network; lines go out in batches (at most one
``/logs`` request per ``min_interval``), in order, never coalesced. Records
from the SDK's own HTTP stack (``httpx``, ``httpcore``, ``progressd``) are
skipped, or each request would log a line that needs another request.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from .reporter import Reporter

_OWN = ("httpx", "httpcore", "progressd")


class Handler(logging.Handler):
    """``Handler(job=…, client=…)``: ``job`` is a ``Job`` (its reporter is
    shared) or a job id with a ``Client`` (``client`` defaults to one built
    from ``PROGRESSD_SERVER`` / ``PROGRESSD_TOKEN``)."""

    def __init__(self, job: Any, client: Any = None, level: int = logging.NOTSET, *, min_interval: float = 0.1) -> None:
        super().__init__(level)
        own = getattr(job, "reporter", None)
        if own is not None:
            self.reporter = own
            self._owned = False
        else:
            if client is None:
                from .client import Client

                client = Client()
            self.reporter = Reporter(client, job, min_interval)
            self._owned = True

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if any(name == p or name.startswith(p + ".") for p in _OWN):
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.reporter.log(self.format(record))
        except Exception:
            self.handleError(record)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send the queued lines now and wait for them (errors only logged:
        a handler must not raise into the code that logs)."""
        try:
            self.reporter.flush(timeout)
        except Exception as e:
            logging.getLogger("progressd").warning("progressd: log lines not delivered: %s", e)

    def close(self) -> None:
        try:
            if self._owned:
                self.reporter.close()
            else:
                self.flush()
        except Exception as e:
            logging.getLogger("progressd").warning("progressd: log lines not delivered: %s", e)
        finally:
            super().close()
