"""progressd: report the progress of long jobs to a progressd server, and watch it.

    import progressd
    client = progressd.Client("http://127.0.0.1:8000", token)
    with client.job(project="imports", stages=["fetch", "load"]) as job:
        for row in job.tqdm(rows, stage="load"):
            load(row)

``Client`` / ``AsyncClient`` make the calls; ``Job`` is a handle on one job;
``Reporter`` coalesces a tight loop's reports; ``progressd.tqdm.tqdm`` and
``progressd.logging.Handler`` report a tqdm bar and log records. Every error
is a ``ProgressdError`` (see ``progressd.errors``).
"""

from ._version import __version__
from ._watch import WatchTimeout
from .aio import AsyncClient, AsyncJob
from .client import DEFAULT_SERVER, Client, Job
from .errors import (
    APIError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    IdempotencyConflict,
    JobCanceled,
    JobFinished,
    NotFound,
    ProgressdError,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from .models import Children, LogLine, LogPage, Page, Snapshot, Stage
from .reporter import AsyncReporter, Reporter
from .tokens import mint_token

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "Job",
    "AsyncJob",
    "Reporter",
    "AsyncReporter",
    "Snapshot",
    "Stage",
    "Children",
    "Page",
    "LogLine",
    "LogPage",
    "mint_token",
    "DEFAULT_SERVER",
    "WatchTimeout",
    "ProgressdError",
    "ConnectionFailed",
    "APIError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "JobFinished",
    "JobCanceled",
    "TooLarge",
    "IdempotencyConflict",
    "RateLimited",
    "Unavailable",
    "ServerError",
]
