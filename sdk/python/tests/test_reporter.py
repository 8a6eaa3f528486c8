"""The coalescing reporter and ``with client.job()`` against the real server,
including the bad cases: a server that goes away, answers 503, or says the
job was canceled."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import progressd
from progressd.reporter import Coalescer

from conftest import SRC, Server, wait_for


@pytest.fixture
def client(server):
    with progressd.Client(server.url, timeout=5, retry_window=5) as c:
        yield c


def test_a_tight_loop_costs_about_one_request_per_interval(client):
    job = client.create_job("py-rep", stages=["load"])
    n = 20000
    started = time.monotonic()
    with progressd.Reporter(client, job, min_interval=0.1) as r:
        for i in range(1, n + 1):
            r.report(stage="load", current=i, total=n, message=f"row {i}")
    elapsed = time.monotonic() - started
    assert r.requests <= elapsed / 0.1 + 3, f"{r.requests} requests in {elapsed:.2f} s"
    snap = client.get(job.id)
    assert (snap.current, snap.total, snap.message) == (n, n, f"row {n}") and snap.state == "running"


def test_the_terminal_report_is_sent_last(client):
    job = client.create_job("py-rep")
    r = progressd.Reporter(client, job.id, min_interval=0.05)
    for i in range(100):
        r.report(i / 100, message=str(i))
    r.report(state="succeeded", message="done")
    r.report(0.5, message="after the end")  # dropped: nothing goes after the terminal report
    r.close()
    snap = client.get(job.id)
    assert snap.state == "succeeded" and snap.message == "done" and snap.progress == 1
    assert r.last is not None and r.last.state == "succeeded"


def test_job_context_reports_succeeded_or_failed(client):
    with client.job("py-ctx", stages=["a", "b"]) as job:
        job.report(0.5, stage="b")
    assert client.get(job.id).state == "succeeded"

    with pytest.raises(KeyError):
        with client.job("py-ctx") as job:
            job.report(0.3)
            raise KeyError("row 17 has no id")
    snap = client.get(job.id)
    assert snap.state == "failed" and snap.error == "KeyError: 'row 17 has no id'" and snap.progress == pytest.approx(0.3)


def test_a_worker_learns_its_job_was_canceled(client):
    other = progressd.Client(client.server)
    reached = threading.Event()
    iterations = 0
    with client.job("py-cancel") as job:
        job.report(0.01)
        job.flush()
        other.cancel(job.id)
        for iterations in range(1, 10**9):  # the loop a worker runs; it must end by itself
            job.report(min(1.0, iterations / 10**6))
            reached.set()
            time.sleep(0.001)
    # JobCanceled ended the block quietly; nothing reported over the cancel.
    assert reached.is_set() and job.canceled and iterations < 10**6
    snap = client.get(job.id)
    assert snap.state == "canceled"
    with pytest.raises(progressd.JobCanceled):
        job.report(0.5)


def test_a_refused_report_surfaces_on_the_next_call(client):
    job = client.create_job("py-rep", stages=["a"])
    r = progressd.Reporter(client, job, min_interval=0.01)
    r.report(0.5, stage="nope")
    with pytest.raises(progressd.BadRequest):
        r.flush(10)
    r.report(0.5, stage="a")
    r.close()
    assert client.get(job.id).stages[0].progress == 0.5


def test_a_reporter_whose_client_was_closed_fails_instead_of_hanging(server):
    c = progressd.Client(server.url)
    job = c.create_job("py-rep")
    r = progressd.Reporter(c, job)
    c.close()
    r.report(0.5)
    with pytest.raises(RuntimeError):
        r.close(timeout=30)


def test_reports_are_flushed_at_exit(server):
    """A script that reports and exits without closing anything: atexit
    delivers the last report and the terminal one."""
    c = progressd.Client(server.url)
    job = c.create_job("py-exit")
    script = textwrap.dedent(f"""
        import progressd
        c = progressd.Client({server.url!r})
        r = progressd.Reporter(c, {job.id!r}, min_interval=60)
        r.report(0.25, message="first")   # sent at once
        r.report(0.75, message="last")    # held for 60 s: only atexit sends it
        r.report(state="succeeded")
    """)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    snap = c.get(job.id)
    assert snap.state == "succeeded" and snap.message == "last"


def test_server_away_mid_run_loses_nothing(own_server):
    """The server stops in the middle of a run and comes back (same port,
    same data): the worker keeps going, and the final state arrives."""
    own_server.start()
    c = progressd.Client(own_server.url, timeout=2, retry_window=30)
    job = c.create_job("py-away", stages=["a"])
    with progressd.Reporter(c, job, min_interval=0.02) as r:
        r.report(0.2, stage="a")
        r.flush(10)
        own_server.stop()
        for i in range(1000):
            r.report(0.2 + 0.5 * i / 1000, stage="a", message=f"while away {i}")
        r.report(state="succeeded", message="done")
        own_server.start()
    snap = c.get(job.id)
    assert snap.state == "succeeded" and snap.message == "done"


def test_server_away_for_longer_than_the_window_is_one_clear_error(own_server):
    own_server.start()
    c = progressd.Client(own_server.url, timeout=1, retry_window=0.5)
    job = c.create_job("py-gone")
    own_server.stop()
    r = progressd.Reporter(c, job)
    started = time.monotonic()
    for i in range(1000):
        r.report(i / 1000)  # never raises for the server being away: the work goes on
    r.report(state="succeeded")
    with pytest.raises(progressd.ConnectionFailed):
        r.close()
    assert time.monotonic() - started < 10


def test_503_is_retried_and_the_terminal_report_arrives(binary, tmp_path, redis):
    """A real 503: progressd with its Redis down answers 503 (nothing
    changed). The terminal report waits it out within the retry window."""
    s = Server(binary, tmp_path / "data", ["--redis", redis.url, "--redis-prefix", "py503:"]).start()
    try:
        c = progressd.Client(s.url, timeout=5, retry_window=60)
        job = c.create_job("py-503")
        redis.stop()
        quick = progressd.Client(s.url, timeout=5, retry_window=0.5)
        with pytest.raises(progressd.Unavailable) as e:
            quick.report(job.id, 0.5)
        assert e.value.status == 503 and e.value.code == "unavailable"

        r = progressd.Reporter(c, job, min_interval=0.05)
        r.report(0.6)
        r.report(state="succeeded", message="after the outage")
        closing = threading.Thread(target=r.close)
        closing.start()
        wait_for(lambda: r.requests >= 1, 20, "the reporter to try")
        redis.start()
        closing.join(90)
        assert not closing.is_alive()
        snap = c.get(job.id)
        assert snap.state == "succeeded" and snap.message == "after the outage"
    finally:
        s.stop()


class DropOnceProxy:
    """A TCP proxy before the real server that, once armed, forwards a
    request but drops the server's answer and closes the connection: the
    client cannot know whether its request was applied."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.armed = threading.Event()
        self.dropped = threading.Event()
        self.threads = []
        self.closing = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            for a, b, answers in ((c, up, False), (up, c, True)):
                t = threading.Thread(target=self._pipe, args=(a, b, answers, c, up), daemon=True)
                t.start()
                self.threads.append(t)

    def _pipe(self, src, dst, answers, c, up) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if answers and self.armed.is_set():
                    self.armed.clear()
                    self.dropped.set()
                    break
                if not answers:  # the server serves only its own address (DNS rebinding)
                    data = data.replace(b"Host: 127.0.0.1:%d" % self.port, b"Host: 127.0.0.1:%d" % self.target)
                dst.sendall(data)
        except OSError:
            pass
        for s in (c, up):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.closing = True
        self.sock.close()


