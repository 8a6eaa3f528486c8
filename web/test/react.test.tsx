import { act, cleanup, render, screen } from "@testing-library/react";
import { Profiler, StrictMode } from "react";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProgressClient } from "@progressd/client";
import { FrameBatcher } from "@progressd/client";
import {
  InlineProgressBar,
  ProgressProvider,
  useConnectionState,
  useJob,
  useJobChildren,
  useJobLogs,
  useProjectJobs,
  useTaggedJobs,
} from "@progressd/react";
import { FakeTimers, FakeWebSocket, flush, snapshot } from "./fakes";

let client: ProgressClient;
let frames: (() => void)[];
let batcher: FrameBatcher;

/** Runs the pending animation frame. */
async function frame() {
  await act(async () => {
    const fs = frames.splice(0);
    for (const f of fs) f();
    await flush();
  });
}

beforeEach(() => {
  FakeWebSocket.reset();
  frames = [];
  batcher = new FrameBatcher((cb) => frames.push(cb));
  client = new ProgressClient({
    server: "http://progressd.test",
    crossTab: false,
    WebSocket: FakeWebSocket,
    EventSource: null,
    fetch: null,
    timers: new FakeTimers(),
    onlineTarget: null,
    heartbeatMs: 0,
  });
});
afterEach(async () => {
  cleanup();
  await client.dispose();
});

function Wrap({ children }: { children: React.ReactNode }) {
  return (
    <ProgressProvider client={client} batcher={batcher}>
      {children}
    </ProgressProvider>
  );
}

async function openSocket() {
  await act(async () => {
    await flush();
    const ws = FakeWebSocket.last();
    ws.open();
    ws.replyAll();
    await flush();
  });
  return FakeWebSocket.last();
}

describe("rAF batching", () => {
  it("1000 updates of a job between two frames re-render its bars once, with the newest snapshot", async () => {
    let renders = 0;
    render(
      <Wrap>
        <Profiler id="bars" onRender={() => renders++}>
          {Array.from({ length: 10 }, (_, i) => (
            <InlineProgressBar key={i} jobId="j1" />
          ))}
        </Profiler>
      </Wrap>,
    );
    const ws = await openSocket();
    expect(ws.frames("subscribe")).toHaveLength(1); // ten bars, one subscription
    renders = 0;
    act(() => {
      for (let seq = 1; seq <= 1000; seq++) ws.receive({ type: "update", channel: "job:j1", job: snapshot("j1", seq, { progress: seq / 1000 }) });
    });
    expect(renders).toBe(0); // nothing until the frame
    await frame();
    expect(renders).toBe(1);
    const bars = screen.getAllByRole("progressbar");
    expect(bars).toHaveLength(10);
    for (const b of bars) expect(b.getAttribute("aria-valuenow")).toBe("100");
  });

  it("only the bars of the job that changed re-render", async () => {
    const seen: string[] = [];
    function Probe({ id }: { id: string }) {
      const j = useJob(id);
      seen.push(id + ":" + (j?.seq ?? 0));
      return null;
    }
    render(
      <Wrap>
        <Probe id="a" />
        <Probe id="b" />
      </Wrap>,
    );
    const ws = await openSocket();
    seen.length = 0;
    act(() => ws.receive({ type: "update", channel: "job:a", job: snapshot("a", 2) }));
    await frame();
    expect(seen).toEqual(["a:2"]);
  });
});

describe("<InlineProgressBar>", () => {
  async function show(job: ReturnType<typeof snapshot>) {
    render(
      <Wrap>
        <InlineProgressBar jobId={job.job_id} label="Transcode" />
      </Wrap>,
    );
    const ws = await openSocket();
    act(() => ws.receive({ type: "update", channel: "job:" + job.job_id, job }));
    await frame();
    return screen.getByRole("progressbar", { name: "Transcode" });
  }

  it("is an accessible progressbar with stage, percent and ETA", async () => {
    const bar = await show(snapshot("j", 3, { progress: 0.426, stage: "encode", eta_seconds: 12.4 }));
    expect(bar.getAttribute("aria-valuemin")).toBe("0");
    expect(bar.getAttribute("aria-valuemax")).toBe("100");
    expect(bar.getAttribute("aria-valuenow")).toBe("42");
    expect(bar.getAttribute("aria-valuetext")).toBe("42 percent, stage encode, about 12 seconds left");
    expect(screen.getByText("encode · 42% · 12 s left")).toBeTruthy();
  });

  it("shows succeeded", async () => {
    const bar = await show(snapshot("j", 9, { state: "succeeded", progress: 1 }));
    expect(bar.getAttribute("aria-valuenow")).toBe("100");
    expect(bar.getAttribute("aria-valuetext")).toBe("Succeeded, 100 percent");
    expect(bar.closest("[data-state]")!.getAttribute("data-state")).toBe("succeeded");
    expect(screen.getByText("succeeded")).toBeTruthy();
  });

  it("shows failed with its error", async () => {
    const bar = await show(snapshot("j", 9, { state: "failed", progress: 0.3, error: "encode: exit status 1: out of disk" }));
    expect(bar.getAttribute("aria-valuetext")).toBe("Failed at 30 percent: encode: exit status 1: out of disk");
    expect(screen.getByText("failed at 30%: encode: exit status 1: out of disk")).toBeTruthy();
  });

  it("shows canceled", async () => {
    await show(snapshot("j", 9, { state: "canceled", progress: 0.55 }));
    expect(screen.getByText("canceled at 55%")).toBeTruthy();
  });

  it("is indeterminate until the first snapshot, and while queued", async () => {
    render(
      <Wrap>
        <InlineProgressBar jobId="q" />
      </Wrap>,
    );
    const bar = screen.getByRole("progressbar", { name: "Job q" });
    expect(bar.hasAttribute("aria-valuenow")).toBe(false);
    expect(bar.getAttribute("aria-valuetext")).toBe("Waiting for progress");
    const ws = await openSocket();
    act(() => ws.receive({ type: "update", channel: "job:q", job: snapshot("q", 1, { state: "queued", progress: 0 }) }));
    await frame();
    expect(bar.hasAttribute("aria-valuenow")).toBe(false);
    expect(bar.getAttribute("aria-valuetext")).toBe("Queued, not started");
  });
});

