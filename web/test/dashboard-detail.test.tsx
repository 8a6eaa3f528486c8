// The job page's lifecycle views on snapshots as the server sends them:
// "Attempt 1 of 3 · retrying in …" with the failure that caused the retry
// (said once), the stalled warning and badge, metadata and result as
// key/values with links, and the live log panel fed by the store.
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { ProgressClient, type JobSnapshot } from "@progressd/client";
import { ProgressProvider } from "@progressd/react";
import { JobDetail } from "../src/dashboard/JobDetail";
import { snapshot } from "./fakes";

const clients: ProgressClient[] = [];
afterEach(async () => {
  cleanup();
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

/** A client with no server: what the page shows comes from its store. */
function show(job: JobSnapshot) {
  const c = new ProgressClient({ server: "http://progressd.test", crossTab: false, onlineTarget: null, WebSocket: null, EventSource: null, fetch: null });
  clients.push(c);
  c.store.accept(job);
  return { client: c, ...render(<ProgressProvider client={c}><JobDetail id={job.job_id} /></ProgressProvider>) };
}

describe("job page", () => {
  it("says which attempt runs, when the next starts and why, once", async () => {
    const retryAt = new Date(Date.now() + 12_000).toISOString();
    show({ ...snapshot("j1", 5), state: "queued", attempt: 1, max_attempts: 3, retry_at: retryAt, error: "fetch: exit status 7" } as JobSnapshot);
    const line = await screen.findByText(/Attempt 1 of 3/);
    expect(line.textContent).toMatch(/Attempt 1 of 3 · retrying in 1[0-2] s after: fetch: exit status 7/);
    expect(screen.getAllByText(/exit status 7/)).toHaveLength(1);
    expect(screen.getByText("retrying").className).toContain("badge");
  });

  it("shows no attempt line for a job that does not retry", () => {
    show({ ...snapshot("j2", 5), attempt: 1, max_attempts: 1 } as JobSnapshot);
    expect(screen.queryByText(/Attempt/)).toBeNull();
  });

  it("warns when a running job stalled, and stops once it reports", () => {
    const { client } = show({ ...snapshot("j3", 5), stalled: true, updated_at: "2026-12-03T08:00:00.000Z" } as JobSnapshot);
    expect(screen.getByText(/^Stalled: no report since 2026-12-03/)).toBeTruthy();
    expect(screen.getByText("stalled").className).toContain("badge--stalled");
    client.store.accept({ ...snapshot("j3", 6), stalled: false } as JobSnapshot);
    return new Promise<void>((done) =>
      setTimeout(() => {
        expect(screen.queryByText(/Stalled/)).toBeNull();
        done();
      }, 100),
    );
  });

  it("shows metadata and result as key/values, web addresses as links and nothing else", () => {
    show({
      ...snapshot("j4", 9),
      state: "succeeded",
      metadata: { customer: "acme", source: "javascript:alert(1)", nested: { depth: 2 } },
      result: { output: "https://example.org/out.mp4", frames: 1800, ok: true },
    } as JobSnapshot);
    const result = screen.getByLabelText("Result");
    const link = result.querySelector("a")!;
    expect(link.getAttribute("href")).toBe("https://example.org/out.mp4");
    expect(link.getAttribute("rel")).toContain("noopener");
    expect(result.textContent).toContain("1800");
    const meta = screen.getByLabelText("Metadata");
    expect(meta.querySelectorAll("a")).toHaveLength(0); // javascript: is text, never a link
    expect(meta.textContent).toContain("javascript:alert(1)");
    expect(meta.querySelector(".kv--nested")!.textContent).toContain("depth");
  });

  it("shows the log lines the store holds, live", async () => {
    const { client } = show(snapshot("j5", 3));
    expect(await screen.findByText("waiting for lines…")).toBeTruthy();
    client.logStore.accept("j5", [{ n: 1, t: "2026-12-03T08:00:00.000Z", stream: "stderr", text: "oops" }], false);
    const line = await screen.findByText("oops");
    expect(line.closest(".logline")!.className).toContain("logline--stderr");
  });
});
