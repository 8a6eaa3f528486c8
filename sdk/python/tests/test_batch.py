"""The reporters of one client share a sender: the reports of the jobs due
together go in one POST /api/v1/reports, against the real server."""

from __future__ import annotations

import asyncio
import time

import pytest

import progressd
from progressd._batch import AsyncSender, sender_of


@pytest.fixture
def client(server):
    with progressd.Client(server.url, timeout=5, retry_window=5) as c:
        yield c


def test_many_jobs_share_requests(client):
    jobs = [client.create_job("py-batch", stages=["load"]) for _ in range(40)]
    reporters = [progressd.Reporter(client, j, min_interval=0.1) for j in jobs]
    sender = sender_of(client)
    before = sender.requests
    n = 300
    for i in range(1, n + 1):
        for r in reporters:
            r.report(stage="load", current=i, total=n)
        time.sleep(0.002)
    for r in reporters:
        r.report(state="succeeded", message="done")
    for r in reporters:
        r.close()
    requests = sender.requests - before
    applied = 0
    for j in jobs:
        snap = client.get(j.id)
        assert snap.state == "succeeded" and snap.message == "done" and snap.current == n
        applied += snap.seq - j.snapshot.seq
    # Every applied report moves its job's seq by one: on average a request
    # carried many of them (one per job due at that tick).
    assert applied >= 2 * len(jobs) and requests * 5 <= applied, f"{requests} requests for {applied} reports"


def test_a_batch_keeps_each_jobs_outcome(client):
    """Three jobs due at one tick, one request: a refused report surfaces
    on its own reporter, a canceled job's reporter learns it, the third
    job's report lands."""
    good, bad, gone = (client.create_job("py-batch", stages=["a"]) for _ in range(3))
    client.cancel(gone.id)
    rs = {j.id: progressd.Reporter(client, j, min_interval=0.05) for j in (good, bad, gone)}
    sender = sender_of(client)
    before = sender.requests
    with sender.cond:  # all three are queued before the sender may take any
        rs[good.id].report(0.5, stage="a", message="fine")
        rs[bad.id].report(0.5, stage="no-such-stage")
        rs[gone.id].report(0.5, stage="a")
    rs[good.id].flush(10)
    with pytest.raises(progressd.BadRequest) as e:
        rs[bad.id].flush(10)
    assert e.value.code == "unknown_stage"
    rs[gone.id].flush(10)
    assert rs[gone.id].canceled
    with pytest.raises(progressd.JobCanceled):
        rs[gone.id].report(0.9)
    assert sender.requests - before == 1
    snap = client.get(good.id)
    assert snap.progress == 0.5 and snap.message == "fine"
    assert client.get(bad.id).progress == 0
    for r in rs.values():
        r.close()


def test_a_terminal_report_in_a_batch_that_already_landed_is_not_an_error(client):
    """A batch carrying a terminal report for a job that is already in that
    state (an earlier try landed, or it ended that way elsewhere) is a
    success for that job, as for a report sent alone."""
    done, other = client.create_job("py-batch"), client.create_job("py-batch")
    client.report(done.id, state="succeeded")
    rs = [progressd.Reporter(client, j, min_interval=0.05) for j in (done, other)]
    sender = sender_of(client)
    with sender.cond:
        rs[0].report(state="succeeded")
        rs[1].report(state="succeeded")
    for r in rs:
        r.close()
    assert not rs[0].canceled and rs[0].last is not None and rs[0].last.state == "succeeded"
    assert client.get(other.id).state == "succeeded"


def test_the_sender_thread_ends_when_idle(client):
    job = client.create_job("py-batch")
    r = progressd.Reporter(client, job, min_interval=0.01)
    r.report(0.5)
    r.flush(10)
    sender = sender_of(client)
    deadline = time.monotonic() + 15
    while sender.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sender.alive()
    r.report(0.75)  # a new report starts it again
    r.close()
    assert client.get(job.id).progress == 0.75


@pytest.mark.asyncio
async def test_async_reporters_share_requests(server):
    async with progressd.AsyncClient(server.url, timeout=5, retry_window=5) as c:
        jobs = [await c.create_job("py-batch-async", stages=["a"]) for _ in range(20)]
        rs = [progressd.AsyncReporter(c, j, min_interval=0.05) for j in jobs]
        for r in rs:  # no await in between: all twenty are due at the sender's first tick
            r.report(0.5, stage="a")
        await rs[0].flush(10)
        for r in rs:
            r.report(state="succeeded")
        await asyncio.gather(*(r.aclose() for r in rs))
        assert sender_of(c, AsyncSender).requests <= 3
        for j in jobs:
            assert (await c.get(j.id)).state == "succeeded"
