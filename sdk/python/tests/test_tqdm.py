"""progressd.tqdm.tqdm and progressd.logging.Handler against the real server."""

from __future__ import annotations

import io
import logging
import threading

import pytest

import progressd
import progressd.logging
import progressd.tqdm

from conftest import wait_for


@pytest.fixture
def client(server):
    with progressd.Client(server.url) as c:
        yield c


def test_a_bar_reports_its_stage_count_and_rate(client):
    out = io.StringIO()
    with client.job("py-tqdm", stages=["fetch", "load"]) as job:
        total = 0
        for i in job.tqdm(range(5000), stage="load", desc="rows", file=out, mininterval=0):
            total += i
        job.flush()
        snap = client.get(job.id)
        assert snap.stage == "load" and (snap.current, snap.total) == (5000, 5000)
        assert snap.stages[0].state == "succeeded" and snap.stages[1].progress == 1
        assert snap.message.startswith("rows · 5000/5000 · ") and snap.message.endswith("it/s")
    assert "5000/5000" in out.getvalue()  # the terminal bar is still drawn
    assert client.get(job.id).state == "succeeded"


def test_a_bar_given_a_job_id(client):
    job = client.create_job("py-tqdm")
    bar = progressd.tqdm.tqdm(total=10, job=job.id, client=client, file=io.StringIO())
    bar.update(4)
    bar.close()  # the bar owns its reporter here: close delivers
    snap = client.get(job.id)
    assert snap.progress == pytest.approx(0.4) and snap.current == 4


def test_nested_bars_refine_the_outer_one(client):
    job = client.create_job("py-tqdm")
    out = io.StringIO()
    outer = job.tqdm(total=4, desc="files", file=out, mininterval=0)
    outer.update(1)
    inner = job.tqdm(total=100, desc="bytes", file=out, mininterval=0, leave=False)
    inner.update(50)
    job.flush()
    snap = client.get(job.id)
    # 1 of 4 files done and half of the second: 1/4 + 1/4 · 1/2.
    assert snap.progress == pytest.approx(0.375) and (snap.current, snap.total) == (1, 4)
    assert snap.message.startswith("bytes")
    inner.close()
    outer.close()
    job.close()


def test_child_bars_are_child_jobs(client):
    out = io.StringIO()
    files = {"a.csv": 300, "b.csv": 100}
    with client.job("py-tqdm", expected_children=len(files)) as job:
        for name, rows in files.items():
            for _ in progressd.tqdm.tqdm(range(rows), job=job, child=True, desc=name, file=out):
                pass
        kids = client.list("py-tqdm", parent=job.id).jobs
        assert sorted(k.name for k in kids) == ["a.csv", "b.csv"]
        assert all(k.parent_id == job.id for k in kids)
        wait_for(lambda: client.get(job.id).children.succeeded == 2, 10, "the parent to count its children")
    parent = client.get(job.id)
    assert parent.state == "succeeded" and parent.progress == 1

    # A child bar that stops early fails its job, saying where it stopped.
    parent = client.create_job("py-tqdm")
    with pytest.raises(RuntimeError):
        for i in parent.tqdm(range(10), child={"weight": 2}, desc="c.csv", file=out):
            if i == 3:
                raise RuntimeError("bad row")
    kid = client.list("py-tqdm", parent=parent.id).jobs[0]
    assert kid.state == "failed" and kid.error == "the bar stopped at 3/10" and kid.weight == 2
    child = parent.child("by hand", weight=3)
    assert child.snapshot.parent_id == parent.id and child.snapshot.name == "by hand"


def test_a_bar_stops_on_cancel(client):
    with client.job("py-tqdm") as job:
        client.cancel(job.id)
        for i in job.tqdm(range(10**7), file=io.StringIO(), mininterval=0.01):
            pass
    assert job.canceled and i < 10**7 - 1
    # The JobCanceled raised out of tqdm's refresh left tqdm's lock free
    # (tqdm releases it without a finally): another thread can take it.
    took = []
    lock = progressd.tqdm.tqdm.get_lock()

    def take() -> None:
        if lock.locks[-1].acquire(timeout=5):
            took.append(True)
            lock.locks[-1].release()

    t = threading.Thread(target=take)
    t.start()
    t.join(10)
    assert took, "tqdm's lock is still held after the bar stopped on cancel"


def test_rich_bar(client):
    pytest.importorskip("rich")
    job = client.create_job("py-tqdm")
    bar = progressd.tqdm.rich(total=10, job=job, disable=False)
    bar.update(10)
    bar.close()
    job.close()
    assert client.get(job.id).progress == 1


def test_log_records_become_log_lines(client):
    job = client.create_job("py-log")
    log = logging.getLogger("py-sdk-test")
    log.setLevel(logging.INFO)
    h = progressd.logging.Handler(job=job)
    h.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(h)
    try:
        for i in range(10):
            log.info("row %d", i)
        logging.getLogger("httpx").warning("not shipped: the SDK's own stack")
        h.flush()
    finally:
        log.removeHandler(h)
        h.close()
    assert [x.text for x in client.logs(job.id).lines] == [f"INFO row {i}" for i in range(10)]
