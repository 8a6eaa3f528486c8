// The client against real progressd servers (see global-setup.ts). Tests
// marked [needs /ws] or [needs SSE] wait for the gateway to be wired into
// `progressd serve`; the HTTP ones run now.
//
// @vitest-environment node
// (jsdom's globals break undici's WebSocket events; the client runs on any
// standard WebSocket, here undici's, the one Node 22 ships as a global.)
import { EventSource as NodeEventSource } from "eventsource";
import { WebSocket as UndiciWebSocket } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "@progressd/client";
import { ProgressClient, type ProgressClientOptions } from "@progressd/client";
import type { EventSourceCtor, WebSocketCtor } from "@progressd/client";
import type { JobSnapshot } from "@progressd/client";
import { authServer, metric, mintToken, post, server, uniqueProject, waitFor } from "./server-helpers";

const clients: ProgressClient[] = [];
function connect(opts: ProgressClientOptions): ProgressClient {
  const c = new ProgressClient({
    crossTab: false,
    onlineTarget: null,
    WebSocket: UndiciWebSocket as unknown as WebSocketCtor,
    EventSource: null,
    ...opts,
  });
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

const WS_CONNS = 'progressd_gateway_connections{transport="ws"}';
const SSE_CONNS = 'progressd_gateway_connections{transport="sse"}';
const SUBS = "progressd_gateway_subscriptions";

async function createJob(base: string, project: string, token?: string): Promise<JobSnapshot> {
  return post<JobSnapshot>(base, "/api/v1/jobs", { project, stages: [{ name: "fetch" }, { name: "encode", weight: 3 }] }, token);
}

describe("HTTP API", () => {
  it("creates, lists, reports and cancels through the client's Api", async () => {
    const c = connect({ server: server() });
    const project = uniqueProject();
    const job = await c.api.createJob({ project, stages: [{ name: "a" }, { name: "b", weight: 3 }] });
    expect(job).toMatchObject({ project, owner: "local", state: "queued" });
    const r = await c.api.report(job.job_id, { stage: "b", progress: 0.5 });
    expect(r.progress).toBeCloseTo(0.625);
    expect(r.seq).toBeGreaterThan(job.seq);
    await c.listProject(project);
    expect(c.store.projectJobs(project).map((j) => j.job_id)).toEqual([job.job_id]);
    expect(c.getJob(job.job_id)!.seq).toBe(r.seq);
    const canceled = await c.api.cancelJob(job.job_id);
    expect(canceled.state).toBe("canceled");
    await expect(c.api.report(job.job_id, { progress: 0.9 })).rejects.toMatchObject({ status: 409 });
  });

  it("reports the server's error codes", async () => {
    const c = connect({ server: server() });
    const err = await c.api.createJob({ project: "p", pipeline: "no-such-pipeline" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 400, code: "unknown_pipeline" });
  });

  it("sends the token when auth is on", async () => {
    const anon = connect({ server: authServer() });
    await expect(anon.api.listJobs({ project: "x" })).rejects.toMatchObject({ status: 401 });
    const alice = connect({ server: authServer(), token: mintToken("alice") });
    const project = uniqueProject();
    const job = await alice.api.createJob({ project });
    expect(job.owner).toBe("alice");
    expect(alice.user()).toBe("alice");
    const bob = connect({ server: authServer(), token: mintToken("bob") });
    expect((await bob.api.listJobs({ project })).jobs).toEqual([]);
  });
});

describe("live updates over WebSocket", () => {
  it("follows a job to succeeded, never backwards", async () => {
    const c = connect({ server: server() });
    const project = uniqueProject();
    const job = await createJob(server(), project);
    const seen: number[] = [];
    c.store.subscribeJob(job.job_id, () => seen.push(c.getJob(job.job_id)!.seq));
    c.watchJob(job.job_id);
    await waitFor(() => c.getStatus().state === "open", "open");
    for (const p of [0.2, 0.4, 0.6, 0.8]) await post(server(), `/api/v1/jobs/${job.job_id}/progress`, { stage: "encode", progress: p });
    await post(server(), `/api/v1/jobs/${job.job_id}/progress`, { state: "succeeded" });
    const done = await waitFor(() => (c.getJob(job.job_id)?.state === "succeeded" ? c.getJob(job.job_id) : undefined), "succeeded");
    expect(done.progress).toBe(1);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(c.getStatus()).toMatchObject({ transport: "websocket", role: "solo" });
  });

  it("follows a batch on children:<id> and tag:<t>, and the parent's counts", async () => {
    const c = connect({ server: server() });
    const project = uniqueProject();
    const tag = "batch-" + project;
    const parent = await c.api.createJob({ project, name: "batch", expected_children: 3, tags: [tag] });
    const kids = [];
    for (let i = 0; i < 3; i++) kids.push(await c.api.createJob({ parent_id: parent.job_id, tags: [tag] }));
    expect(kids[0]!.project).toBe(project);
    c.watchChildren(parent.job_id);
    c.watchTag(tag);
    c.watchJob(parent.job_id);
    await waitFor(() => c.store.channelJobs("children:" + parent.job_id).length === 3, "the children's first snapshots");
    for (const k of kids) await post(server(), `/api/v1/jobs/${k.job_id}/progress`, { state: "succeeded" });
    const done = await waitFor(() => (c.getJob(parent.job_id)?.state === "succeeded" ? c.getJob(parent.job_id) : undefined), "the parent to finish");
    expect(done.children).toEqual({ total: 3, queued: 0, running: 0, succeeded: 3, failed: 0, canceled: 0 });
    expect(c.store.channelJobs("tag:" + tag).length).toBe(4);
    const projects = await c.api.listProjects();
    expect(projects.projects.find((p) => p.project === project)?.jobs.succeeded).toBe(4);
  });

  it("ten watchers of one job and a project are one connection and two server subscriptions", async () => {
    const before = await metric(server(), SUBS);
    const c = connect({ server: server() });
    const project = uniqueProject();
    const job = await createJob(server(), project);
    const offs = Array.from({ length: 10 }, () => c.watchJob(job.job_id));
    c.watchProject(project);
    await waitFor(() => c.getStatus().state === "open", "open");
    await waitFor(async () => (await metric(server(), SUBS)) === before + 2, "two subscriptions");
    expect(await metric(server(), WS_CONNS)).toBe(1);
    offs.forEach((off) => off());
    await waitFor(async () => (await metric(server(), SUBS)) === before + 1, "unsubscribed after the last watcher");
  });

  it("a user change closes the old connection before the new one opens", async () => {
    const aliceToken = mintToken("alice");
    const c = connect({ server: authServer(), token: aliceToken });
    const project = uniqueProject();
    const job = await createJob(authServer(), project, aliceToken);
    c.watchProject(project);
    await waitFor(() => c.getJob(job.job_id), "alice sees her job");
    expect(await metric(authServer(), WS_CONNS)).toBe(1);
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await metric(authServer(), WS_CONNS));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    c.setToken(mintToken("bob"));
    expect(c.getJob(job.job_id)).toBeUndefined();
    await waitFor(() => c.getStatus().state === "open", "open as bob");
    await new Promise((r) => setTimeout(r, 200));
    sampling = false;
    await sampler;
    expect(Math.max(...samples)).toBe(1); // never two at once
    expect(c.getJob(job.job_id)).toBeUndefined(); // bob does not see alice's job
  });

  it("a refreshed token of the same user keeps the connection", async () => {
    const c = connect({ server: authServer(), token: mintToken("carol", { ttl: "1h" }) });
    c.watchProject(uniqueProject());
    await waitFor(() => c.getStatus().state === "open", "open");
    const states: string[] = [];
    c.onStatus(() => states.push(c.getStatus().state));
    await new Promise((r) => setTimeout(r, 1100)); // a later exp
    c.setToken(mintToken("carol", { ttl: "2h" }));
    await new Promise((r) => setTimeout(r, 300));
    expect(states.filter((s) => s !== "open")).toEqual([]);
    expect(await metric(authServer(), WS_CONNS)).toBe(1);
  });

  it("a bad token is unauthorized and is not retried", async () => {
    const c = connect({ server: authServer(), token: mintToken("dave").slice(0, -4) + "AAAA" });
    c.watchUser("dave");
    await waitFor(() => c.getStatus().reason === "unauthorized", "unauthorized");
    expect(c.getStatus().state).toBe("closed");
  });

  it("no token while auth is on is unauthorized", async () => {
    const c = connect({ server: authServer() });
    c.watchProject("anything");
    await waitFor(() => c.getStatus().reason === "unauthorized", "unauthorized");
  });
});

