// Benchmark of the Node reporter (issue 15, "Node and Python reporters"):
// JOBS jobs reported in parallel from this one process at RATE updates a
// second each, for SECONDS, through @progressd/client/node's coalescing
// reporter, against a local `progressd serve` (SQLite, in-memory
// snapshots) this script starts. It prints the updates queued, the requests
// sent, the reports the server applied (each job's seq moves by one per
// applied report), and the server's CPU time (utime + stime from
// /proc/<pid>/stat) per applied report and per queued update.
//
//   npm run build:packages && node scripts/bench-reporter.mjs [--jobs 1000] [--rate 100] [--seconds 10] [--bin path/to/progressd]
//
// (it runs the built package, as an app would).
// Without --bin it builds the binary (go build ./cmd/progressd). Linux only
// (/proc). Exits 1 if a job does not end succeeded or the reporter sent
// more than one report per job per 100 ms.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@progressd/client/node";
import { createServer } from "node:net";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "1000" },
    rate: { type: "string", default: "100" },
    seconds: { type: "string", default: "10" },
    bin: { type: "string" },
  },
});
const JOBS = Number(values.jobs);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "progressd-bench-reporter-"));
let bin = values.bin;
if (!bin) {
  bin = join(tmp, "progressd");
  execFileSync("go", ["build", "-o", bin, "./cmd/progressd"], { cwd: repo, stdio: "inherit" });
}

const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
/** CPU time of a process so far, in ms (user + system). */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS;
}

const port = await new Promise((res, rej) => {
  const s = createServer().once("error", rej);
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const server = `http://127.0.0.1:${port}`;
const proc = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", join(tmp, "data"), "--log-level", "warn"], { stdio: ["ignore", "ignore", "inherit"] });
let ok = false;
try {
  for (let i = 0; i < 300 && !ok; i++) {
    ok = await fetch(server + "/healthz").then((r) => r.ok, () => false);
    if (!ok) await new Promise((r) => setTimeout(r, 100));
  }
  if (!ok) throw new Error("progressd serve did not answer /healthz");

  const client = new Client({ server });
  const project = "bench-" + Date.now().toString(36);
  const jobs = [];
  for (let i = 0; i < JOBS; i += 50) {
    jobs.push(...(await Promise.all(Array.from({ length: Math.min(50, JOBS - i) }, () => client.createJob({ project, stages: [{ name: "work" }] })))));
  }
  const seq0 = jobs.reduce((n, j) => n + j.snapshot.seq, 0);

  const total = RATE * SECONDS;
  const stepMs = 1000 / RATE;
  const cpu0 = cpuMs(proc.pid);
  const started = performance.now();
  let queued = 0;
  // One update per job every stepMs, for SECONDS: the loop catches up when a step runs late.
  for (let step = 1; step <= total; step++) {
    for (const j of jobs) j.report({ stage: "work", current: step, total });
    queued += jobs.length;
    const wait = started + step * stepMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  for (const j of jobs) j.report({ state: "succeeded" });
  queued += jobs.length;
  await client.reporter.flush();
  const wall = (performance.now() - started) / 1000;
  const cpu = cpuMs(proc.pid) - cpu0;

  const page = await client.list({ project, limit: 500 });
  let succeeded = 0;
  let seq = 0;
  for (let cursor = undefined, p = page; ; ) {
    for (const j of p.jobs) {
      if (j.state === "succeeded") succeeded++;
      seq += j.seq;
    }
    cursor = p.next_cursor;
    if (!cursor) break;
    p = await client.list({ project, limit: 500, cursor });
  }
  const applied = seq - seq0;
  const requests = client.reporter.requests;
  await client.close();

  const fmt = (n, d = 1) => n.toLocaleString("en-US", { maximumFractionDigits: d });
  console.log(`jobs ${JOBS}, ${RATE} updates/s each, ${SECONDS} s (wall ${fmt(wall, 2)} s), load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`);
  console.log(`updates queued ${fmt(queued, 0)}; requests ${fmt(requests, 0)} (${fmt(requests / wall)}/s); reports applied ${fmt(applied, 0)} (${fmt(applied / wall)}/s, ${fmt(applied / JOBS / wall, 2)}/s per job)`);
  console.log(`server CPU ${fmt(cpu, 0)} ms: ${fmt((cpu * 1000) / applied, 1)} µs per applied report, ${fmt((cpu * 1000) / queued, 2)} µs per queued update`);
  if (succeeded !== JOBS) throw new Error(`${succeeded} of ${JOBS} jobs succeeded`);
  // At most one report per job per 100 ms, plus the terminal one, plus slack for the first tick.
  if (applied / JOBS > wall * 10 + 3) throw new Error(`the reporter sent ${fmt(applied / JOBS / wall, 1)} reports per job per second (> 10)`);
} finally {
  proc.kill("SIGTERM");
  await new Promise((r) => proc.once("exit", r));
  rmSync(tmp, { recursive: true, force: true });
}
