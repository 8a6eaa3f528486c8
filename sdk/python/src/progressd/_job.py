"""What ``Job`` and ``AsyncJob`` share: the coalesced report, log and tqdm calls."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from .errors import JobFinished
from .models import Snapshot


class JobBase:
    """A handle on one job. ``report`` and ``log`` go through the job's own
    coalescing reporter, so calling them from a tight loop is cheap; use
    ``client.report(job.id, …)`` for one synchronous report that returns
    the snapshot it produced."""

    _reporter_class: Any = None

    def __init__(self, client: Any, snapshot: Snapshot, *, min_interval: float = 0.1) -> None:
        self.client = client
        self.id: str = snapshot.job_id
        self.snapshot = snapshot  # as created (or last read with get())
        self.min_interval = min_interval
        self._reporter: Any = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} project={self.snapshot.project!r}>"

    @property
    def reporter(self) -> Any:
        """The job's coalescing reporter, started on first use."""
        if self._reporter is None:
            self._reporter = self._reporter_class(self.client, self.id, self.min_interval)
        return self._reporter

    @property
    def canceled(self) -> bool:
        """True once a report learned that the job was canceled."""
        return self._reporter is not None and self._reporter.canceled

    def report(self, progress: Optional[float] = None, **fields: Any) -> None:
        """Queue a report (``stage``, ``current``, ``total``, ``message``,
        ``state``, ``error``, ``metadata``, ``result``); never waits on the
        network. Raises ``JobCanceled`` once the job was canceled."""
        self.reporter.report(progress, **fields)

    def log(self, *lines: str) -> None:
        """Queue log lines for the job (sent in batches)."""
        self.reporter.log(*lines)

    def _child_fields(self, name: Optional[str], fields: Dict[str, Any]) -> Dict[str, Any]:
        out = dict(fields, parent_id=self.id)
        if name is not None:
            out["name"] = name
        return out

    def tqdm(self, iterable: Optional[Iterable[Any]] = None, stage: Optional[str] = None, **tqdm_kwargs: Any) -> Any:
        """A ``progressd.tqdm.tqdm`` bar reporting to this job (to ``stage``
        if given); needs the ``tqdm`` extra."""
        from .tqdm import tqdm

        return tqdm(iterable, job=self, stage=stage, **tqdm_kwargs)

    def _exit_report(self, exc: Optional[BaseException]) -> Dict[str, Any]:
        """The terminal report a ``with`` block ends with, or {} when the job
        already ended elsewhere."""
        if (self._reporter is not None and self._reporter.finished is not None) or isinstance(exc, JobFinished):
            return {}
        if exc is None:
            return {"state": "succeeded"}
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {"state": "failed", "error": text[:1000]}
