"""The shapes the server sends, as frozen dataclasses.

They are read with ``from_dict``, which is tolerant: a field the server adds
later lands in ``extra`` instead of breaking an older SDK, and a field an
older server does not send takes its default. ``raw`` keeps the decoded JSON
for anything the SDK does not model.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled"})

_FRACTION = re.compile(r"\.(\d+)")


def parse_time(v: Any) -> Optional[datetime]:
    """An RFC 3339 timestamp as an aware datetime (None stays None).
    ``datetime.fromisoformat`` before Python 3.11 takes neither ``Z`` nor
    fractions other than 3 or 6 digits, so both are normalised first."""
    if not v or not isinstance(v, str):
        return None
    s = v.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    s = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], s, count=1)
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _known(cls: type) -> Tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "raw"))


@dataclass(frozen=True)
class Stage:
    """One stage of a job with its share (``weight``) of the overall progress."""

    name: str
    weight: float = 1.0
    state: str = "queued"
    progress: float = 0.0
    children: bool = False
    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Stage":
        known = _known(cls)
        return cls(
            name=str(d.get("name", "")),
            weight=float(d.get("weight", 1) or 0),
            state=str(d.get("state", "queued")),
            progress=float(d.get("progress", 0) or 0),
            children=bool(d.get("children", False)),
            extra={k: v for k, v in d.items() if k not in known},
        )


@dataclass(frozen=True)
class Children:
    """Counts of a parent job's direct children."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Children":
        return cls(**{k: int(d.get(k, 0) or 0) for k in _known(cls)})


@dataclass(frozen=True)
class Snapshot:
    """The whole state of one job at one ``seq``: every delivery carries one.
    Keep the one with the highest ``seq``; ``watch`` does."""

    job_id: str
    project: str = ""
    owner: str = ""
    pipeline: str = ""
    name: Optional[str] = None
    state: str = "queued"
    progress: float = 0.0
    stage: str = ""
    stages: Tuple[Stage, ...] = ()
    current: Optional[float] = None
    total: Optional[float] = None
    message: str = ""
    eta_seconds: Optional[float] = None
    seq: int = 0
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    error: Optional[str] = None
    params: Dict[str, str] = field(default_factory=dict)
    tags: Tuple[str, ...] = ()
    parent_id: Optional[str] = None
    root_id: Optional[str] = None
    children: Optional[Children] = None
    expected_children: Optional[int] = None
    weight: Optional[float] = None
    metadata: Optional[Dict[str, Any]] = None
    result: Optional[Dict[str, Any]] = None
    attempt: Optional[int] = None
    max_attempts: Optional[int] = None
    retry_at: Optional[datetime] = None
    stalled: bool = False
    trace_id: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def terminal(self) -> bool:
        """True once the job succeeded, failed or was canceled: nothing changes after."""
        return self.state in TERMINAL_STATES

    @property
    def percent(self) -> float:
        return self.progress * 100.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Snapshot":
        known = _known(cls)

        def num(k: str) -> Optional[float]:
            v = d.get(k)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        def opt_int(k: str) -> Optional[int]:
            v = d.get(k)
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        def opt_str(k: str) -> Optional[str]:
            v = d.get(k)
            return v if isinstance(v, str) else None

        children = d.get("children")
        return cls(
            job_id=str(d.get("job_id", "")),
            project=str(d.get("project") or ""),
            owner=str(d.get("owner") or ""),
            pipeline=str(d.get("pipeline") or ""),
            name=opt_str("name"),
            state=str(d.get("state") or "queued"),
            progress=num("progress") or 0.0,
            stage=str(d.get("stage") or ""),
            stages=tuple(Stage.from_dict(s) for s in (d.get("stages") or []) if isinstance(s, dict)),
            current=num("current"),
            total=num("total"),
            message=str(d.get("message") or ""),
            eta_seconds=num("eta_seconds"),
            seq=opt_int("seq") or 0,
            created_at=parse_time(d.get("created_at")),
            started_at=parse_time(d.get("started_at")),
            updated_at=parse_time(d.get("updated_at")),
            finished_at=parse_time(d.get("finished_at")),
            error=opt_str("error"),
            params=dict(d.get("params") or {}),
            tags=tuple(d.get("tags") or ()),
            parent_id=opt_str("parent_id"),
            root_id=opt_str("root_id"),
            children=Children.from_dict(children) if isinstance(children, dict) else None,
            expected_children=opt_int("expected_children"),
            weight=num("weight"),
            metadata=d.get("metadata") if isinstance(d.get("metadata"), dict) else None,
            result=d.get("result") if isinstance(d.get("result"), dict) else None,
            attempt=opt_int("attempt"),
            max_attempts=opt_int("max_attempts"),
            retry_at=parse_time(d.get("retry_at")),
            stalled=bool(d.get("stalled", False)),
            trace_id=opt_str("trace_id"),
            extra={k: v for k, v in d.items() if k not in known},
            raw=dict(d),
        )


@dataclass(frozen=True)
class Page:
    """One page of a job list, newest first; ``next_cursor`` is None on the last."""

    jobs: List[Snapshot]
    next_cursor: Optional[str] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Page":
        return cls(
            jobs=[Snapshot.from_dict(j) for j in (d.get("jobs") or []) if isinstance(j, dict)],
            next_cursor=d.get("next_cursor") or None,
        )


@dataclass(frozen=True)
class LogLine:
    """One kept log line: ``n`` counts the job's lines from 1, with no gaps."""

    n: int
    text: str
    t: Optional[datetime] = None
    stream: str = "log"
    stage: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LogLine":
        return cls(n=int(d.get("n", 0) or 0), text=str(d.get("text", "")), t=parse_time(d.get("t")),
                   stream=str(d.get("stream") or "log"), stage=str(d.get("stage") or ""))


@dataclass(frozen=True)
class LogPage:
    """Kept lines after ``after``: ``first`` is the first line kept, ``last``
    the job's newest; ``truncated`` says lines asked for were already dropped."""

    lines: List[LogLine]
    first: int = 0
    last: int = 0
    truncated: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LogPage":
        return cls(lines=[LogLine.from_dict(x) for x in (d.get("lines") or []) if isinstance(x, dict)],
                   first=int(d.get("first", 0) or 0), last=int(d.get("last", 0) or 0),
                   truncated=bool(d.get("truncated", False)))


__all__ = ["Snapshot", "Stage", "Children", "Page", "LogLine", "LogPage", "TERMINAL_STATES", "parse_time"]
