// Browser tests: Debian's Chromium (playwright-core, no browser download)
// against a real `progressd serve` built from this repo.
//
//   npm run e2e                       build dist + binary, run everything
//   PROGRESSD_TEST_BIN=/path npm run e2e   use a prebuilt binary (its embedded dist!)
//   E2E_ONLY=twenty npm run e2e       run the tests whose name contains "twenty"
//
// No test is skipped for a server feature that "looks not wired": a broken
// /ws or demo pipeline fails the tests that use it. Prints "N passed,
// N failed, N skipped" last.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { build, defaultClientConditions } from "vite";
import react from "@vitejs/plugin-react";
import { dashboardTests } from "./dashboard.mjs";

const web = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repo = resolve(web, "..");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const only = process.env.E2E_ONLY || "";
const WS_GAUGE = 'progressd_gateway_connections{transport="ws"}';
// The README's screenshots are rewritten only when asked
// (PROGRESSD_UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
const SHOTS = process.env.PROGRESSD_UPDATE_SCREENSHOT ? join(repo, "docs") : join(tmpdir(), "progressd-screenshots");
function screenshot(name) {
  mkdirSync(SHOTS, { recursive: true });
  console.log("  saving", join(SHOTS, name));
  return join(SHOTS, name);
}

const tmp = mkdtempSync(join(tmpdir(), "progressd-e2e-"));
const children = new Set();
let context;

// ---- server --------------------------------------------------------------

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

function binary() {
  if (process.env.PROGRESSD_TEST_BIN) return process.env.PROGRESSD_TEST_BIN;
  // The binary embeds web/dist: build it first so the browser sees these sources.
  execFileSync(process.execPath, [join(web, "scripts", "build.mjs")], { cwd: web, stdio: "inherit" });
  const bin = join(tmp, "progressd");
  execFileSync("go", ["build", "-o", bin, "./cmd/progressd"], { cwd: repo, stdio: "inherit" });
  return bin;
}