def test_a_terminal_report_whose_answer_was_lost_is_not_an_error(server):
    """The first try of the terminal report lands but its answer is lost;
    the retry gets 409 job_finished; the SDK reads the job back, sees the
    state it asked for, and returns it instead of raising. The same for a
    cancel, and a create is not made twice."""
    p = DropOnceProxy(server.port)
    try:
        c = progressd.Client(f"http://127.0.0.1:{p.port}", retry_window=10)
        job = c.create_job("py-lost")
        p.armed.set()
        snap = c.report(job.id, state="succeeded")
        assert p.dropped.is_set() and snap.state == "succeeded"
        p.armed.set()
        assert c.cancel(c.create_job("py-lost").id).state == "canceled"
        assert p.dropped.is_set()
        # A create whose answer was lost: the retry carries the same
        # Idempotency-Key, so the server answers with the job it made.
        p.dropped.clear()
        p.armed.set()
        made = c.create_job("py-lost-create")
        assert p.dropped.is_set()
        assert [j.job_id for j in c.list("py-lost-create").jobs] == [made.id]
    finally:
        p.close()


def test_coalescer_rules():
    c = Coalescer()
    c.add({"stage": "a", "progress": 0.5, "message": "m"})
    c.add({"stage": "b", "current": 1.0})  # a new stage: a's fraction is dropped, the message kept
    assert c.body == {"stage": "b", "current": 1.0, "message": "m"}
    c.add({"progress": 0.3})
    assert c.body == {"stage": "b", "progress": 0.3, "message": "m"}
    c.add({"metadata": {"x": 1}})
    c.add({"metadata": {"y": 2}})
    assert c.body["metadata"] == {"x": 1, "y": 2}
    c.add_lines(["l1"])
    c.add({"state": "failed", "error": "e"})
    assert not c.add({"progress": 0.9}) and not c.add_lines(["late"])
    lines, body = c.take()
    assert lines == ["l1"] and body["state"] == "failed"


def test_log_lines_are_sent_in_batches(client):
    job = client.create_job("py-logs")
    with progressd.Reporter(client, job, min_interval=0.05) as r:
        for i in range(2500):
            r.log(f"line {i}")
        r.report(0.5)
    assert r.requests <= 5  # 1,000 lines a request, and one report
    assert client.log(job.id, ["one more"]) == 2501
    page = client.logs(job.id, after=2490)
    assert [x.text for x in page.lines] == [f"line {i}" for i in range(2490, 2500)] + ["one more"]
    assert page.lines[0].n == 2491 and page.last == 2501 and page.lines[0].stream == "log"
    client.report(job.id, state="succeeded")
    with pytest.raises(progressd.JobFinished):
        client.log(job.id, "too late")
