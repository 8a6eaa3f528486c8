// The example end to end, in Debian's Chromium (playwright-core): starts
// the three processes with ../run.sh (progressd with auth and CORS, the
// FastAPI backend, the built front end on another origin) on free loopback
// ports, then, as a user would:
//   - signs in as alice, starts an import in the page, and watches its bar;
//   - reloads the page mid-job and sees the same job continue to 100%;
//   - opens a second tab: the two tabs share one WebSocket (progressd's
//     connection gauge says 1, one tab leads and the other follows), and a
//     job started in one tab reaches 100% in both;
//   - checks the backend's log lines reached progressd, and that bob, signed
//     in elsewhere, sees none of alice's jobs.
// Needs the front end built (../build.sh) and /usr/bin/chromium.
// Usage: npm run e2e   (PROGRESSD_BIN=/path/to/progressd to skip go build)
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { check, freePort, sleep, waitFor } from "../../../testkit.mjs";

const example = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const WS_GAUGE = 'progressd_gateway_connections{transport="ws"}';
const tmp = mkdtempSync(join(tmpdir(), "progressd-example-"));

/** An admin token for reading what the backend sent (HS256, the server's secret). */
function adminToken(secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "HS256", typ: "JWT" }) + "." + b64({ sub: "e2e", admin: true, iat: now, exp: now + 600 });
  return head + "." + createHmac("sha256", secret).update(head).digest("base64url");
}