async function startServer(bin, port, dataDir, extra = []) {
  const addr = `127.0.0.1:${port}`;
  const proc = spawn(bin, ["serve", "--addr", addr, "--data-dir", dataDir, "--log-level", "warn", ...extra], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  const url = `http://${addr}`;
  const end = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`progressd serve exited with ${proc.exitCode}`);
    try {
      if ((await fetch(url + "/healthz")).ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error("progressd serve did not answer /healthz within 30 s");
    await sleep(100);
  }
  return {
    url,
    proc,
    stop: () =>
      new Promise((res) => {
        if (proc.exitCode !== null) return res(proc.exitCode);
        const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
        proc.once("exit", (code) => {
          clearTimeout(t);
          res(code);
        });
        proc.kill("SIGTERM");
      }),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(base, method, path, body) {
  const r = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const e = new Error(`${method} ${path}: ${r.status} ${JSON.stringify(data)}`);
    e.status = r.status;
    e.code = data?.error?.code;
    throw e;
  }
  return data;
}

async function metric(base, series) {
  const text = await (await fetch(base + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  if (!line) throw new Error(`metric ${series} not found`);
  return Number(line.slice(series.length + 1));
}

async function waitFor(fn, what, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ": " + last.message : ""}`);
    await sleep(50);
  }
}

// ---- the fixture app (an embedding page with N bars) ---------------------

async function buildFixture() {
  const out = join(tmp, "fixture");
  await build({
    root: join(web, "e2e", "fixture"),
    base: "/__e2e/",
    configFile: false,
    logLevel: "warn",
    plugins: [react()],
    // @progressd/* from their sources, as the dashboard's build does.
    resolve: { conditions: ["progressd-source", ...defaultClientConditions] },
    build: { outDir: out, emptyOutDir: true, rollupOptions: { input: join(web, "e2e", "fixture", "bars.html") } },
  });
  return out;
}

/**
 * Serves the fixture from its own origin on loopback, as a product page
 * embedding progressd's bars would be (Chromium's local-network checks
 * refuse a WebSocket to 127.0.0.1 from a page that did not come from the
 * network, so a routed page cannot stand in for it).
 */
async function serveFixture(dir, fport) {
  const { createServer: createHttpServer } = await import("node:http");
  const { readFile } = await import("node:fs/promises");
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  const srv = createHttpServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname.replace(/^\/__e2e\//, "/");
    try {
      const body = await readFile(join(dir, path.replace(/\.\./g, "")));
      res.writeHead(200, { "Content-Type": types[path.slice(path.lastIndexOf("."))] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => srv.listen(fport, "127.0.0.1", r));
  return srv;
}

/**
 * Serves pages from an origin progressd does not list, on another loopback
 * port: a stand-in for any web site the user happens to visit. Its pages
 * try to write to progressd the ways a page can without CORS.
 */
async function serveForeign(eport) {
  const { createServer: createHttpServer } = await import("node:http");
  const srv = createHttpServer((req, res) => {
    const u = new URL(req.url, "http://x");
    const server = JSON.stringify(u.searchParams.get("server") ?? "");
    const project = JSON.stringify(u.searchParams.get("project") ?? "");
    const pages = {
      // The classic form trick: enctype=text/plain turns name=value into a JSON body.
      "/form.html": `<!doctype html><form id=f method=POST enctype=text/plain>
        <input type=hidden id=i></form><script>
        const f = document.getElementById("f"), i = document.getElementById("i");
        f.action = ${server} + "/api/v1/jobs";
        i.name = JSON.stringify({ stages: [{ name: "x" }], project: ${project} }).slice(0, -2); // the body: {…,"project":"<project>="}
        i.value = '"}';
        f.submit();</script>`,
      "/fetch.html": `<!doctype html><p id=out>pending</p><script>
        const out = document.getElementById("out");
        const body = JSON.stringify({ project: ${project}, stages: [{ name: "x" }] });
        const post = (path, mode, type) => fetch(${server} + path, { method: "POST", mode, headers: { "Content-Type": type }, body });
        Promise.allSettled([
          post("/api/v1/jobs", "no-cors", "text/plain"),
          post("/api/v1/jobs", "no-cors", "application/x-www-form-urlencoded"),
          post("/api/v1/jobs", "cors", "application/json"),
        ]).then((rs) => { out.dataset.done = "1"; out.textContent = rs.map((r) => r.status + ":" + (r.value?.type ?? r.reason)).join(" "); });
        </script>`,
    };
    const page = pages[u.pathname];
    res.writeHead(page ? 200 : 404, { "Content-Type": "text/html" }).end(page ?? "");
  });
  await new Promise((r) => srv.listen(eport, "127.0.0.1", r));
  return srv;
}

// ---- a tiny runner ---------------------------------------------------------

class Skip extends Error {}
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const expect = (cond, msg) => {
  if (!cond) throw new Error("expected " + msg);
};

// ---- tests -----------------------------------------------------------------

let S; // the running server
let bin, port, dataDir, fixtureDir, fixtureOrigin, fixtureServer, foreignServer, fport, eport;
// The fixture is listed twice: by address (same site as the server, another
// port) and by name (localhost: another site to Chromium).
const serverArgs = () => ["--allowed-origins", `${fixtureOrigin},http://localhost:${fport}`];

async function newPage() {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("  [page error]", e.message));
  return page;
}

async function closePages() {
  for (const p of context.pages()) await p.close();
  await waitFor(async () => (await metric(S.url, WS_GAUGE)) === 0, "no WebSocket left open", 10_000);
}

function needWs() {
}

async function barValue(page, jobId) {
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-job-id="${id}"] [role=progressbar]`);
    return el ? { now: el.getAttribute("aria-valuenow"), text: el.getAttribute("aria-valuetext") } : null;
  }, jobId);
}

async function createReported(project, stages = [{ name: "fetch" }, { name: "encode", weight: 3 }, { name: "upload" }]) {
  return api(S.url, "POST", "/api/v1/jobs", { project, stages });
}

async function report(id, body) {
  return api(S.url, "POST", `/api/v1/jobs/${id}/progress`, body);
}

test("dashboard: start a demo job, its bar reaches 100% and shows succeeded", async () => {
  needWs();
  const page = await newPage();
  await page.goto(S.url + "/#/p/e2e-demo");
  await page.getByRole("button", { name: "Start job" }).click();
  const card = page.locator("article.job").first();
  await card.waitFor({ timeout: 10_000 });
  const seen = new Set();
  await waitFor(async () => {
    const v = await card.locator("[role=progressbar]").getAttribute("aria-valuenow");
    if (v) seen.add(Number(v));
    return (await card.getAttribute("data-state")) === "succeeded";
  }, "the demo job to succeed", 90_000);
  const bar = card.locator("[role=progressbar]");
  expect((await bar.getAttribute("aria-valuenow")) === "100", "aria-valuenow 100");
  expect((await card.locator(".pd-bar__text").textContent()) === "succeeded", 'the bar to say "succeeded"');
  expect([...seen].some((v) => v > 0 && v < 100), `intermediate progress, saw ${[...seen]}`);
});

test("dashboard: follows a job reported over HTTP, never backwards, to succeeded", async () => {
  needWs();
  const project = "e2e-reported";
  const job = await createReported(project);
  const page = await newPage();
  await page.goto(S.url + "/#/p/" + project);
  await page.locator(`article.job[data-job-id="${job.job_id}"]`).waitFor({ timeout: 10_000 });
  const values = [];
  for (const [stage, p] of [["fetch", 0.5], ["encode", 0.25], ["encode", 0.75], ["upload", 0.5]]) {
    const snap = await report(job.job_id, { stage, progress: p, message: `${stage} ${p}` });
    const want = Math.floor(snap.progress * 100);
    await waitFor(async () => Number((await barValue(page, job.job_id))?.now) === want, `bar at ${want}%`);
    values.push(want);
  }
  await report(job.job_id, { state: "succeeded" });
  await waitFor(async () => (await barValue(page, job.job_id))?.now === "100", "bar at 100%");
  const text = await page.locator(`article.job[data-job-id="${job.job_id}"] .pd-bar__text`).textContent();
  expect(text === "succeeded", `"succeeded", got "${text}"`);
  expect(values.every((v, i) => i === 0 || v >= values[i - 1]), "monotonic progress " + values);
  const conn = await page.locator(".conn").getAttribute("data-state");
  expect(conn === "open", "the connection indicator to say open, got " + conn);
});

test("twenty bars on a page open exactly one WebSocket", async () => {
  needWs();
  await closePages();
  const jobs = [];
  for (let i = 0; i < 15; i++) jobs.push(await createReported("e2e-twenty", [{ name: "work" }]));
  const page = await newPage();
  // 20 bars: 5 jobs with two bars each and 10 with one: reference counting and sharing at once.
  const ids = jobs.slice(0, 5).flatMap((j) => [j.job_id, j.job_id]).concat(jobs.slice(5).map((j) => j.job_id));
  expect(ids.length === 20, "20 bars");
  await page.goto(`${fixtureOrigin}/__e2e/bars.html?server=${encodeURIComponent(S.url)}&jobs=${ids.join(",")}`);
  await page.locator("#state[data-state=open]").waitFor({ timeout: 10_000 });
  await Promise.all(jobs.map((j, i) => report(j.job_id, { progress: (i + 1) / 40 })));
  await waitFor(
    async () => (await page.locator("[role=progressbar][aria-valuenow]").count()) === 20,
    "all 20 bars to show progress",
  );
  await sleep(300);
  const n = await metric(S.url, WS_GAUGE);
  const transport = await page.locator("#state").getAttribute("data-transport");
  expect(n === 1 && transport === "websocket", `one WebSocket on the server, saw ${n} (page on ${transport})`);
  await Promise.all(jobs.map((j) => report(j.job_id, { state: "succeeded" })));
  await waitFor(async () => (await page.locator('[role=progressbar][aria-valuenow="100"]').count()) === 20, "all 20 at 100%");
});

test("two tabs share one connection", async () => {
  needWs();
  await closePages();
  const job = await createReported("e2e-tabs");
  const a = await newPage();
  await a.goto(S.url + "/#/p/e2e-tabs");
  await a.locator(".conn[data-state=open]").waitFor({ timeout: 10_000 });
  const b = await newPage();
  await b.goto(S.url + "/#/p/e2e-tabs");
  await b.locator(".conn[data-state=open]").waitFor({ timeout: 10_000 });
  const roles = await Promise.all([a, b].map((p) => p.locator(".conn").getAttribute("title")));
  await sleep(300);
  const shared = await metric(S.url, WS_GAUGE);
  expect(shared === 1, `one WebSocket for two tabs, saw ${shared} (${roles.join(" / ")})`);
  const half = await report(job.job_id, { stage: "encode", progress: 0.5 });
  const want = String(Math.floor(half.progress * 100));
  for (const p of [a, b]) await waitFor(async () => (await barValue(p, job.job_id))?.now === want, `both tabs at ${want}%`);
  // The leader tab goes: the other takes over with a connection of its own.
  await a.close();
  await waitFor(async () => (await metric(S.url, WS_GAUGE)) === 1 && (await b.locator(".conn").getAttribute("data-state")) === "open", "the other tab to take over");
  await report(job.job_id, { state: "succeeded" });
  await waitFor(async () => (await barValue(b, job.job_id))?.now === "100", "the remaining tab at 100%");
});

test("restarting the server while a job runs: the page reconnects and shows the final state", async () => {
  needWs();
  await closePages();
  const job = await createReported("e2e-restart");
  const at = await report(job.job_id, { stage: "encode", progress: 0.4 });
  const page = await newPage();
  await page.goto(S.url + "/#/p/e2e-restart");
  await waitFor(async () => (await barValue(page, job.job_id))?.now !== undefined && (await barValue(page, job.job_id))?.now !== null, "the bar");
  const before = Number((await barValue(page, job.job_id)).now);
  const code = await S.stop();
  expect(code === 0, "progressd to exit 0 on SIGTERM, got " + code);
  await waitFor(async () => ["reconnecting", "connecting"].includes(await page.locator(".conn").getAttribute("data-state")), "the page to notice");
  S = await startServer(bin, port, dataDir, serverArgs());
  // Work goes on after the restart: the page must end at the server's final state.
  await report(job.job_id, { stage: "upload", progress: 0.5 });
  const final = await report(job.job_id, { state: "succeeded" });
  await waitFor(async () => (await page.locator(".conn").getAttribute("data-state")) === "open", "the page to reconnect", 40_000);
  await waitFor(async () => (await barValue(page, job.job_id))?.now === "100", "the final state after the restart", 20_000);
  const server = await api(S.url, "GET", `/api/v1/jobs/${job.job_id}`);
  expect(server.state === "succeeded" && server.seq === final.seq, "server state succeeded");
  expect(before === Math.floor(at.progress * 100), `${Math.floor(at.progress * 100)}% before the restart, saw ${before}`);
});

test("restarting the server while a demo job runs: the page ends at the server's final state", async () => {
  needWs();
  await closePages();
  const page = await newPage();
  await page.goto(S.url + "/#/p/e2e-demo-restart");
  await page.getByRole("button", { name: "Start job" }).click();
  const card = page.locator("article.job").first();
  await card.waitFor({ timeout: 10_000 });
  const id = await card.getAttribute("data-job-id");
  await waitFor(async () => Number((await barValue(page, id))?.now) > 0, "the demo job to make progress", 30_000);
  await S.stop();
  S = await startServer(bin, port, dataDir, serverArgs());
  const final = await waitFor(async () => {
    const j = await api(S.url, "GET", `/api/v1/jobs/${id}`);
    return ["succeeded", "failed", "canceled"].includes(j.state) && j;
  }, "the job to finish on the restarted server", 90_000);
  await waitFor(async () => (await card.getAttribute("data-state")) === final.state, `the page to show ${final.state}`, 30_000);
});

test("with auth on: the dashboard asks for a token, takes ?token= and shows that user's jobs", async () => {
  needWs();
  const secret = "e2e-secret-0123456789abcdef";
  const aport = await freePort();
  const A = await startServer(bin, aport, join(tmp, "auth-data"), ["--auth-secret", secret]);
  try {
    const token = execFileSync(bin, ["token", "--auth-secret", secret, "--sub", "erin"], { encoding: "utf8" }).split("\n")[0].trim();
    const r = await fetch(A.url + "/api/v1/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ project: "erin-project", stages: [{ name: "work" }] }),
    });
    const job = await r.json();
    const page = await newPage();
    await page.goto(A.url + "/");
    await page.getByRole("heading", { name: "This server needs a token" }).waitFor({ timeout: 10_000 });
    // Said once, plainly: no "refused", no second error, no "user local".
    await page.locator(".conn[data-state=closed]").waitFor({ timeout: 10_000 });
    const said = await page.locator("body").innerText();
    expect(!/refused/i.test(said), "no word of a refused token when none was given, got: " + said);
    expect((await page.locator(".alert, [role=alert]").count()) === 0, "no error box besides the token panel");
    const chip = (await page.locator(".chip--user").innerText()).trim();
    expect(chip === "Sign in", "the user chip to say Sign in, got " + chip);
    await page.goto(A.url + "/?token=" + encodeURIComponent(token) + "#/p/erin-project");
    await page.locator(".conn[data-state=open]").waitFor({ timeout: 10_000 });
    expect(!page.url().includes("token="), "the token to be taken out of the address, got " + page.url());
    expect((await page.locator(".chip--user").textContent()).includes("erin"), "the user chip to say erin");
    await page.locator(`article.job[data-job-id="${job.job_id}"]`).waitFor({ timeout: 10_000 });
    await fetch(A.url + `/api/v1/jobs/${job.job_id}/progress`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ state: "succeeded" }),
    });
    await waitFor(async () => (await barValue(page, job.job_id))?.now === "100", "erin's job at 100%");
    expect((await page.getByLabel("Owner", { exact: true }).count()) === 0, "no owner filter for a user who sees its own jobs only");
    // An operator (admin token) sees every owner's jobs, and may narrow them to one.
    const admin = execFileSync(bin, ["token", "--auth-secret", secret, "--sub", "ops", "--admin"], { encoding: "utf8" }).split("\n")[0].trim();
    await page.goto(A.url + "/?token=" + encodeURIComponent(admin) + "#/p/erin-project?owner=erin");
    await page.locator(`article.job[data-job-id="${job.job_id}"]`).waitFor({ timeout: 10_000 });
    expect((await page.getByLabel("Owner", { exact: true }).inputValue()) === "erin", "the owner filter from the address");
    await page.getByLabel("Owner", { exact: true }).fill("ops");
    await page.getByLabel("Owner", { exact: true }).press("Enter");
    await waitFor(async () => (await page.locator("article.job").count()) === 0, "none of erin's jobs under owner ops");
    await page.close();
  } finally {
    await A.stop();
  }
});

test("dashboard: start a pipeline with a param from the form; the job runs with it", async () => {
  // A server of its own, with a pipelines file whose pipeline takes a param
  // and prints it as its message.
  const file = join(tmp, "pipelines-form.yaml");
  writeFileSync(
    file,
    `pipelines:
  echo:
    params: [word]
    stages:
      - name: say
        run: ["sh", "-c", "printf '{\\"progress\\": 1, \\"message\\": \\"said %s\\"}\\n' \\"$1\\"", "sh", "{{word}}"]
  other:
    stages:
      - name: noop
        run: ["true"]
`,
  );
  const P = await startServer(bin, await freePort(), join(tmp, "pipelines-data"), ["--pipelines", file]);
  try {
    const page = await newPage();
    await page.goto(P.url + "/#/p/e2e-form");
    const picker = page.getByLabel("Pipeline");
    await picker.waitFor({ timeout: 10_000 });
    const options = await picker.locator("option").allTextContents();
    expect(JSON.stringify(options) === JSON.stringify(["echo", "other"]), `the picker to offer echo and other, got ${options}`);
    await picker.selectOption("echo");
    await page.getByLabel("word").fill("hello form");
    await page.getByRole("button", { name: "Start job" }).click();
    const card = page.locator("article.job").first();
    await card.waitFor({ timeout: 10_000 });
    await waitFor(async () => (await card.getAttribute("data-state")) === "succeeded", "the echo job to succeed", 60_000);
    const id = await card.getAttribute("data-job-id");
    const job = await api(P.url, "GET", `/api/v1/jobs/${id}`);
    expect(job.pipeline === "echo" && job.params?.word === "hello form", `the job to run echo with word=hello form, got ${JSON.stringify(job)}`);
    expect(job.message === "said hello form", `the job's message to carry the param, got ${job.message}`);
    await page.close();
  } finally {
    await P.stop();
  }
});