describe("Server-Sent Events", () => {
  it("serves a page that has no WebSocket", async () => {
    const c = connect({ server: server(), WebSocket: null, EventSource: NodeEventSource as unknown as EventSourceCtor });
    const job = await createJob(server(), uniqueProject());
    c.watchJob(job.job_id);
    await waitFor(() => c.getStatus().state === "open", "open");
    expect(c.getStatus().transport).toBe("sse");
    await post(server(), `/api/v1/jobs/${job.job_id}/progress`, { progress: 0.5 });
    await post(server(), `/api/v1/jobs/${job.job_id}/progress`, { state: "succeeded" });
    await waitFor(() => c.getJob(job.job_id)?.state === "succeeded", "succeeded over SSE");
  });

  it("falls back to SSE when WebSocket cannot connect", async () => {
    // A WebSocket that cannot get through (as behind a proxy that refuses upgrades).
    const Blocked = class {
      constructor(url: string) {
        return new UndiciWebSocket(url.replace(/\/ws(\?|$)/, "/ws-blocked$1"));
      }
    } as unknown as WebSocketCtor;
    const c = connect({
      server: server(),
      WebSocket: Blocked,
      EventSource: NodeEventSource as unknown as EventSourceCtor,
      backoff: { baseMs: 50, capMs: 100 },
    });
    const job = await createJob(server(), uniqueProject());
    c.watchJob(job.job_id);
    await waitFor(() => c.getStatus().state === "open", "open", 15_000);
    expect(c.getStatus().transport).toBe("sse");
    expect(await metric(server(), SSE_CONNS)).toBeGreaterThanOrEqual(1);
    await post(server(), `/api/v1/jobs/${job.job_id}/progress`, { state: "succeeded" });
    await waitFor(() => c.getJob(job.job_id)?.state === "succeeded", "succeeded over SSE");
  });
});

