"""AsyncClient and AsyncReporter: the same calls and rules with await."""

from __future__ import annotations

import asyncio
import time

import pytest

import progressd


@pytest.mark.asyncio
async def test_async_calls(server):
    async with progressd.AsyncClient(server.url, retry_window=2) as c:
        job = await c.create_job("py-async", stages=["a", "b"])
        assert isinstance(job, progressd.AsyncJob)
        snap = await c.report(job.id, 0.5, stage="b")
        assert snap.progress == pytest.approx(0.75)
        assert (await c.get(job.id)).seq == snap.seq
        assert job.id in [j.job_id for j in (await c.list("py-async")).jobs]
        assert job.id in [j.job_id async for j in c.iter_jobs("py-async")]
        with pytest.raises(progressd.NotFound):
            await c.get("no-such-job")
        assert (await job.cancel()).state == "canceled"
        with pytest.raises(progressd.JobCanceled):
            await c.report(job.id, 0.9)


@pytest.mark.asyncio
async def test_async_watch(server):
    async with progressd.AsyncClient(server.url) as c:
        job = await c.create_job("py-async")
        seen = []

        async def work():
            while not seen:
                await asyncio.sleep(0.01)
            for i in range(1, 4):
                await c.report(job.id, i / 4)
            await c.report(job.id, state="succeeded")

        task = asyncio.create_task(work())
        async for snap in c.watch(job.id, timeout=20):
            seen.append(snap)
        await task
        assert seen[-1].state == "succeeded" and [s.seq for s in seen] == sorted({s.seq for s in seen})


@pytest.mark.asyncio
async def test_async_job_context_and_coalescing(server):
    async with progressd.AsyncClient(server.url) as c:
        n = 20000
        started = time.monotonic()
        async with c.job("py-async", stages=["load"]) as job:
            for i in range(1, n + 1):
                job.report(stage="load", current=i, total=n)  # a plain call: it only queues
                if i % 1000 == 0:
                    await asyncio.sleep(0)  # let the sending task run, as real async work would
        elapsed = time.monotonic() - started
        snap = await c.get(job.id)
        assert snap.state == "succeeded" and snap.current == n
        assert job.reporter.requests <= elapsed / 0.1 + 3

        with pytest.raises(RuntimeError):
            async with c.job("py-async") as job:
                raise RuntimeError("boom")
        snap = await c.get(job.id)
        assert snap.state == "failed" and snap.error == "RuntimeError: boom"


@pytest.mark.asyncio
async def test_async_worker_learns_of_cancel(server):
    async with progressd.AsyncClient(server.url) as c:
        async with c.job("py-async") as job:
            job.report(0.1)
            await job.flush()
            await c.cancel(job.id)
            for i in range(1, 10**6):
                job.report(i / 10**6)
                await asyncio.sleep(0.001)
        assert job.canceled and i < 10**6
        assert (await c.get(job.id)).state == "canceled"


@pytest.mark.asyncio
async def test_async_server_down_is_one_clear_error(own_server):
    async with progressd.AsyncClient(own_server.url, timeout=1, retry_window=0.5) as c:
        started = time.monotonic()
        with pytest.raises(progressd.ConnectionFailed):
            await c.create_job("py-down")
        assert time.monotonic() - started < 5