test("job detail: a card opens #/jobs/<id>; after a reload it shows the job, its children live, an error once", async () => {
  const project = "e2e-detail";
  const parent = await api(S.url, "POST", "/api/v1/jobs", { project, name: "nightly batch", tags: ["e2e-detail"], expected_children: 2 });
  const a = await api(S.url, "POST", "/api/v1/jobs", { parent_id: parent.job_id, name: "item a", stages: [{ name: "work" }] });
  const b = await api(S.url, "POST", "/api/v1/jobs", { parent_id: parent.job_id, name: "item b", stages: [{ name: "work" }] });
  await report(b.job_id, { state: "failed", error: "disk full" });
  const page = await newPage();
  await page.goto(S.url + "/#/p/" + project);
  await page.locator(`article.job[data-job-id="${parent.job_id}"] a.job__open`).click();
  await page.waitForURL((u) => u.hash === "#/jobs/" + parent.job_id, { timeout: 10_000 });
  await page.reload();
  const detail = page.locator(`section.detail[data-job-id="${parent.job_id}"]`);
  await detail.waitFor({ timeout: 10_000 });
  expect((await detail.locator("#job-title").textContent()).includes("nightly batch"), "the title");
  expect((await detail.locator(".detail__id code").textContent()) === parent.job_id, "the full id");
  expect((await detail.locator(".facts").textContent()).includes("e2e-detail"), "the tags");
  const marked = page.getByRole("navigation", { name: "Projects" }).locator("[aria-current=page] .project__name");
  await waitFor(async () => (await marked.allTextContents()).join() === project, "the job's project marked in the sidebar");
  await waitFor(async () => (await detail.locator("li.child").count()) === 2, "both children listed");
  await report(a.job_id, { progress: 0.5 });
  await waitFor(async () => (await barValue(page, a.job_id))?.now === "50", "child a's bar at 50%, live");
  // The failed child's page shows its error once.
  await detail.locator("li.child a", { hasText: "item b" }).click();
  const child = page.locator(`section.detail[data-job-id="${b.job_id}"]`);
  await child.waitFor({ timeout: 10_000 });
  // Once: in the bar's words (its spoken twin is for screen readers), in no other line.
  expect((await child.locator(".pd-bar__text").textContent()).includes("disk full"), "the error in the bar");
  const lines = await child.locator("p, dd, h1").allTextContents();
  expect(!lines.some((l) => l.includes("disk full")), "the error in no other line, got: " + JSON.stringify(lines));
  await page.close();
});

