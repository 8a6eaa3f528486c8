// client.logs(id) against a real progressd server (SPEC "Log lines"):
// scrollback then live, each line once, a bounded buffer, a reconnect that
// resumes after the last line held (and says truncated when the server had
// dropped lines meanwhile), SSE, and a second tab fed by the first. The
// server keeps 5 lines per job (--log-lines 5) so that truncation is cheap
// to provoke; a TCP proxy (test/proxy.ts) cuts the connection.
//
// @vitest-environment node
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventSource as NodeEventSource } from "eventsource";
import { WebSocket as UndiciWebSocket } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { ProgressClient, type EventSourceCtor, type LogLine, type ProgressClientOptions, type WebSocketCtor } from "@progressd/client";
import { Client as NodeClient } from "@progressd/client/node";
import { FakeBroadcastChannel, FakeLocks } from "./fakes";
import { startServer, type RunningServer } from "./global-setup";
import { startProxy, type Proxy } from "./proxy";
import { mintToken, post, uniqueProject, waitFor } from "./server-helpers";

let srv: RunningServer;
let proxy: Proxy;
let dataDir: string;
let token: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "progressd-logs-test-"));
  // Auth on: a server in single-user mode serves only requests addressed
  // to its own host:port, and the proxy's differs.
  srv = await startServer(inject("bin"), dataDir, ["--auth-secret", inject("authSecret"), "--log-lines", "5"]);
  proxy = await startProxy(srv.url);
  token = mintToken("logs-user");
});
afterAll(async () => {
  await proxy?.close();
  await srv?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Every frame the clients' WebSockets sent, in order. */
const sent: string[] = [];
class RecordingWebSocket extends UndiciWebSocket {
  override send(data: string): void {
    sent.push(data);
    super.send(data);
  }
}

const clients: ProgressClient[] = [];
function connect(opts: Partial<ProgressClientOptions> = {}): ProgressClient {
  const c = new ProgressClient({
    server: srv.url,
    token,
    crossTab: false,
    onlineTarget: null,
    WebSocket: RecordingWebSocket as unknown as WebSocketCtor,
    EventSource: null,
    backoff: { baseMs: 50, capMs: 200 },
    ...opts,
  });
  clients.push(c);
  return c;
}
afterEach(async () => {
  proxy.mode = "pass";
  sent.length = 0;
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

async function newJob(): Promise<string> {
  const job = await post<{ job_id: string }>(srv.url, "/api/v1/jobs", { project: uniqueProject("logs") }, token);
  return job.job_id;
}

function append(job: string, ...lines: string[]): Promise<{ last: number }> {
  return post(srv.url, `/api/v1/jobs/${job}/logs`, { lines }, token);
}

const ns = (lines: readonly LogLine[]) => lines.map((l) => l.n);
const texts = (lines: readonly LogLine[]) => lines.map((l) => l.text);

/** The logs: subscribe frames sent for job, in order. */
function logSubscribes(job: string): { after?: number }[] {
  return sent.map((s) => JSON.parse(s)).filter((f) => f.op === "subscribe" && f.channel === "logs:" + job);
}

describe("client.logs(id)", () => {
  it("gives the kept lines, then every new one, each once and in order", async () => {
    const job = await newJob();
    await append(job, "one", "two", "three");
    const c = connect();
    const logs = c.logs(job);
    let changes = 0;
    logs.subscribe(() => changes++);
    await waitFor(() => logs.get().last === 3, "the scrollback");
    expect(texts(logs.get().lines)).toEqual(["one", "two", "three"]);
    expect(logs.get().lines[0]).toMatchObject({ n: 1, stream: "log", text: "one" });
    expect(logSubscribes(job)).toEqual([expect.not.objectContaining({ after: expect.anything() })]);

    await append(job, "four");
    await post(srv.url, `/api/v1/jobs/${job}/progress`, { progress: 0.5, log: ["five", "six"] }, token);
    await waitFor(() => logs.get().last === 6, "the live lines");
    // The server keeps 5; the page keeps what it saw (up to its limit).
    expect(ns(logs.get().lines)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(texts(logs.get().lines).slice(3)).toEqual(["four", "five", "six"]);
    expect(logs.get().truncated).toBe(false);
    expect(changes).toBeGreaterThanOrEqual(2);
    const before = logs.get();
    expect(logs.get()).toBe(before); // the same object until a line arrives

    // A second watcher of the same job shares the subscription.
    const again = c.logs(job, { limit: 2 });
    expect(ns(again.get().lines)).toEqual([5, 6]);
    expect(c.refCount("logs:" + job)).toBe(2);
    again.close();
    logs.close();
    expect(c.refCount("logs:" + job)).toBe(0);
  });

  it("holds at most limit lines, the newest", async () => {
    const job = await newJob();
    const c = connect();
    const logs = c.logs(job, { limit: 3 });
    await waitFor(() => c.getStatus().state === "open", "open");
    for (let i = 1; i <= 8; i++) await append(job, "line " + i);
    await waitFor(() => logs.get().last === 8, "eight lines");
    expect(ns(logs.get().lines)).toEqual([6, 7, 8]);
    // Nothing more is held than the limit, whoever reads the store.
    expect(c.logStore.lines(job)).toHaveLength(3);
    expect(() => c.logs(job, { limit: 0 })).toThrow(RangeError);
  });

  it("resumes after the last line held when the connection comes back", async () => {
    const job = await newJob();
    await append(job, "a", "b");
    const c = connect({ server: proxy.url });
    const logs = c.logs(job);
    await waitFor(() => logs.get().last === 2, "the first lines");

    proxy.set("refuse");
    await waitFor(() => c.getStatus().state === "reconnecting", "the client to notice");
    await append(job, "c", "d");
    proxy.mode = "pass";
    await waitFor(() => logs.get().last === 4, "the lines written while it was away");

    expect(texts(logs.get().lines)).toEqual(["a", "b", "c", "d"]);
    expect(logs.get().truncated).toBe(false);
    const subs = logSubscribes(job);
    expect(subs.length).toBeGreaterThanOrEqual(2);
    expect(subs[0]!.after).toBeUndefined();
    expect(subs.at(-1)!.after).toBe(2);
  });

  it("says truncated when the server dropped lines while it was away, and carries on", async () => {
    const job = await newJob();
    await append(job, "1", "2");
    const c = connect({ server: proxy.url });
    const logs = c.logs(job);
    await waitFor(() => logs.get().last === 2, "the first lines");

    proxy.set("refuse");
    await waitFor(() => c.getStatus().state === "reconnecting", "the client to notice");
    await append(job, ...Array.from({ length: 10 }, (_, i) => String(i + 3))); // 3..12; the server keeps 8..12
    proxy.mode = "pass";
    await waitFor(() => logs.get().last === 12, "the kept lines");

    expect(ns(logs.get().lines)).toEqual([1, 2, 8, 9, 10, 11, 12]);
    expect(logs.get().truncated).toBe(true);
    expect(logSubscribes(job).at(-1)!.after).toBe(2);
    await append(job, "13");
    await waitFor(() => logs.get().last === 13, "a live line after the gap");
  });

  it("works over SSE: scrollback, live, and a resume point", async () => {
    const job = await newJob();
    await append(job, "x", "y");
    const c = connect({ WebSocket: null, EventSource: NodeEventSource as unknown as EventSourceCtor });
    const logs = c.logs(job);
    await waitFor(() => logs.get().last === 2, "the scrollback over SSE");
    expect(c.getStatus().transport).toBe("sse");
    await append(job, "z");
    await waitFor(() => logs.get().last === 3, "a live line over SSE");
    // Another channel reopens the stream with after=3: nothing comes twice.
    const stop = c.watchJob(job);
    await waitFor(() => c.getJob(job), "the job's snapshot on the new stream");
    await append(job, "w");
    await waitFor(() => logs.get().last === 4, "a line on the new stream");
    expect(texts(logs.get().lines)).toEqual(["x", "y", "z", "w"]);
    stop();
  });

  it("reports a refused logs: channel", async () => {
    const c = connect();
    const logs = c.logs("no-such-job");
    await waitFor(() => logs.error(), "the refusal");
    expect(logs.error()!.code).toMatch(/not_found|forbidden/);
  });
});

describe("on Node", () => {
  it("Client.live() follows log lines and snapshots over the ws package (Node 20 has no WebSocket)", async () => {
    const job = await newJob();
    await append(job, "n1");
    const live = new NodeClient({ server: srv.url, token }).live();
    clients.push(live);
    const logs = live.logs(job);
    live.watchJob(job);
    await waitFor(() => logs.get().last === 1, "the scrollback");
    await append(job, "n2");
    await waitFor(() => logs.get().last === 2, "a live line");
    await waitFor(() => live.getJob(job), "the job's snapshot");
    expect(live.getStatus()).toMatchObject({ state: "open", transport: "websocket", role: "solo" });
  });

  it("Client.watch(id) yields newer and newer snapshots and ends after the terminal one", async () => {
    const job = await newJob();
    const c = new NodeClient({ server: srv.url, token });
    const seqs: number[] = [];
    const watching = (async () => {
      for await (const snap of c.watch(job)) {
        seqs.push(snap.seq);
        if (seqs.length === 1) {
          for (const p of [0.25, 0.5, 0.75]) await post(srv.url, `/api/v1/jobs/${job}/progress`, { progress: p }, token);
          await post(srv.url, `/api/v1/jobs/${job}/progress`, { state: "succeeded" }, token);
        }
      }
      return c.get(job);
    })();
    const final = await watching;
    expect(final.state).toBe("succeeded");
    expect(seqs.at(-1)).toBe(final.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    await expect(
      (async () => {
        for await (const _ of c.watch("no-such-job")) void _;
      })(),
    ).rejects.toMatchObject({ code: expect.stringMatching(/not_found|forbidden/) });
  });
});

describe("client.logs(id) across tabs", () => {
  it("a second tab gets the first tab's scrollback and then the live lines over its one connection", async () => {
    const job = await newJob();
    await append(job, "l1", "l2", "l3");
    const locks = new FakeLocks();
    const tab = () =>
      connect({ crossTab: true, locks, BroadcastChannel: FakeBroadcastChannel as never, heartbeatMs: 0 });
    const a = tab();
    const la = a.logs(job);
    await waitFor(() => la.get().last === 3, "tab A's scrollback");
    expect(a.getStatus().role).toBe("leader");

    const b = tab();
    const lb = b.logs(job);
    await waitFor(() => lb.get().last === 3, "tab B's catch-up from tab A");
    expect(b.getStatus().role).toBe("follower");
    await append(job, "l4");
    await waitFor(() => lb.get().last === 4 && la.get().last === 4, "the live line in both tabs");
    expect(texts(lb.get().lines)).toEqual(["l1", "l2", "l3", "l4"]);
    // One connection: tab B never subscribed on a socket of its own.
    expect(logSubscribes(job)).toHaveLength(1);
  });

  it("when the leading tab closes, the next one subscribes after the last line it holds", async () => {
    const job = await newJob();
    await append(job, "m1", "m2");
    const locks = new FakeLocks();
    const tab = () =>
      connect({ crossTab: true, locks, BroadcastChannel: FakeBroadcastChannel as never, heartbeatMs: 0 });
    const a = tab();
    a.logs(job);
    await waitFor(() => a.getStatus().role === "leader" && a.logStore.get(job).last === 2, "tab A leading with the lines");
    const b = tab();
    const lb = b.logs(job);
    await waitFor(() => lb.get().last === 2, "tab B's catch-up");
    await a.dispose();
    await waitFor(() => b.getStatus().role === "leader" && b.getStatus().state === "open", "tab B leading");
    await append(job, "m3");
    await waitFor(() => lb.get().last === 3, "the next line in tab B");
    expect(texts(lb.get().lines)).toEqual(["m1", "m2", "m3"]);
    expect(logSubscribes(job).map((f) => f.after)).toEqual([undefined, 2]);
  });
});
