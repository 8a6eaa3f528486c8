// The Node client and its coalescing reporter (@progressd/client/node)
// against real progressd servers: coalescing, one batch for many jobs, the
// terminal report last and never lost while the server is down or answers
// 503 (a TCP proxy in front of it, test/proxy.ts), cancel learned by the
// worker, refused reports, idempotent create, and minted tokens the server
// accepts.
//
// @vitest-environment node
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type JobSnapshot } from "@progressd/client";
import { Client, ConnectionFailedError, JobCanceledError, mintToken, type ClientOptions } from "@progressd/client/node";
import { startProxy, type Proxy } from "./proxy";
import { authServer, server, uniqueProject, waitFor } from "./server-helpers";
import { inject } from "vitest";

let proxy: Proxy;
beforeAll(async () => {
  // Auth on behind the proxy: a server in single-user mode serves only
  // requests addressed to its own host:port.
  proxy = await startProxy(authServer());
});
afterAll(() => proxy.close());

const clients: Client[] = [];
function client(opts: ClientOptions = {}): Client {
  const c = new Client({ server: server(), backoffBaseMs: 20, backoffMaxMs: 100, ...opts });
  clients.push(c);
  return c;
}
afterEach(async () => {
  proxy.mode = "pass";
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

const token = (sub = "worker") => mintToken(inject("authSecret"), sub);

describe("Client", () => {
  it("creates, reports, logs, lists, reads logs and cancels; a retried create with the same key is the same job", async () => {
    const c = client();
    const project = uniqueProject("node");
    const job = await c.createJob({ project, name: "import", stages: [{ name: "parse" }, { name: "load", weight: 3 }] }, { idempotencyKey: "k-" + project });
    const again = await c.createJob({ project, name: "import", stages: [{ name: "parse" }, { name: "load", weight: 3 }] }, { idempotencyKey: "k-" + project });
    expect(again.id).toBe(job.id);
    const snap = await c.report(job.id, { stage: "load", progress: 0.5 });
    expect(snap.progress).toBeCloseTo(0.625);
    expect(await c.log(job.id, ["first", "second"])).toBe(2);
    expect((await c.logs(job.id, { after: 1 })).lines.map((l) => l.text)).toEqual(["second"]);
    expect((await c.list({ project })).jobs.map((j) => j.job_id)).toEqual([job.id]);
    expect((await c.cancel(job.id)).state).toBe("canceled");
    await expect(c.report(job.id, { progress: 0.9 })).rejects.toBeInstanceOf(JobCanceledError);
    await expect(c.get("no-such-job")).rejects.toMatchObject({ status: 404, code: "not_found" });
  });

  it("run() reports succeeded with the result, or failed with the error", async () => {
    const c = client();
    const project = uniqueProject("node");
    let id = "";
    const out = await c.run({ project }, async (job) => {
      id = job.id;
      job.report({ progress: 0.5 });
      return { rows: 3 };
    });
    expect(out).toEqual({ rows: 3 });
    expect(await c.get(id)).toMatchObject({ state: "succeeded", progress: 1, result: { rows: 3 } });
    await expect(
      c.run({ project }, async (job) => {
        id = job.id;
        throw new TypeError("bad row 7");
      }),
    ).rejects.toThrow("bad row 7");
    expect(await c.get(id)).toMatchObject({ state: "failed", error: "TypeError: bad row 7" });
  });
});

describe("Reporter", () => {
  it("coalesces a tight loop into a few requests and ends at the terminal report", async () => {
    const c = client();
    const job = await c.createJob({ project: uniqueProject("node") });
    const started = Date.now();
    const n = 200_000;
    for (let i = 1; i <= n; i++) {
      job.report({ current: i, total: n, message: `row ${i}` });
      if (i % 20_000 === 0) await new Promise((r) => setTimeout(r, 30)); // let the timer run, as real work would
    }
    await job.succeed({ rows: n });
    const elapsed = Date.now() - started;
    // At most one request per job per minInterval (100 ms), plus the final flush.
    expect(c.reporter.requests).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 2);
    expect(c.reporter.requests).toBeGreaterThanOrEqual(2);
    const final = await c.get(job.id);
    expect(final).toMatchObject({ state: "succeeded", progress: 1, result: { rows: n } });
    // The server applied one report per request: no report was sent per iteration.
    expect(final.seq).toBeLessThanOrEqual(c.reporter.requests + 2);
    expect(() => job.report({ progress: 1 })).toThrow(/terminal/);
  });

  it("sends the reports of many jobs due at one tick in one request", async () => {
    const c = client();
    const project = uniqueProject("node");
    const jobs = await Promise.all(Array.from({ length: 50 }, () => c.createJob({ project })));
    for (const j of jobs) j.report({ progress: 0.5, message: "half" });
    await c.reporter.flush();
    expect(c.reporter.requests).toBe(1);
    for (const j of jobs) j.report({ state: "succeeded" });
    await c.reporter.flush();
    expect(c.reporter.requests).toBe(2);
    const list = await c.list({ project, limit: 100 });
    expect(list.jobs.filter((j) => j.state === "succeeded")).toHaveLength(50);
  });

  it("sends every log line, in order, before the terminal report", async () => {
    const c = client();
    const job = await c.createJob({ project: uniqueProject("node") });
    for (let i = 1; i <= 2500; i++) job.log("line " + i);
    job.report({ state: "succeeded" });
    job.log("after the end"); // dropped: nothing goes after the terminal report
    await job.flush();
    const page = await c.logs(job.id, { limit: 1000 });
    expect(page.last).toBe(2500);
    expect(page.lines.at(-1)!.text).toBe("line 2500");
    expect(page.lines.map((l) => l.n)).toEqual(Array.from({ length: page.lines.length }, (_, i) => page.first + i));
    expect((await c.get(job.id)).state).toBe("succeeded");
    expect(c.reporter.requests).toBeGreaterThanOrEqual(3); // 1,000 lines a request at most
  });

  it("keeps the terminal report through a server answering 503, and delivers it when it recovers", async () => {
    const c = client({ server: proxy.url, token: token() });
    const job = await c.createJob({ project: uniqueProject("node") });
    proxy.set("503");
    const before = proxy.counts["503"];
    job.report({ progress: 0.7 });
    job.report({ state: "succeeded", result: { ok: true } });
    const delivered = job.flush();
    await waitFor(() => proxy.counts["503"] >= before + 3, "a few 503s");
    proxy.mode = "pass";
    await delivered;
    expect(await c.get(job.id)).toMatchObject({ state: "succeeded", result: { ok: true } });
  });

  it("never loses the terminal report while the server is down past the retry window", async () => {
    const c = client({ server: proxy.url, token: token(), retryWindowMs: 300 });
    const job = await c.createJob({ project: uniqueProject("node") });
    proxy.set("refuse");
    job.log("made it");
    job.report({ state: "failed", error: "disk full" });
    await expect(job.flush()).rejects.toBeInstanceOf(ConnectionFailedError);
    proxy.mode = "pass";
    await job.flush(); // still pending: sent now
    expect(await c.get(job.id)).toMatchObject({ state: "failed", error: "disk full" });
    expect((await c.logs(job.id)).lines.map((l) => l.text)).toEqual(["made it"]);
  });

  it("tells the worker its job was canceled: canceled, signal, and report() throws", async () => {
    const c = client();
    const job = await c.createJob({ project: uniqueProject("node") });
    job.report({ progress: 0.1 });
    await job.flush();
    await c.cancel(job.id);
    job.report({ progress: 0.2 });
    await job.flush();
    expect(job.canceled).toBe(true);
    expect(job.signal.aborted).toBe(true);
    expect(job.signal.reason).toBeInstanceOf(JobCanceledError);
    expect(() => job.report({ progress: 0.3 })).toThrow(JobCanceledError);
  });

  it("throws a refused report's error from the next call, and carries on", async () => {
    const c = client();
    const job = await c.createJob({ project: uniqueProject("node"), stages: [{ name: "a" }] });
    job.report({ stage: "no-such-stage", progress: 0.5 });
    const err = await job.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "unknown_stage" });
    expect(() => job.report({ progress: Number.NaN })).toThrow(RangeError);
    job.report({ stage: "a", progress: 0.5 });
    await job.flush();
    expect((await c.get(job.id)).progress).toBe(0.5);
  });
});

