import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProgressClient, type ProgressClientOptions } from "@progressd/client";
import { fullJitter } from "@progressd/client";
import { CLOSE_CODES } from "@progressd/client";
import { FakeEventSource, FakeTimers, FakeWebSocket, flush, snapshot } from "./fakes";

// A JWT's shape with readable claims (the server, not the client, verifies signatures).
function jwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}.sig`;
}

let timers: FakeTimers;
let online: EventTarget;
const clients: ProgressClient[] = [];

function make(opts: Partial<ProgressClientOptions> = {}): ProgressClient {
  const c = new ProgressClient({
    server: "http://progressd.test",
    crossTab: false,
    WebSocket: FakeWebSocket,
    EventSource: FakeEventSource,
    fetch: null,
    timers,
    random: () => 0.5,
    onlineTarget: online,
    heartbeatMs: 0,
    clientId: "page-1",
    ...opts,
  });
  clients.push(c);
  return c;
}

/** Opens the newest socket and answers every request. */
async function accept(ws = FakeWebSocket.last()) {
  ws.open();
  ws.replyAll();
  await flush();
  return ws;
}

beforeEach(() => {
  timers = new FakeTimers();
  online = new EventTarget();
  FakeWebSocket.reset();
  FakeEventSource.reset();
});
afterEach(async () => {
  FakeWebSocket.autoFinishClose = true;
  for (const ws of FakeWebSocket.instances) if (ws.readyState === 2) ws.finishClose();
  FakeWebSocket.autoFinishClose = true;
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

describe("reference counting", () => {
  it("ten watchers of one job are one server subscription, removed after the last lets go", async () => {
    const c = make();
    const offs = Array.from({ length: 10 }, () => c.watchJob("j1"));
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(1);
    const ws = await accept();
    expect(ws.url).toBe("ws://progressd.test/ws?client_id=page-1");
    expect(ws.frames("subscribe")).toEqual([{ op: "subscribe", id: expect.any(Number), channel: "job:j1", _replied: true }]);
    expect(c.refCount("job:j1")).toBe(10);
    for (const off of offs.slice(0, 9)) off();
    offs[0]!(); // calling twice changes nothing
    await timers.advance(1000);
    expect(ws.frames("unsubscribe")).toHaveLength(0);
    offs[9]!();
    await timers.advance(100);
    expect(ws.frames("unsubscribe")).toHaveLength(0); // lingers briefly: unmount + remount costs nothing
    await timers.advance(200);
    expect(ws.frames("unsubscribe")).toEqual([{ op: "unsubscribe", id: expect.any(Number), channel: "job:j1" }]);
  });

  it("an unmount and remount within the linger sends nothing", async () => {
    const c = make();
    const off = c.watchProject("p1");
    await flush();
    const ws = await accept();
    off();
    await timers.advance(100);
    const off2 = c.watchProject("p1");
    await timers.advance(1000);
    expect(ws.frames("subscribe")).toHaveLength(1);
    expect(ws.frames("unsubscribe")).toHaveLength(0);
    off2();
  });

  it("subscriptions made in one task share one connection attempt", async () => {
    const c = make();
    c.watchJob("a");
    c.watchJob("b");
    c.watchProject("p");
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(1);
    const ws = await accept();
    expect(ws.frames("subscribe").map((f) => f.channel)).toEqual(["job:a", "job:b", "project:p"]);
  });

  it("closes the connection when nothing is watched any more", async () => {
    const c = make();
    const off = c.watchJob("a");
    await flush();
    const ws = await accept();
    off();
    await timers.advance(2000 + 250);
    expect(ws.readyState).toBe(3);
    expect(c.getStatus()).toMatchObject({ state: "closed", reason: "idle" });
  });
});

describe("updates and seq", () => {
  it("keeps the highest seq per job across channels and reconnects", async () => {
    const c = make();
    c.watchJob("j");
    c.watchProject("p1");
    await flush();
    const ws = await accept();
    ws.receive({ type: "update", channel: "job:j", job: snapshot("j", 5) });
    ws.receive({ type: "update", channel: "project:p1", job: snapshot("j", 5) });
    ws.receive({ type: "update", channel: "project:p1", job: snapshot("j", 4) });
    expect(c.getJob("j")!.seq).toBe(5);
    ws.serverClose(1001);
    await timers.advance(60_000);
    const ws2 = await accept();
    // The server replays the current state on resubscribe; an older replay is ignored.
    ws2.receive({ type: "update", channel: "job:j", job: snapshot("j", 3) });
    expect(c.getJob("j")!.seq).toBe(5);
    ws2.receive({ type: "update", channel: "job:j", job: snapshot("j", 8, { state: "succeeded", progress: 1 }) });
    expect(c.getJob("j")).toMatchObject({ seq: 8, state: "succeeded" });
  });
});

describe("reconnecting", () => {
  it("resubscribes every channel after a reconnect", async () => {
    const c = make();
    c.watchJob("a");
    c.watchUser("local");
    await flush();
    const ws = await accept();
    expect(c.getStatus()).toMatchObject({ state: "open", transport: "websocket" });
    ws.serverClose(1006);
    expect(c.getStatus()).toMatchObject({ state: "reconnecting", reason: "network" });
    await timers.advance(30_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
    const ws2 = await accept();
    expect(ws2.frames("subscribe").map((f) => f.channel).sort()).toEqual(["job:a", "user:local"]);
    expect(c.getStatus()).toMatchObject({ state: "open", attempt: 0 });
  });

  it("waits full-jitter exponential delays, from the injected random", async () => {
    const rnd = [0.9, 0.1, 0.5, 0.7, 0.3];
    let i = 0;
    const random = () => rnd[i++ % rnd.length]!;
    const c = make({ random, backoff: { baseMs: 1000, capMs: 8000 }, transports: ["websocket"] });
    c.watchJob("a");
    await flush();
    const delays: number[] = [];
    for (let n = 0; n < 5; n++) {
      FakeWebSocket.last().fail();
      await flush();
      const st = c.getStatus();
      expect(st.state).toBe(n === 0 ? "reconnecting" : "reconnecting");
      delays.push(st.retryAt! - timers.now());
      const before = FakeWebSocket.instances.length;
      await timers.advance(delays[n]! - 1);
      expect(FakeWebSocket.instances.length).toBe(before); // not a moment early
      await timers.advance(1);
      expect(FakeWebSocket.instances.length).toBe(before + 1);
    }
    expect(delays).toEqual([900, 200, 2000, 5600, 2400]);
    expect(delays).toEqual([0, 1, 2, 3, 4].map((n) => fullJitter(n, () => rnd[n]!, { baseMs: 1000, capMs: 8000 })));
  });

  it("resets the backoff once a connection is healthy again", async () => {
    const c = make({ random: () => 0.99, transports: ["websocket"] });
    c.watchJob("a");
    await flush();
    for (let n = 0; n < 4; n++) {
      FakeWebSocket.last().fail();
      await timers.advance(60_000);
    }
    await accept();
    expect(c.getStatus().attempt).toBe(0);
    FakeWebSocket.last().serverClose(1001);
    expect(c.getStatus().retryAt! - timers.now()).toBe(Math.floor(0.99 * 500));
  });

  it("reconnects at once when the browser comes back online", async () => {
    const c = make({ random: () => 0.99 });
    c.watchJob("a");
    await flush();
    await accept();
    FakeWebSocket.last().serverClose(1006);
    await timers.advance(100);
    expect(FakeWebSocket.instances).toHaveLength(1);
    online.dispatchEvent(new Event("online"));
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("4029 waits at least the too-many-connections floor", async () => {
    const c = make({ random: () => 0 });
    c.watchJob("a");
    await flush();
    await accept();
    FakeWebSocket.last().serverClose(4029);
    expect(c.getStatus()).toMatchObject({ state: "reconnecting", reason: "too_many_connections" });
    expect(c.getStatus().retryAt! - timers.now()).toBe(5000);
  });

  it("follows the server's close-code table for every code", async () => {
    for (const [key, row] of Object.entries(CLOSE_CODES)) {
      const code = Number(key);
      const c = make({ random: () => 0 });
      c.watchJob("a");
      await flush();
      await accept();
      FakeWebSocket.last().serverClose(code);
      const s = c.getStatus();
      expect(s.reason).toBe(row.name);
      if (row.reconnect) {
        expect(s.state).toBe("reconnecting");
        expect(s.retryAt! - timers.now()).toBe(row.minDelayMs);
      } else {
        expect(s.state).toBe("closed");
      }
      c.dispose();
    }
  });

  it("4008, 1009 and 1001 reconnect", async () => {
    const c = make({ random: () => 0 });
    c.watchJob("a");
    await flush();
    for (const [code, reason] of [
      [4008, "too_slow"],
      [1009, "frame_too_large"],
      [1001, "going_away"],
    ] as const) {
      await accept();
      FakeWebSocket.last().serverClose(code);
      expect(c.getStatus()).toMatchObject({ state: "reconnecting", reason, closeCode: code });
      await timers.advance(1);
    }
    expect(FakeWebSocket.instances).toHaveLength(4);
  });

  it("pings an idle connection and drops it when the ping is not answered", async () => {
    const c = make({ heartbeatMs: 25_000, heartbeatTimeoutMs: 10_000 });
    c.watchJob("a");
    await flush();
    const ws = await accept();
    await timers.advance(25_000);
    expect(ws.frames("ping")).toHaveLength(1);
    ws.replyAll();
    await timers.advance(25_000);
    expect(ws.frames("ping")).toHaveLength(2);
    await timers.advance(10_000);
    expect(ws.readyState).toBe(3);
    expect(c.getStatus().state).toBe("reconnecting");
  });
});

describe("tokens", () => {
  const alice1 = jwt({ sub: "alice", exp: 2000000000 });
  const alice2 = jwt({ sub: "alice", exp: 2000003600 });
  const bob = jwt({ sub: "bob", exp: 2000000000 });

  it("sends the token in the first frame, not the URL", async () => {
    const c = make({ token: alice1 });
    c.watchJob("a");
    await flush();
    const ws = await accept();
    expect(ws.url).not.toContain("token");
    expect(ws.sent[0]).toMatchObject({ op: "auth", token: alice1 });
    expect(ws.sent[1]).toMatchObject({ op: "subscribe", channel: "job:a" });
  });

  it("a user change closes the old connection and opens the new one only after it has closed", async () => {
    FakeWebSocket.autoFinishClose = false;
    const c = make({ token: alice1 });
    c.watchUser("alice");
    await flush();
    const old = await accept();
    old.receive({ type: "update", channel: "user:alice", job: snapshot("a", 3, { owner: "alice" }) });
    c.setToken(bob);
    await flush();
    expect(old.readyState).toBe(2); // closing
    expect(c.getJob("a")).toBeUndefined(); // bob does not see alice's jobs
    await timers.advance(1000);
    expect(FakeWebSocket.instances).toHaveLength(1); // never two at once
    old.finishClose();
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(2);
    const ws = await accept();
    expect(ws.sent[0]).toMatchObject({ op: "auth", token: bob });
    expect(FakeWebSocket.live()).toEqual([ws]);
  });

  it("a socket that never reports its close does not block the next forever", async () => {
    FakeWebSocket.autoFinishClose = false;
    const c = make({ token: alice1, closeTimeoutMs: 3000 });
    c.watchJob("a");
    await flush();
    await accept();
    c.setToken(bob);
    await timers.advance(2999);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await timers.advance(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("a refreshed token of the same user is sent as an auth frame on the open connection", async () => {
    const c = make({ token: alice1 });
    c.watchJob("a");
    await flush();
    const ws = await accept();
    c.setToken(alice2);
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(ws.frames("auth").map((f) => f.token)).toEqual([alice1, alice2]);
    ws.replyAll();
    expect(c.getStatus().state).toBe("open");
  });

  it("4001 stops reconnecting until a new token comes", async () => {
    const c = make({ token: alice1 });
    c.watchJob("a");
    await flush();
    FakeWebSocket.last().open();
    FakeWebSocket.last().serverClose(4001, "token expired");
    expect(c.getStatus()).toMatchObject({ state: "closed", reason: "unauthorized" });
    await timers.advance(10 * 60_000);
    expect(FakeWebSocket.instances).toHaveLength(1); // no hammering with the same token
    online.dispatchEvent(new Event("online"));
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(1);
    c.setToken(alice2);
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(2);
    await accept();
    expect(c.getStatus().state).toBe("open");
  });

  it("an unauthorized reply (no token while auth is on) waits for a token", async () => {
    const c = make();
    c.watchJob("a");
    await flush();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.receive({ type: "reply", id: ws.sent[0]!.id, error: { code: "unauthorized", message: "not authenticated" } });
    await flush();
    expect(c.getStatus()).toMatchObject({ state: "closed", reason: "unauthorized" });
    expect(ws.readyState).toBe(3);
    c.setToken(alice1);
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("a refused subscription is reported for its channel and the connection stays", async () => {
    const c = make({ token: alice1 });
    const errors: string[] = [];
    c.onChannelError((e) => errors.push(`${e.channel}:${e.error.code}`));
    c.watchUser("bob");
    c.watchJob("mine");
    await flush();
    const ws = FakeWebSocket.last();
    ws.open();
    const [auth, sub1] = ws.sent;
    ws.receive({ type: "reply", id: auth!.id });
    ws.receive({ type: "reply", id: sub1!.id, error: { code: "forbidden", message: "not yours" } });
    expect(errors).toEqual(["user:bob:forbidden"]);
    expect(c.channelError("user:bob")?.code).toBe("forbidden");
    expect(c.getStatus().state).toBe("open");
  });

  it("a subscription the server ends after a token refresh is reported for its channel", async () => {
    const c = make({ token: alice1 });
    const errors: string[] = [];
    c.onChannelError((e) => errors.push(`${e.channel}:${e.error.code}`));
    c.watchUser("bob");
    c.watchJob("mine");
    await flush();
    const ws = FakeWebSocket.last();
    ws.open();
    for (const f of ws.sent) ws.receive({ type: "reply", id: f.id });
    expect(errors).toEqual([]);
    ws.receive({ type: "error", channel: "user:bob", error: { code: "forbidden", message: "no longer allowed" } });
    expect(errors).toEqual(["user:bob:forbidden"]);
    expect(c.channelError("user:bob")?.code).toBe("forbidden");
    expect(c.channelError("job:mine")).toBeUndefined();
    expect(c.getStatus().state).toBe("open");
  });
});

describe("SSE fallback", () => {
  it("falls back to SSE after WebSocket fails to connect twice, with every channel and the token", async () => {
    const token = jwt({ sub: "alice" });
    const c = make({ token, random: () => 0 });
    c.watchJob("a");
    c.watchProject("p 1");
    await flush();
    FakeWebSocket.last().fail();
    await timers.advance(0);
    FakeWebSocket.last().fail();
    await timers.advance(0);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeEventSource.instances).toHaveLength(1);
    const es = FakeEventSource.last();
    const u = new URL(es.url);
    expect(u.pathname).toBe("/api/v1/events");
    expect(es.channels()).toEqual(["job:a", "project:p 1"]);
    expect(u.searchParams.get("token")).toBe(token);
    expect(u.searchParams.get("client_id")).toBe("page-1");
    es.open();
    expect(c.getStatus()).toMatchObject({ state: "open", transport: "sse" });
    es.emit("update", { channel: "job:a", job: snapshot("a", 2) });
    es.emit("update", { channel: "job:a", job: snapshot("a", 1) });
    expect(c.getJob("a")!.seq).toBe(2);
  });

  it("reopens the stream once for a burst of channel changes, closing the old first", async () => {
    const c = make({ WebSocket: null });
    c.watchJob("a");
    await flush();
    const es = FakeEventSource.last();
    es.open();
    c.watchJob("b");
    c.watchJob("c");
    await timers.advance(30);
    expect(FakeEventSource.instances).toHaveLength(2);
    expect(es.readyState).toBe(2);
    expect(FakeEventSource.last().channels()).toEqual(["job:a", "job:b", "job:c"]);
    expect(c.getStatus().state).toBe("open");
  });

  it("a dropped SSE stream reconnects with backoff and tries WebSocket again", async () => {
    const c = make({ random: () => 0 });
    c.watchJob("a");
    await flush();
    FakeWebSocket.last().fail();
    await timers.advance(0);
    FakeWebSocket.last().fail();
    await timers.advance(0);
    FakeEventSource.last().open();
    FakeEventSource.last().fail();
    await timers.advance(0);
    expect(FakeWebSocket.instances).toHaveLength(3);
    await accept();
    expect(c.getStatus()).toMatchObject({ state: "open", transport: "websocket" });
  });

  it("uses SSE alone where there is no WebSocket", async () => {
    const c = make({ WebSocket: null });
    c.watchJob("a");
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(0);
    expect(FakeEventSource.instances).toHaveLength(1);
  });
});
