// Runs worker.mjs as a process against a real progressd (auth on, a token
// minted with mintToken), twice: to the end (the job succeeded at 100% with
// its result and log lines, in far fewer reports than loop iterations), and
// canceled mid-run (the worker learns it from its next report, stops, and
// exits 3). Needs the packed client installed (see README.md).
// Usage: npm test   (PROGRESSD_BIN=/path/to/progressd to skip go build)
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Client, mintToken } from "@progressd/client/node";
import { check, freePort, sleep, waitFor } from "../testkit.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "progressd-node-worker-"));
const SECRET = "node-worker-example-secret-0123456789";

/** Runs the worker; resolves {code, out, err}. Killed after 60 s. */
function worker(env, args) {
  return new Promise((res) => {
    const p = spawn(process.execPath, [join(here, "worker.mjs"), ...args], { env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.once("exit", (code, signal) => {
      clearTimeout(t);
      res({ code: code ?? signal, out, err });
    });
    worker.last = p;
  });
}

let server;
let failed = false;
try {
  const bin = process.env.PROGRESSD_BIN || join(tmp, "progressd");
  if (!process.env.PROGRESSD_BIN) execFileSync("go", ["build", "-o", bin, "./cmd/progressd"], { cwd: repo, stdio: "inherit" });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", join(tmp, "data"), "--log-level", "warn"], {
    env: { ...process.env, PROGRESSD_AUTH_SECRET: SECRET },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await waitFor(async () => (await fetch(url + "/healthz")).ok, "progressd");
  const token = mintToken(SECRET, "worker-1", { ttl: 600 });
  const env = { PROGRESSD_SERVER: url, PROGRESSD_TOKEN: token };
  const client = new Client({ server: url, token });

  // 1. To the end.
  const t0 = Date.now();
  const done = await worker(env, ["300", "5"]);
  const seconds = (Date.now() - t0) / 1000;
  check(done.code === 0, `worker exited ${done.code}: ${done.err}`);
  const id = done.out.trim().split("\n")[0];
  const snap = await client.get(id);
  check(snap.state === "succeeded" && snap.progress === 1, `job ${id}: ${snap.state} at ${snap.progress}`);
  check(snap.owner === "worker-1" && snap.result?.images === 300, `owner ${snap.owner}, result ${JSON.stringify(snap.result)}`);
  // Every applied report moves seq by one: 300 report() calls cost about ten a second.
  check(snap.seq <= seconds * 10 + 10, `${snap.seq} reports in ${seconds.toFixed(1)} s: not coalesced`);
  const lines = (await client.logs(id)).lines.map((l) => l.text);
  check(lines[0] === "resizing 300 images" && lines.at(-1) === "resized 300 of 300" && lines.length === 11, `log lines: ${JSON.stringify(lines)}`);
  console.log(`ok   worker to the end: succeeded, ${snap.seq} reports for 300 iterations in ${seconds.toFixed(1)} s, ${lines.length} log lines`);

  // 2. Canceled mid-run: the worker stops by itself.
  const job = await client.createJob({ project: "node-worker", stages: [{ name: "resize" }, { name: "upload" }] });
  const running = worker({ ...env, PROGRESSD_JOB_ID: job.id }, ["100000", "5"]);
  await waitFor(async () => (await client.get(job.id)).progress > 0, "the worker's first report");
  await client.cancel(job.id);
  const stopped = await running;
  check(stopped.code === 3 && stopped.err.includes("was canceled: stopping"), `canceled worker: exit ${stopped.code}, ${stopped.err}`);
  check((await client.get(job.id)).state === "canceled", "the job is not canceled");
  console.log("ok   worker canceled mid-run: stopped by itself, exit 3");
  await client.close();
} catch (e) {
  failed = true;
  console.log("FAIL", e.stack ?? e);
  worker.last?.kill("SIGKILL");
} finally {
  server?.kill("SIGTERM");
  if (server) await Promise.race([new Promise((r) => server.once("exit", r)), sleep(10_000)]);
  server?.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`\nnode-worker example: ${failed ? "FAILED" : "passed"}`);
process.exit(failed ? 1 : 0);
