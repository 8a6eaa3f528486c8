"""Fixtures: the real progressd binary, started as a process per test module
(or per test, for the ones that stop and restart it).

The binary is built once per session with ``go build`` from this checkout,
or taken from ``$PROGRESSD_BINARY`` (scripts/test.sh builds it once for
every test that needs it). Nothing here mocks the server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float = 15.0, what: str = "condition", interval: float = 0.02):
    """Poll ``cond`` until it returns a truthy value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("PROGRESSD_BINARY")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("bin") / "progressd"
    subprocess.run(["go", "build", "-o", str(out), "./cmd/progressd"], cwd=REPO, check=True)
    return out


class Server:
    """One ``progressd serve`` process on a fixed port and data dir, so a
    restart comes back where clients expect it, with the same jobs."""

    def __init__(self, binary: Path, data_dir: Path, extra: Optional[List[str]] = None) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = extra or []
        self.proc: Optional[subprocess.Popen] = None
        self.log = data_dir / "server.log"

    def start(self) -> "Server":
        assert self.proc is None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.binary), "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir),
               "--log-level", "warn", *self.extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROGRESSD_")}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), env=env)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"progressd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 30, "progressd to answer /healthz")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def server(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(binary, tmp_path_factory.mktemp("data")).start()
    yield s
    s.stop()


@pytest.fixture
def own_server(binary: Path, tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that stop and restart it."""
    s = Server(binary, tmp_path / "data")
    yield s
    s.stop()


SECRET = "sdk-test-secret-sdk-test-secret"


@pytest.fixture(scope="module")
def auth_server(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(binary, tmp_path_factory.mktemp("authdata"), ["--auth-secret", SECRET]).start()
    yield s
    s.stop()


class Redis:
    """A private redis-server on a free port, for a real 503: progressd
    answers 503 while its Redis is down."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    return c.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        wait_for(up, 10, "redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("PROGRESSD_REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not installed, and PROGRESSD_REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed (apt-get install redis-server): the 503 tests need one")
    r = Redis(tmp_path)
    r.start()
    yield r
    r.stop()


def pytest_unconfigure(config):
    """A run whose tests all finished must also exit: if the interpreter is
    still there two minutes later (a thread or an exit handler that never
    returns), print every thread's stack and exit 1, so the hang fails
    fast and says where it is instead of stalling the test command."""
    import faulthandler

    faulthandler.dump_traceback_later(120, exit=True)
