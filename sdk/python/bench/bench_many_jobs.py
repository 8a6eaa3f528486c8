"""Benchmark: 1,000 jobs reported in parallel from one Python process, each at 100 updates a second.

    /usr/bin/python3 sdk/python/bench/bench_many_jobs.py --binary ./progressd [--jobs 1000] [--rate 100]
        [--seconds 10] [--mode sync|async]

Starts ``progressd serve`` from ``--binary`` on a free loopback port (a
fresh data dir, SQLite) and reads its CPU time from /proc/<pid>/stat. One
client creates ``--jobs`` jobs, then a loop calls ``report()`` for every
job ``--rate`` times a second for ``--seconds`` (bounded: it stops at the
deadline whether or not it kept the pace), then reports each job
``succeeded`` and closes its reporter. Modes:

- ``sync``: ``Reporter``s of one ``Client`` (one sender thread, the jobs
  due together in one ``POST /api/v1/reports``);
- ``async``: ``AsyncReporter``s of one ``AsyncClient`` (one sender task,
  batching the same way).

``PROGRESSD_SDK_SRC=<dir>`` runs another copy of the SDK (its ``src``
folder), to compare with an earlier version.

Prints the updates made (``report()`` calls) and their rate, the reports
the server applied (each job's ``seq`` moves by one per applied report),
the requests, and the server's CPU time per applied report and per update
made. Every job must end ``succeeded`` at 100%, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

sys.path.insert(0, os.environ.get("PROGRESSD_SDK_SRC") or str(Path(__file__).resolve().parents[1] / "src"))

import httpx  # noqa: E402

import progressd  # noqa: E402

PROJECT = "bench-many"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary: str, data: str) -> Tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data, "--log-level", "warn"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("progressd serve did not answer /healthz within 30 s")
        time.sleep(0.1)


def paced(jobs: int, rate: float, seconds: float, report: Callable[[int, int], None]) -> Tuple[int, float]:
    """Calls report(job_index, step) for every job, rate times a second,
    until the deadline; returns the calls made and the time taken."""
    started = time.monotonic()
    deadline = started + seconds
    made = 0
    step = 0
    while True:
        step += 1
        due = started + step / rate
        for j in range(jobs):
            report(j, step)
        made += jobs
        now = time.monotonic()
        if now >= deadline:
            return made, now - started
        if due > now:
            time.sleep(min(due, deadline) - now)


class Meter:
    """Server and own CPU time, and wall time, from start() to stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def start(self) -> None:
        self.server, self.own, self.wall = cpu_seconds(self.pid), time.process_time(), time.monotonic()

    def stop(self) -> None:
        self.server = cpu_seconds(self.pid) - self.server
        self.own = time.process_time() - self.own
        self.wall = time.monotonic() - self.wall


def requests_sent(client: Any, reporters: List[Any]) -> int:
    """The requests the reporters sent: the client's shared sender counts
    them (an SDK without one counts per reporter)."""
    sender = getattr(client, "_sender", None)
    return sender.requests if sender is not None else sum(r.requests for r in reporters)


def run_sync(url: str, a: argparse.Namespace, m: Meter) -> Tuple[int, float, List[Any], int]:
    steps = int(a.rate * a.seconds)
    with progressd.Client(url, timeout=30, retry_window=60) as client:
        jobs = [client.create_job(PROJECT, stages=["load"]) for _ in range(a.jobs)]
        reporters = [progressd.Reporter(client, j) for j in jobs]
        m.start()
        made, took = paced(a.jobs, a.rate, a.seconds,
                           lambda j, i: reporters[j].report(stage="load", current=min(i, steps), total=steps))
        for r in reporters:
            r.report(stage="load", current=steps, total=steps)
            r.report(state="succeeded")
        for r in reporters:
            r.close()
        m.stop()
        return made, took, jobs, requests_sent(client, reporters)


async def run_async(url: str, a: argparse.Namespace, m: Meter) -> Tuple[int, float, List[Any], int]:
    steps = int(a.rate * a.seconds)
    async with progressd.AsyncClient(url, timeout=30, retry_window=60) as client:
        jobs = [await client.create_job(PROJECT, stages=["load"]) for _ in range(a.jobs)]
        reporters = [progressd.AsyncReporter(client, j) for j in jobs]
        m.start()
        started = time.monotonic()
        deadline = started + a.seconds
        made, step = 0, 0
        while True:  # paced(), with the loop's await in place of sleep
            step += 1
            for r in reporters:
                r.report(stage="load", current=min(step, steps), total=steps)
            made += a.jobs
            now = time.monotonic()
            if now >= deadline:
                break
            await asyncio.sleep(max(0.0, min(started + step / a.rate, deadline) - now))
        took = time.monotonic() - started
        for r in reporters:
            r.report(stage="load", current=steps, total=steps)
            r.report(state="succeeded")
        await asyncio.gather(*(r.aclose() for r in reporters))
        m.stop()
        return made, took, jobs, requests_sent(client, reporters)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.environ.get("PROGRESSD_BINARY"), help="a built progressd")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0, help="updates per second per job")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mode", choices=("sync", "async"), default="sync")
    a = ap.parse_args()
    if not a.binary:
        raise SystemExit("--binary: a built progressd (go build -o /tmp/progressd ./cmd/progressd)")
    with tempfile.TemporaryDirectory() as data:
        proc, url = start_server(a.binary, data)
        try:
            load = open("/proc/loadavg").read().split()[:3]
            m = Meter(proc.pid)
            if a.mode == "async":
                made, took, jobs, requests = asyncio.run(run_async(url, a, m))
            else:
                made, took, jobs, requests = run_sync(url, a, m)
            with progressd.Client(url) as c:
                final = {s.job_id: s for s in c.iter_jobs(PROJECT, limit=500)}
        finally:
            proc.terminate()
            proc.wait(30)
    applied = 0
    for j in jobs:
        s = final[j.id]
        if s.state != "succeeded" or s.progress != 1:
            raise SystemExit(f"job {j.id} ended {s.state} at {s.progress}")
        applied += s.seq - j.snapshot.seq
    print(f"mode {a.mode}: {a.jobs} jobs × {a.rate:g} updates/s for {a.seconds:g} s (load average {' '.join(load)})")
    print(f"  updates made      {made:,} in {took:.1f} s = {made / took:,.0f}/s (target {a.jobs * a.rate:,.0f}/s)")
    print(f"  reports applied   {applied:,} ({applied / m.wall:,.0f}/s over the {m.wall:.1f} s from the first update to the last close)")
    print(f"  requests          {requests:,} (retries not counted)")
    print(f"  server CPU        {m.server:.2f} s = {m.server / applied * 1e6:.0f} µs per applied report, "
          f"{m.server / made * 1e6:.1f} µs per update made")
    print(f"  this process CPU  {m.own:.2f} s (its threads included)")


if __name__ == "__main__":
    main()
