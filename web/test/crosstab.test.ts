import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProgressClient } from "@progressd/client";
import { FakeBroadcastChannel, FakeLocks, FakeTimers, FakeWebSocket, flush, snapshot } from "./fakes";

let timers: FakeTimers;
let locks: FakeLocks;
const clients: ProgressClient[] = [];

function tab(token: string | null = null): ProgressClient {
  const c = new ProgressClient({
    server: "http://progressd.test",
    token,
    crossTab: true,
    locks,
    BroadcastChannel: FakeBroadcastChannel,
    WebSocket: FakeWebSocket,
    EventSource: null,
    fetch: null,
    timers,
    random: () => 0,
    onlineTarget: new EventTarget(),
    heartbeatMs: 0,
  });
  clients.push(c);
  return c;
}

async function settle() {
  await flush(50);
}

beforeEach(() => {
  timers = new FakeTimers();
  locks = new FakeLocks();
  FakeWebSocket.reset();
  FakeBroadcastChannel.all.clear();
});
afterEach(async () => {
  FakeWebSocket.autoFinishClose = true;
  for (const ws of FakeWebSocket.instances) if (ws.readyState === 2) ws.finishClose();
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

describe("cross-tab sharing", () => {
  it("two tabs share the leader's one connection", async () => {
    const a = tab();
    a.watchJob("j1");
    await settle();
    expect(a.getStatus().role).toBe("leader");
    expect(FakeWebSocket.instances).toHaveLength(1);
    const ws = FakeWebSocket.last();
    ws.open();
    ws.replyAll();

    const b = tab();
    b.watchJob("j1");
    b.watchJob("j2");
    await settle();
    expect(b.getStatus()).toMatchObject({ role: "follower", state: "open" });
    expect(FakeWebSocket.instances).toHaveLength(1);
    // The leader subscribed the follower's new channel once; j1 was already there.
    expect(ws.frames("subscribe").map((f) => f.channel)).toEqual(["job:j1", "job:j2"]);

    ws.receive({ type: "update", channel: "job:j2", job: snapshot("j2", 4) });
    await settle();
    expect(b.getJob("j2")?.seq).toBe(4);
  });

  it("a tab alone posts no update to other tabs; once one follows, it relays them", async () => {
    const a = tab();
    a.watchProject("p1");
    await settle();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.replyAll();
    await settle();
    const before = FakeBroadcastChannel.posted;
    for (let i = 1; i <= 50; i++) ws.receive({ type: "update", channel: "project:p1", job: snapshot("x" + i, 1) });
    await settle();
    expect(a.store.projectJobs("p1")).toHaveLength(50);
    expect(FakeBroadcastChannel.posted - before).toBe(0);

    const b = tab();
    b.watchProject("p1");
    await settle();
    expect(b.store.projectJobs("p1")).toHaveLength(50); // caught up from the leader's store
    ws.receive({ type: "update", channel: "project:p1", job: snapshot("x1", 2) });
    await settle();
    expect(b.getJob("x1")?.seq).toBe(2);
  });

  it("a follower is caught up on channels the leader already had", async () => {
    const a = tab();
    a.watchProject("p1");
    await settle();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.replyAll();
    ws.receive({ type: "update", channel: "project:p1", job: snapshot("x", 7) });
    const b = tab();
    b.watchProject("p1");
    await settle();
    expect(b.getJob("x")?.seq).toBe(7);
  });

  it("a follower's channels are dropped when it lets go, or when its tab dies", async () => {
    const a = tab();
    a.watchJob("a");
    await settle();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.replyAll();
    const b = tab();
    const off = b.watchJob("b");
    await settle();
    off();
    await timers.advance(300);
    await settle();
    expect(ws.frames("unsubscribe").map((f) => f.channel)).toEqual(["job:b"]);

    const c = tab();
    c.watchJob("c");
    await settle();
    expect(ws.frames("subscribe").map((f) => f.channel)).toContain("job:c");
    await c.dispose(); // its tab lock goes, as when a tab closes or crashes
    await settle();
    expect(ws.frames("unsubscribe").map((f) => f.channel)).toContain("job:c");
  });

  it("when the leader tab goes, a follower takes over after the old connection closed", async () => {
    FakeWebSocket.autoFinishClose = false;
    const a = tab();
    a.watchJob("a");
    await settle();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.replyAll();
    const b = tab();
    b.watchJob("b");
    await settle();
    const gone = a.dispose();
    await settle();
    expect(FakeWebSocket.instances).toHaveLength(1); // not before the old one has closed
    ws.finishClose();
    await gone;
    await settle();
    expect(b.getStatus().role).toBe("leader");
    expect(FakeWebSocket.instances).toHaveLength(2);
    const ws2 = FakeWebSocket.last();
    ws2.open();
    ws2.replyAll();
    expect(ws2.frames("subscribe").map((f) => f.channel)).toEqual(["job:b"]);
    await settle();
    expect(b.getStatus()).toMatchObject({ state: "open", role: "leader" });
  });

  it("tabs of different users do not share", async () => {
    const b64 = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "");
    const alice = `${b64({})}.${b64({ sub: "alice" })}.s`;
    const bob = `${b64({})}.${b64({ sub: "bob" })}.s`;
    const a = tab(alice);
    a.watchJob("a");
    const b = tab(bob);
    b.watchJob("b");
    await settle();
    expect(a.getStatus().role).toBe("leader");
    expect(b.getStatus().role).toBe("leader");
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("falls back to one connection per tab without Web Locks", async () => {
    const c = new ProgressClient({
      server: "http://progressd.test",
      crossTab: "auto",
      WebSocket: FakeWebSocket,
      EventSource: null,
      fetch: null,
      timers,
      onlineTarget: null,
      heartbeatMs: 0,
    });
    clients.push(c);
    c.watchJob("a");
    await settle();
    expect(c.getStatus().role).toBe("solo");
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});