test("cross-site: a page on an unlisted origin cannot create a job (form or fetch)", async () => {
  const project = "e2e-csrf";
  const q = `server=${encodeURIComponent(S.url)}&project=${project}`;
  // localhost vs 127.0.0.1 is cross-site (Sec-Fetch-Site: cross-site); another port of 127.0.0.1 is same-site.
  for (const origin of [`http://localhost:${eport}`, `http://127.0.0.1:${eport}`]) {
    const page = await newPage();
    await page.goto(`${origin}/fetch.html?${q}`);
    await page.locator("#out[data-done]").waitFor({ timeout: 10_000 });
    const out = await page.locator("#out").textContent();
    expect(out.includes("rejected:TypeError"), "the CORS fetch to fail in the page, got " + out);
    // The form navigates the page to progressd's answer: a 403 the page cannot read.
    const answered = page.waitForResponse((r) => r.url() === S.url + "/api/v1/jobs", { timeout: 10_000 });
    await page.goto(`${origin}/form.html?${q}`);
    const r = await answered;
    expect(r.status() === 403, `the form POST from ${origin} to be refused with 403, got ${r.status()}`);
    expect((await r.text()).includes('"code":"forbidden"'), "a forbidden error body");
    await page.close();
  }
  for (const p of [project, project + "="]) {
    const list = await api(S.url, "GET", `/api/v1/jobs?project=${encodeURIComponent(p)}`);
    expect(list.jobs.length === 0, `no job created from another origin, found ${list.jobs.length} in ${p}`);
  }
});