describe("hooks", () => {
  it("useProjectJobs subscribes project:<name> and lists newest first", async () => {
    let list: readonly { job_id: string }[] = [];
    function P() {
      list = useProjectJobs("p1", { list: false });
      return null;
    }
    render(
      <Wrap>
        <P />
      </Wrap>,
    );
    const ws = await openSocket();
    expect(ws.frames("subscribe").map((f) => f.channel)).toEqual(["project:p1"]);
    act(() => {
      ws.receive({ type: "update", channel: "project:p1", job: snapshot("a", 1, { created_at: "2026-01-01T00:00:00.000Z" }) });
      ws.receive({ type: "update", channel: "project:p1", job: snapshot("b", 1, { created_at: "2026-01-02T00:00:00.000Z" }) });
    });
    await frame();
    expect(list.map((j) => j.job_id)).toEqual(["b", "a"]);
  });

  it("useJobChildren and useTaggedJobs subscribe children:<id> and tag:<t> and list what they cover", async () => {
    let kids: readonly { job_id: string }[] = [];
    let tagged: readonly { job_id: string }[] = [];
    function P() {
      kids = useJobChildren("parent", { list: false });
      tagged = useTaggedJobs("batch", { list: false });
      return null;
    }
    render(
      <Wrap>
        <P />
      </Wrap>,
    );
    const ws = await openSocket();
    expect(ws.frames("subscribe").map((f) => f.channel)).toEqual(["children:parent", "tag:batch"]);
    act(() => {
      ws.receive({ type: "update", channel: "children:parent", job: snapshot("a", 1, { parent_id: "parent", tags: ["batch"] }) });
      ws.receive({
        type: "update",
        channel: "children:parent",
        job: snapshot("b", 1, { parent_id: "parent", created_at: "2026-01-02T00:00:00.000Z" }),
      });
    });
    await frame();
    expect(kids.map((j) => j.job_id)).toEqual(["b", "a"]);
    expect(tagged.map((j) => j.job_id)).toEqual(["a"]);
  });

  it("useConnectionState follows the connection", async () => {
    const states: string[] = [];
    function S() {
      const s = useConnectionState();
      states.push(s.state);
      useJob("x");
      return null;
    }
    render(
      <Wrap>
        <S />
      </Wrap>,
    );
    const ws = await openSocket();
    act(() => ws.serverClose(1001));
    expect(states).toEqual(["closed", "connecting", "open", "reconnecting"]);
  });

  it("StrictMode's mount, unmount and mount cost one subscription", async () => {
    render(
      <StrictMode>
        <Wrap>
          <InlineProgressBar jobId="s" />
        </Wrap>
      </StrictMode>,
    );
    const ws = await openSocket();
    expect(ws.frames("subscribe")).toHaveLength(1);
    expect(client.refCount("job:s")).toBe(1);
  });
});

describe("useJobLogs", () => {
  const line = (n: number) => ({ n, t: "2026-01-01T00:00:00Z", stream: "stdout", text: "line " + n });

  it("shows the newest lines up to its limit, each once, from one subscription, and lets go on unmount", async () => {
    function Tail({ limit }: { limit: number }) {
      const { lines, truncated } = useJobLogs("j1", { limit });
      return (
        <pre data-testid={"tail" + limit} data-truncated={String(truncated)}>
          {lines.map((l) => l.text).join("|")}
        </pre>
      );
    }
    const view = render(
      <Wrap>
        <Tail limit={2} />
        <Tail limit={10} />
      </Wrap>,
    );
    const ws = await openSocket();
    expect(ws.frames("subscribe")).toEqual([expect.objectContaining({ channel: "logs:j1" })]);
    expect(ws.frames("subscribe")[0]).not.toHaveProperty("after");
    act(() => {
      ws.receive({ type: "log", channel: "logs:j1", lines: [line(1), line(2), line(3)] });
      ws.receive({ type: "log", channel: "logs:j1", lines: [line(3), line(4)] }); // 3 again: a repeat
    });
    await frame();
    expect(screen.getByTestId("tail2").textContent).toBe("line 3|line 4");
    expect(screen.getByTestId("tail10").textContent).toBe("line 1|line 2|line 3|line 4");
    expect(screen.getByTestId("tail10").dataset.truncated).toBe("false");
    act(() => ws.receive({ type: "log", channel: "logs:j1", truncated: true, lines: [line(9)] }));
    await frame();
    expect(screen.getByTestId("tail10").textContent).toBe("line 1|line 2|line 3|line 4|line 9");
    expect(screen.getByTestId("tail10").dataset.truncated).toBe("true");
    view.unmount();
    expect(client.refCount("logs:j1")).toBe(0);
  });
});
