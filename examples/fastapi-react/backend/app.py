"""The seed's app on progressd: a FastAPI backend that starts imports for the
signed-in user and reports their progress with the progressd Python SDK.

    PROGRESSD_URL=http://127.0.0.1:8000 PROGRESSD_AUTH_SECRET_FILE=secret \\
        uvicorn app:app --port 8001

What it shows:

- ``POST /api/jobs`` creates a job *owned by the signed-in user* (the
  backend's admin token may set ``owner``), then runs the import in a
  FastAPI background task. The task reports with a token scoped to that one
  job (``job:<id>``, ``logs:<id>``): a worker holds no more rights than its
  job needs. It reports stages (fetch, import, summarize), runs its rows in
  a ``progressd.tqdm`` loop, and ships log lines both through
  ``progressd.logging.Handler`` (records of a standard logger) and
  ``job.log``. ``with job:`` ends the job as succeeded, or failed with the
  exception.
- ``GET /api/session`` hands the browser progressd's URL and a short-lived,
  read-only token scoped to ``project:imports`` and signed for the user: the
  browser subscribes to progressd directly (another origin, allowed by
  ``--allowed-origins``) and sees that user's jobs in the project, and no
  one else's; it can neither report nor cancel.

Sign-in is deliberately minimal: ``POST /api/login {"user": "alice"}`` sets
a signed session cookie for any well-formed name, with no password. A real
app puts its own authentication there; nothing else changes.

Settings (environment): ``PROGRESSD_URL`` (how this backend reaches
progressd), ``PROGRESSD_PUBLIC_URL`` (how browsers reach it; default the
same), ``PROGRESSD_AUTH_SECRET`` or ``PROGRESSD_AUTH_SECRET_FILE`` (the
server's ``--auth-secret``), ``APP_SESSION_SECRET`` (signs the session
cookie; random per process when unset, so a restart signs everyone out).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Optional

from fastapi import BackgroundTasks, Cookie, FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

import progressd
from progressd.logging import Handler as ProgressdLogHandler

PROJECT = "imports"
BROWSER_TOKEN_TTL = 15 * 60  # the page fetches a fresh one before it expires
USER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
COOKIE = "session"

log = logging.getLogger("example.imports")
log.setLevel(logging.INFO)  # the root logger's default (WARNING) would drop the progress notes


def _secret() -> str:
    path = os.environ.get("PROGRESSD_AUTH_SECRET_FILE")
    secret = Path(path).read_text().strip() if path else os.environ.get("PROGRESSD_AUTH_SECRET", "")
    if len(secret.encode()) < 16:
        raise SystemExit("set PROGRESSD_AUTH_SECRET_FILE (or PROGRESSD_AUTH_SECRET) to progressd's --auth-secret (16 bytes or more)")
    return secret


PROGRESSD_URL = os.environ.get("PROGRESSD_URL", progressd.DEFAULT_SERVER)
PROGRESSD_PUBLIC_URL = os.environ.get("PROGRESSD_PUBLIC_URL", PROGRESSD_URL)
SECRET = _secret()
SESSION_KEY = (os.environ.get("APP_SESSION_SECRET") or secrets.token_hex(32)).encode()

app = FastAPI(title="progressd example: imports")


# ---- session: a signed cookie holding the user name --------------------------


def _sign(user: str) -> str:
    mac = hmac.new(SESSION_KEY, user.encode(), hashlib.sha256).hexdigest()
    return f"{user}.{mac}"


def _user(session: Optional[str]) -> str:
    """The signed-in user, or 401."""
    if session:
        user = session.rpartition(".")[0]
        if user and hmac.compare_digest(_sign(user), session):
            return user
    raise HTTPException(401, "sign in first: POST /api/login with {\"user\": \"alice\"}")


class Login(BaseModel):
    user: str


@app.post("/api/login", status_code=204, response_class=Response)
def login(body: Login) -> Response:
    if not USER_RE.match(body.user):
        raise HTTPException(400, "user: 1 to 32 of a-z 0-9 _ -, starting with a letter or digit")
    response = Response(status_code=204)
    response.set_cookie(COOKIE, _sign(body.user), httponly=True, samesite="lax")
    return response


@app.post("/api/logout", status_code=204, response_class=Response)
def logout() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE)
    return response


@app.get("/api/session")
def session(session: Optional[str] = Cookie(None)) -> dict:
    """Where the browser finds progressd, and a token that lets it watch this
    user's jobs of the project (read-only: it cannot report or cancel)."""
    user = _user(session)
    token = progressd.mint_token(SECRET, user, scope=[f"project:{PROJECT}"], read_only=True, ttl=BROWSER_TOKEN_TTL)
    return {"user": user, "project": PROJECT, "progressd": PROGRESSD_PUBLIC_URL,
            "token": token, "expires_in": BROWSER_TOKEN_TTL}


# ---- jobs --------------------------------------------------------------------


class StartImport(BaseModel):
    rows: int = Field(2000, ge=1, le=1_000_000)
    seconds: float = Field(8.0, gt=0, le=3600, description="how long the import takes")


def _admin() -> progressd.Client:
    """A client with the backend's own rights: it creates jobs for users."""
    return progressd.Client(PROGRESSD_URL, progressd.mint_token(SECRET, "imports-backend", admin=True, ttl=300))


@app.post("/api/jobs", status_code=201)
def start_import(body: StartImport, tasks: BackgroundTasks, session: Optional[str] = Cookie(None)) -> dict:
    user = _user(session)
    with _admin() as client:
        job = client.create_job(PROJECT, owner=user, name=f"Import of {body.rows:,} rows",
                                stages=[("fetch", 1), ("import", 8), ("summarize", 1)],
                                metadata={"rows": body.rows})
    tasks.add_task(run_import, job.id, user, body.rows, body.seconds)
    return {"job_id": job.id}


def run_import(job_id: str, user: str, rows: int, seconds: float) -> None:
    """The work, in a background thread: what the seed app's importer did,
    now reporting with the SDK."""
    token = progressd.mint_token(SECRET, user, scope=[f"job:{job_id}", f"logs:{job_id}"], ttl=int(seconds) + 3600)
    with progressd.Client(PROGRESSD_URL, token) as client:
        job = client.attach(job_id)
        handler = ProgressdLogHandler(job=job)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        log.addHandler(handler)
        try:
            with job:  # succeeded at the end of the block, failed with an exception
                _import(job, rows, seconds)
        finally:
            log.removeHandler(handler)


def _import(job: progressd.Job, rows: int, seconds: float) -> None:
    fetch_steps = 5
    step = seconds / 10 / fetch_steps  # fetch and summarize take a tenth each
    log.info("fetching %d rows for %s", rows, job.snapshot.owner)
    for i in range(fetch_steps):
        time.sleep(step)
        job.report(stage="fetch", progress=(i + 1) / fetch_steps, message=f"page {i + 1} of {fetch_steps}")

    per_row = seconds * 0.8 / rows
    with open(os.devnull, "w") as quiet:  # the bar goes to the browser, not to the server's console
        for row in job.tqdm(range(rows), stage="import", desc="rows", file=quiet):
            time.sleep(per_row)
            if (row + 1) % max(1, rows // 10) == 0:
                log.info("imported %d of %d rows", row + 1, rows)

    job.report(stage="summarize", progress=0.0, message="writing the summary")
    time.sleep(seconds / 10)
    job.log(f"summary: {rows} rows imported, 0 rejected")
    job.report(stage="summarize", progress=1.0, message="done")