test("CORS: a page on a listed origin creates a job with fetch and reads an error body", async () => {
  const page = await newPage();
  await page.goto(`http://localhost:${fport}/__e2e/bars.html?server=${encodeURIComponent(S.url)}&jobs=`);
  const got = await page.evaluate(async (server) => {
    const post = async (body) => {
      const r = await fetch(server + "/api/v1/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      return { status: r.status, body: await r.json() };
    };
    return { ok: await post({ project: "e2e-cors", stages: [{ name: "x" }] }), bad: await post({ project: "e2e-cors", stages: [{ name: "" }] }) };
  }, S.url);
  expect(got.ok.status === 201 && got.ok.body.project === "e2e-cors", "201 and the snapshot, got " + JSON.stringify(got.ok));
  expect(got.bad.status === 400 && typeof got.bad.body.error?.code === "string", "a readable 400 error, got " + JSON.stringify(got.bad));
  const server = await api(S.url, "GET", `/api/v1/jobs/${got.ok.body.job_id}`);
  expect(server.project === "e2e-cors", "the job on the server");
  await page.close();
});

test("DNS rebinding: a page on a name that resolves to 127.0.0.1 gets nothing", async () => {
  // Chromium resolves rebound.test to 127.0.0.1 (--host-resolver-rules), as
  // an attacker's DNS would after serving its page: to the browser, the page
  // and progressd are then one origin, http://rebound.test:PORT.
  const rebound = `http://rebound.test:${port}`;
  const page = await newPage();
  const first = await page.goto(rebound + "/");
  expect(first.status() === 403, "the dashboard on the rebound name to be refused, got " + first.status());
  const got = await page.evaluate(async () => {
    const list = await fetch("/api/v1/jobs").then(async (r) => ({ status: r.status, body: await r.text() }));
    const create = await fetch("/api/v1/jobs", { method: "POST", body: JSON.stringify({ project: "e2e-rebound" }) }).then((r) => r.status);
    const ws = await new Promise((res) => {
      const w = new WebSocket(location.origin.replace("http", "ws") + "/ws");
      w.onopen = () => (w.close(), res("open"));
      w.onerror = () => res("refused");
    });
    return { list, create, ws };
  });
  expect(got.list.status === 403 && got.list.body.includes('"code":"forbidden"'), "the job list refused, got " + JSON.stringify(got.list));
  expect(got.create === 403, "create refused, got " + got.create);
  expect(got.ws === "refused", "the WebSocket refused, got " + got.ws);
  const list = await api(S.url, "GET", "/api/v1/jobs?project=e2e-rebound");
  expect(list.jobs.length === 0, "no job created");
  await page.close();
});

dashboardTests({
  test,
  expect,
  waitFor,
  sleep,
  api,
  report,
  createReported,
  newPage,
  closePages,
  screenshot,
  url: () => S.url,
  context: () => context,
  // A server with a fresh data dir on the same port, for pictures of these jobs only.
  // The same server stopped (SIGTERM) and started again on its data dir.
  restartServer: async () => {
    await closePages();
    await S.stop();
    S = await startServer(bin, port, dataDir, serverArgs());
  },
  freshServer: async () => {
    await closePages();
    await S.stop();
    S = await startServer(bin, port, join(tmp, "fresh-" + Date.now()), serverArgs());
  },
});

// ---- main ------------------------------------------------------------------

let passed = 0,
  failed = 0,
  skipped = 0;
try {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
  bin = binary();
  port = await freePort();
  fport = await freePort();
  eport = await freePort();
  fixtureOrigin = `http://127.0.0.1:${fport}`;
  dataDir = join(tmp, "data");
  S = await startServer(bin, port, dataDir, serverArgs());
  fixtureDir = await buildFixture();
  fixtureServer = await serveFixture(fixtureDir, fport);
  foreignServer = await serveForeign(eport);
  context = await chromium.launchPersistentContext(join(tmp, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP rebound.test 127.0.0.1", // the DNS rebinding test
    ],
  });
  for (const p of context.pages()) await p.close();

  for (const t of tests) {
    if (only && !t.name.includes(only)) continue;
    const t0 = Date.now();
    try {
      await t.fn();
      passed++;
      console.log(`ok   ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      if (e instanceof Skip) {
        skipped++;
        console.log(`skip ${t.name}: ${e.message}`);
      } else {
        failed++;
        console.log(`FAIL ${t.name}: ${e.stack ?? e}`);
      }
    }
  }
} catch (e) {
  failed++;
  console.log("FAIL setup:", e.stack ?? e);
} finally {
  await context?.close().catch(() => undefined);
  await S?.stop().catch(() => undefined);
  fixtureServer?.close();
  foreignServer?.close();
  for (const c of children) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`\ne2e: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
