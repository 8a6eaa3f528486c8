"""Benchmark: a loop wrapped in progressd.tqdm.tqdm against the same loop in plain tqdm.

    /usr/bin/python3 sdk/python/bench/bench_tqdm.py --server http://127.0.0.1:8000 [--n 1000000] [--runs 3]

Needs a running server (``progressd serve``). Both bars draw to /dev/null
with tqdm's default ``mininterval``, so the terminal costs nothing to
either. The progressd time covers creating the job, the loop, and the end
of the ``with`` block (the terminal report delivered). The reports the
server received are counted from the job's ``seq``, which every applied
report moves by exactly one. Prints the medians of ``--runs`` runs, wall time and the process's CPU
time (its threads included), which a busy machine disturbs less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tqdm import tqdm as plain_tqdm  # noqa: E402

import progressd  # noqa: E402


def run_plain(n: int, out):
    t, cpu = time.perf_counter(), time.process_time()
    for _ in plain_tqdm(range(n), file=out):
        pass
    return time.perf_counter() - t, time.process_time() - cpu


def run_progressd(client: progressd.Client, n: int, out):
    t, cpu = time.perf_counter(), time.process_time()
    with client.job("bench-tqdm") as job:
        for _ in job.tqdm(range(n), file=out):
            pass
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    final = client.get(job.id)
    return elapsed, cpu, final, final.seq - job.snapshot.seq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("PROGRESSD_SERVER", progressd.DEFAULT_SERVER))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    client = progressd.Client(a.server)
    plain, ours = [], []
    with open(os.devnull, "w") as out:
        for _ in range(a.runs):
            plain.append(run_plain(a.n, out))
            ours.append(run_progressd(client, a.n, out))
    p = statistics.median(x[0] for x in plain)
    p_cpu = statistics.median(x[1] for x in plain)
    mid = sorted(ours, key=lambda r: r[0])[len(ours) // 2]
    elapsed, _, final, reports = mid
    cpu = statistics.median(x[1] for x in ours)
    print(f"iterations          {a.n:,}")
    print(f"plain tqdm          {p:.3f} s wall, {p_cpu:.3f} s CPU (wall runs: {', '.join(f'{x[0]:.3f}' for x in plain)})")
    print(f"progressd.tqdm      {elapsed:.3f} s wall, {cpu:.3f} s CPU (wall runs: {', '.join(f'{x[0]:.3f}' for x in ours)})")
    print(f"ratio               {elapsed / p:.2f}x wall, {cpu / p_cpu:.2f}x CPU (medians)")
    print(f"reports received    {reports} ({reports / elapsed:.1f}/s)")
    print(f"final snapshot      {final.state}, progress {final.progress:.0%}, current {final.current:,.0f}/{final.total:,.0f}")
    ok = elapsed <= 1.5 * p and reports / elapsed <= 12 and final.state == "succeeded" and final.progress == 1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