describe("a server that is not there", () => {
  it("down when the worker starts: the call fails after the retry window, saying what to check", async () => {
    const c = client({ server: proxy.url, token: token(), retryWindowMs: 200 });
    proxy.set("refuse");
    const err = await c.createJob({ project: uniqueProject("node") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionFailedError);
    expect((err as Error).message).toMatch(/could not reach progressd at .* within the 0.2 s retry window.*is it running/);
  });

  it("accepting but never answering: each request times out, and the call fails instead of hanging", async () => {
    const c = client({ server: proxy.url, token: token(), timeoutMs: 150, retryWindowMs: 400 });
    const job = await c.createJob({ project: uniqueProject("node") });
    proxy.set("hang");
    await expect(c.get(job.id)).rejects.toBeInstanceOf(ConnectionFailedError);
    job.report({ state: "succeeded" });
    await expect(job.flush()).rejects.toBeInstanceOf(ConnectionFailedError);
    expect(proxy.counts.hang).toBeGreaterThanOrEqual(2);
    proxy.set("pass");
    await job.flush(); // the terminal report was kept
    expect((await c.get(job.id)).state).toBe("succeeded");
  });
});

describe("mintToken", () => {
  it("mints tokens the server accepts, scoped and read-only as asked", async () => {
    const admin = client({ server: authServer(), token: mintToken(inject("authSecret"), "backend", { admin: true }) });
    const job = await admin.createJob({ project: uniqueProject("node"), owner: "alice" });
    expect(job.snapshot.owner).toBe("alice");
    const browser = client({ server: authServer(), token: mintToken(inject("authSecret"), "alice", { scope: ["job:" + job.id, "logs:" + job.id], readOnly: true, ttl: 60 }) });
    expect((await browser.get(job.id)).job_id).toBe(job.id);
    await expect(browser.report(job.id, { progress: 0.5 })).rejects.toMatchObject({ status: 403 });
    const worker = client({ server: authServer(), token: mintToken(inject("authSecret"), "alice", { scope: ["job:" + job.id, "logs:" + job.id] }) });
    const snap: JobSnapshot = await worker.report(job.id, { progress: 0.5 });
    expect(snap.progress).toBe(0.5);
    expect(() => mintToken("short", "x")).toThrow(/16 bytes/);
    expect(() => mintToken(inject("authSecret"), "x", { scope: ["nope"] })).toThrow(/scope entry/);
  });
});