async function metric(base, series) {
  const text = await (await fetch(base + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  check(line, `metric ${series} not found`);
  return Number(line.slice(series.length + 1));
}

/** The bars on a page: [{id, state, value}] (value: aria-valuenow, or null while indeterminate). */
async function bars(page) {
  return page.$$eval(".pd-bar", (els) =>
    els.map((el) => {
      const pb = el.querySelector('[role="progressbar"]');
      const v = pb?.getAttribute("aria-valuenow");
      return { id: el.getAttribute("data-job-id"), state: el.getAttribute("data-state"), value: v == null ? null : Number(v) };
    }),
  );
}

async function bar(page, id) {
  return (await bars(page)).find((b) => b.id === id);
}

async function signIn(page, web, user) {
  await page.goto(web);
  await page.fill('input[name="user"]', user);
  await page.click('button[type="submit"]');
  await page.waitForSelector("text=Start job");
}

/** Starts an import from the page's form; returns the new job's id (the bar that appeared). */
async function startJob(page, rows, seconds) {
  const before = new Set((await bars(page)).map((b) => b.id));
  await page.fill('input[name="rows"]', String(rows));
  await page.fill('input[name="seconds"]', String(seconds));
  await page.click("text=Start job");
  return waitFor(async () => (await bars(page)).find((b) => b.id && !before.has(b.id))?.id, "the new job's bar in the page");
}

let proc;
let browser;
let failed = false;
let stopping = false;
const t0 = Date.now();
try {
  check(readFileSync(join(example, "frontend", "dist", "index.html")), "build the front end first: ../build.sh");
  const [pport, aport, wport] = [await freePort(), await freePort(), await freePort()];
  const progressd = `http://127.0.0.1:${pport}`;
  const web = `http://127.0.0.1:${wport}`;
  proc = spawn(join(example, "run.sh"), [], {
    env: { ...process.env, SKIP_BUILD: "1", STATE_DIR: tmp, PROGRESSD_PORT: String(pport), API_PORT: String(aport), WEB_PORT: String(wport) },
    stdio: ["ignore", "inherit", "inherit"],
    detached: true, // its own process group: the cleanup below ends all three
  });
  proc.once("exit", (code, signal) => {
    if (!stopping) console.log(`run.sh ended early (${code ?? signal}): see its output above`);
  });
  await waitFor(async () => (await fetch(progressd + "/healthz")).ok, "progressd", 120_000);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${aport}/api/session`)).status === 401, "the backend", 60_000);
  await waitFor(async () => (await fetch(web + "/api/session")).status === 401, "the front end's proxy to the backend", 60_000);
  const admin = adminToken(readFileSync(join(tmp, "secret"), "utf8").trim());

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const alice = await browser.newContext();
  const page = await alice.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(e.message));

  // 1. Sign in, start a job, watch it move; reload mid-job; see it continue to 100%.
  await signIn(page, web, "alice");
  await page.waitForSelector("text=No imports yet.");
  const first = await startJob(page, 4000, 12);
  const running = await waitFor(async () => {
    const b = await bar(page, first);
    return b?.state === "running" && b.value > 0 && b.value < 100 && b;
  }, "the bar to move while the job runs");
  await page.reload();
  const after = await waitFor(async () => {
    const b = await bar(page, first);
    return b?.value != null && b;
  }, "the job's bar after the reload");
  check(after.value >= running.value, `after the reload the bar went back: ${running.value}% → ${after.value}%`);
  check(after.state === "running", `the job was ${after.state} right after the reload: make it longer (it should still run)`);
  await waitFor(async () => {
    const b = await bar(page, first);
    return b.value > after.value && b;
  }, "the bar to move on after the reload");
  await waitFor(async () => {
    const b = await bar(page, first);
    return b.state === "succeeded" && b.value === 100;
  }, "the job to reach 100% and succeed", 60_000);
  console.log(`ok   start, reload mid-job (${running.value}% → ${after.value}%), 100% (${Date.now() - t0} ms)`);

  // 2. The backend's log lines (logging.Handler and job.log) reached the job.
  const logs = await (await fetch(`${progressd}/api/v1/jobs/${first}/logs`, { headers: { Authorization: "Bearer " + admin } })).json();
  const texts = (logs.lines ?? []).map((l) => l.text);
  for (const want of [/^INFO fetching 4000 rows for alice$/, /^INFO imported 4000 of 4000 rows$/, /^summary: 4000 rows imported/]) {
    check(texts.some((t) => want.test(t)), `no log line matching ${want}: ${JSON.stringify(texts)}`);
  }
  const snap = await (await fetch(`${progressd}/api/v1/jobs/${first}`, { headers: { Authorization: "Bearer " + admin } })).json();
  check(snap.owner === "alice" && snap.state === "succeeded", `the job: owner ${snap.owner}, state ${snap.state}`);
  console.log(`ok   ${texts.length} log lines, job owned by alice (${Date.now() - t0} ms)`);

  // 3. A second tab shares the first one's connection.
  const tab2 = await alice.newPage();
  tab2.on("pageerror", (e) => pageErrors.push(e.message));
  await tab2.goto(web);
  await tab2.waitForSelector(`.pd-bar[data-job-id="${first}"]`);
  const roles = await waitFor(async () => {
    const r = [await page.getAttribute("main", "data-role"), await tab2.getAttribute("main", "data-role")].sort();
    return r[0] === "follower" && r[1] === "leader" && r;
  }, "one tab to lead and the other to follow");
  await waitFor(async () => (await metric(progressd, WS_GAUGE)) === 1, "progressd to hold one WebSocket for the two tabs");
  const second = await startJob(tab2, 1000, 3);
  for (const p of [page, tab2]) {
    await waitFor(async () => {
      const b = await bar(p, second);
      return b?.state === "succeeded" && b.value === 100;
    }, "the job started in tab 2 to reach 100% in both tabs", 60_000);
  }
  check((await metric(progressd, WS_GAUGE)) === 1, "a second WebSocket opened while the job ran");
  console.log(`ok   two tabs (${roles.join(", ")}), one WebSocket, the job at 100% in both (${Date.now() - t0} ms)`);

  // 4. Bob sees none of alice's jobs.
  const bob = await (await browser.newContext()).newPage();
  await signIn(bob, web, "bob");
  await bob.waitForSelector("text=No imports yet.");
  await waitFor(async () => (await bob.getAttribute("main", "data-connection")) === "open", "bob's connection");
  check((await bars(bob)).length === 0, "bob sees alice's jobs");
  console.log(`ok   bob sees none of alice's jobs (${Date.now() - t0} ms)`);

  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join("; ")}`);
} catch (e) {
  failed = true;
  console.log("FAIL", e.stack ?? e);
} finally {
  stopping = true;
  await browser?.close().catch(() => undefined);
  if (proc?.pid) {
    try {
      process.kill(-proc.pid, "SIGTERM");
    } catch {
      /* already gone */
    }
    await Promise.race([new Promise((r) => proc.once("exit", r)), sleep(10_000)]);
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      /* ended */
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`\nexample e2e: ${failed ? "FAILED" : "passed"} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
