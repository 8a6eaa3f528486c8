// Measures the dashboard in Chromium against a real `progressd serve`
// (figures for docs/benchmarks.md; not a test: nothing here asserts a time).
//
//   PROGRESSD_TEST_BIN=/path/to/progressd node e2e/perf.mjs
//
// 1. First load: the bytes the page loads (as sent over the wire, and as
//    files), and the time from navigation to the first progress bar on
//    screen, for a project of JOBS jobs (default 10,000), best and median
//    of 5 loads.
// 2. Live updates: UPDATING jobs (default 200) of that project report
//    progress RATE times a second each (default 10, in batches of
//    POST /api/v1/reports) while the page shows the project; the page
//    samples requestAnimationFrame intervals and long tasks for SECONDS
//    (default 20) s: frame time percentiles, share of frames over 20 ms, and
//    main-thread time in long tasks.
// 3. MEMORY_MINUTES=5: the updates go on that long; every 30 s the page's JS
//    heap after a garbage collection, and its DOM node count.
// Bounded: job creation, the update loop and every wait have a limit.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";

const JOBS = Number(process.env.JOBS ?? 10_000);
const UPDATING = Number(process.env.UPDATING ?? 200);
const RATE = Number(process.env.RATE ?? 10);
const MEMORY_MINUTES = Number(process.env.MEMORY_MINUTES ?? 0);
const SECONDS = Number(process.env.SECONDS ?? 20);
const bin = process.env.PROGRESSD_TEST_BIN;
if (!bin) throw new Error("set PROGRESSD_TEST_BIN to a progressd binary built with this web/dist");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = mkdtempSync(join(tmpdir(), "progressd-perf-"));

const port = await new Promise((res) => {
  const s = createServer().listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const url = `http://127.0.0.1:${port}`;
const srv = spawn(bin, ["serve", "--addr", `127.0.0.1:${port}`, "--data-dir", join(tmp, "data"), "--log-level", "warn"], { stdio: "inherit" });
let browser;
let context;
try {
  for (let i = 0; ; i++) {
    if (i > 300) throw new Error("the server did not start within 30 s");
    if (await fetch(url + "/healthz").then((r) => r.ok, () => false)) break;
    await sleep(100);
  }
  const post = async (path, body) => {
    const r = await fetch(url + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  };

  const project = "perf";
  const t0 = Date.now();
  const jobs = [];
  for (let i = 0; i < JOBS; i += 50) {
    const batch = [];
    for (let k = i; k < Math.min(JOBS, i + 50); k++) batch.push(post("/api/v1/jobs", { project, name: `job ${k}`, stages: [{ name: "a" }, { name: "b", weight: 3 }] }));
    jobs.push(...(await Promise.all(batch)));
    if (Date.now() - t0 > 600_000) throw new Error("creating the jobs took over 10 min");
  }
  // All but the newest UPDATING finish, so the project has a long history and UPDATING live jobs.
  const old = jobs.slice(0, JOBS - UPDATING);
  for (let i = 0; i < old.length; i += 1000) {
    await post("/api/v1/reports", { reports: old.slice(i, i + 1000).map((j) => ({ job_id: j.job_id, state: "succeeded" })) });
  }
  const live = jobs.slice(JOBS - UPDATING);
  console.log(`created ${JOBS} jobs (${UPDATING} active) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const newContext = () => browser.newContext({ viewport: { width: 1280, height: 860 } });
  context = await newContext();

  // ---- 1. first load ----
  // One load of the project's page in a new tab: the time to the first bar,
  // and when the list's first page came. first: as a first visit (a
  // browser context of its own: nothing cached); otherwise a visit again in
  // the shared context (HTTP cache, and Chromium's cache of compiled script).
  const loadOnce = async (first) => {
    const ctx = first ? await newContext() : context;
    const page = await ctx.newPage();
    await page.addInitScript(() => {
      new MutationObserver((_, obs) => {
        if (document.querySelector("[role=progressbar]")) {
          window.__firstBar = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true, attributes: true });
    });
    await page.goto(url + "/#/p/" + project);
    const bar = await page.waitForFunction(() => window.__firstBar, null, { timeout: 30_000 }).then((h) => h.jsonValue());
    // (The first bar may come from the project channel's replay, before the list's answer.)
    await page
      .waitForFunction(() => performance.getEntriesByType("resource").some((e) => e.name.includes("/api/v1/jobs?") && e.responseEnd > 0), null, { timeout: 10_000 })
      .catch(() => undefined);
    const t = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const list = performance.getEntriesByType("resource").find((e) => e.name.includes("/api/v1/jobs?"));
      // Static files only: the page, its script and its style (not the API).
      const statics = [nav, ...performance.getEntriesByType("resource")]
        .filter((e) => !e.name.includes("/api/") && !e.name.includes("/ws"))
        .map((e) => ({ name: e.name, wire: e.transferSize ? e.encodedBodySize : 0, file: e.decodedBodySize }));
      return { dcl: nav.domContentLoadedEventEnd, list: list ? list.responseEnd : NaN, listTook: list ? list.duration : NaN, statics };
    });
    await page.close();
    if (first) await ctx.close();
    return { first: bar, ...t };
  };
  const report = (what, runs) => {
    const med = (k) => runs.map((p) => p[k]).sort((a, b) => a - b)[Math.floor(runs.length / 2)].toFixed(0);
    const bars = runs.map((r) => r.first).sort((a, b) => a - b);
    const wire = runs.map((r) => r.statics.reduce((n, s) => n + s.wire, 0)).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    console.log(`${what}: first bar on screen best ${bars[0].toFixed(0)} ms, median ${med("first")} ms (of ${runs.length}); static bytes over the wire ${(wire / 1024).toFixed(1)} KiB`);
    console.log(`  medians: DOMContentLoaded ${med("dcl")} ms, first job page answered at ${med("list")} ms (the request took ${med("listTook")} ms)`);
  };
  const cold = [];
  for (let run = 0; run < 5; run++) cold.push(await loadOnce(true));
  let files = 0;
  let gz = 0;
  for (const r of cold[0].statics) {
    files += r.file;
    const body = Buffer.from(await (await fetch(r.name.split("#")[0], { headers: { "Accept-Encoding": "identity" } })).arrayBuffer());
    gz += gzipSync(body, { level: 9 }).length;
  }
  console.log(`static files: ${cold[0].statics.length} of ${(files / 1024).toFixed(1)} KiB (gzip -9 of them: ${(gz / 1024).toFixed(1)} KiB)`);
  report("first visit (nothing cached)", cold);
  await loadOnce(false); // fills the cache
  const warm = [];
  for (let run = 0; run < 5; run++) warm.push(await loadOnce(false));
  report("visit again (cache on)", warm);

  // ---- 2. frames while UPDATING jobs update ----
  const page = await context.newPage();
  await page.goto(url + "/#/p/" + project);
  await page.locator("[role=progressbar]").first().waitFor({ timeout: 30_000 });
  await sleep(5000); // the subscriptions' first snapshots settle
  // requestAnimationFrame intervals and the time in long tasks, for seconds.
  const frames = (seconds) =>
    page.evaluate(async (seconds) => {
      const out = [];
      let long = 0;
      const obs = new PerformanceObserver((l) => {
        for (const e of l.getEntries()) long += e.duration;
      });
      obs.observe({ type: "longtask", buffered: false });
      const start = performance.now();
      let last = start;
      await new Promise((done) => {
        const tick = (t) => {
          out.push(t - last);
          last = t;
          if (t - start < seconds * 1000) requestAnimationFrame(tick);
          else done();
        };
        requestAnimationFrame(tick);
      });
      obs.disconnect();
      return { frames: out, long, elapsed: performance.now() - start };
    }, seconds);
  // Main-thread time by kind (Chromium's own counters), per second of a phase.
  const perf = await context.newCDPSession(page);
  await perf.send("Performance.enable");
  const counters = async () => Object.fromEntries((await perf.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
  const busy = (a, b, secs) =>
    ["TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration"]
      .map((k) => `${k.replace("Duration", "").toLowerCase()} ${((100 * (b[k] - a[k])) / secs).toFixed(0)} %`)
      .join(", ");
  const phase = async (seconds) => {
    const a = await counters();
    const s = await frames(seconds);
    const b = await counters();
    return `${stats(s)}; main thread busy: ${busy(a, b, s.elapsed / 1000)}`;
  };
  const stats = (s) => {
    const f = s.frames.slice(1).sort((a, b) => a - b);
    const pct = (q) => f[Math.min(f.length - 1, Math.floor(q * f.length))].toFixed(1);
    const over = f.filter((x) => x > 20).length;
    return (
      `${f.length} frames (${(f.length / (s.elapsed / 1000)).toFixed(1)} fps), frame time p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms, p99 ${pct(0.99)} ms, ` +
      `${((100 * over) / f.length).toFixed(1)} % over 20 ms; long tasks ${((100 * s.long) / s.elapsed).toFixed(1)} % of main-thread time`
    );
  };
  // The control: the same page with nothing updating, on this machine as loaded as it is now.
  console.log(`idle (control): ${await phase(Math.min(SECONDS, 10))}`);
  let stop = false;
  let sentReports = 0;
  const feeder = (async () => {
    let step = 0;
    const every = 1000 / RATE;
    while (!stop) {
      const at = Date.now();
      step++;
      const p = Math.min(0.99, (step % 200) / 200);
      for (let i = 0; i < live.length; i += 1000) {
        await post("/api/v1/reports", { reports: live.slice(i, i + 1000).map((j) => ({ job_id: j.job_id, stage: "b", progress: p, message: `step ${step}` })) });
        sentReports += Math.min(1000, live.length - i);
      }
      await sleep(Math.max(0, every - (Date.now() - at)));
    }
  })();
  // PROFILE=1: a CPU profile of the page while it samples; its heaviest functions are printed.
  const cdp = process.env.PROFILE ? await context.newCDPSession(page) : null;
  if (cdp) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.start");
  }
  const sample = await phase(SECONDS);
  const sentInSample = sentReports;
  // MEMORY_MINUTES: the updates go on; the heap after a collection, every 30 s.
  const memory = [];
  let memoryBusy = "";
  if (MEMORY_MINUTES > 0) {
    const heap = await context.newCDPSession(page);
    await heap.send("HeapProfiler.enable");
    const a = await counters();
    const t0 = Date.now();
    for (;;) {
      await heap.send("HeapProfiler.collectGarbage");
      const { usedSize } = await heap.send("Runtime.getHeapUsage");
      const nodes = await page.evaluate(() => document.getElementsByTagName("*").length);
      memory.push({ min: (Date.now() - t0) / 60_000, mib: usedSize / 1048576, nodes });
      if (Date.now() - t0 >= MEMORY_MINUTES * 60_000) break;
      await sleep(Math.min(30_000, t0 + MEMORY_MINUTES * 60_000 - Date.now()));
    }
    memoryBusy = busy(a, await counters(), (Date.now() - t0) / 1000);
  }
  stop = true;
  await feeder;
  if (cdp) {
    const { profile } = await cdp.send("Profiler.stop");
    const self = new Map();
    const dt = profile.timeDeltas;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => {
      const f = byId.get(id).callFrame;
      const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber}:${f.columnNumber}`;
      self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0) / 1000);
    });
    for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${ms.toFixed(0).padStart(7)} ms  ${k}`);
  }
  console.log(
    `live: ${UPDATING} jobs × ${RATE}/s (${(sentInSample / SECONDS).toFixed(0)} reports/s sent) for ${SECONDS} s: ${sample}`,
  );
  const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize);
  if (heap) console.log(`JS heap after: ${(heap / 1048576).toFixed(1)} MiB`);
  if (memory.length > 0) {
    console.log(`memory over ${MEMORY_MINUTES} min of the same updates (JS heap after a collection, DOM nodes):`);
    console.log("  " + memory.map((m) => `${m.min.toFixed(1)} min ${m.mib.toFixed(2)} MiB ${m.nodes} nodes`).join("; "));
    console.log(`  main thread busy over those minutes: ${memoryBusy}`);
  }
} finally {
  await browser?.close().catch(() => undefined);
  srv.kill("SIGTERM");
  await new Promise((r) => srv.once("exit", r));
  rmSync(tmp, { recursive: true, force: true });
}
