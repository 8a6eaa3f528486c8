// The dashboard's job list against the real progressd server of
// global-setup.ts: pages of 100 with "load older jobs", compact windowed
// rows from 100 jobs on, the state filter and the tag filter asked of the
// server, the search in the page, and bulk delete after a confirmation.
// Plus the pure parts (which rows are visible, what a search matches,
// bulk actions a few at a time).
import { act, cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { ProgressClient } from "@progressd/client";
import type { JobSnapshot } from "@progressd/client";
import { ProgressProvider, useProjects, type UseProjectsResult } from "@progressd/react";
import { JobList, PAGE_SIZE } from "../src/dashboard/JobList";
import { filterFromQuery, filterToQuery, isJobId, matches, NO_FILTER } from "../src/dashboard/jobFilter";
import { actionable, runBulk, watchCommand } from "../src/dashboard/jobActions";
import { visibleRows } from "../src/dashboard/windowing";
import { authServer, mintToken, post, server, uniqueProject, waitFor } from "./server-helpers";

const clients: ProgressClient[] = [];
afterEach(async () => {
  cleanup();
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});

function newClient(): ProgressClient {
  // HTTP only: what the list shows comes from its pages, not from a live channel.
  const c = new ProgressClient({ server: server(), crossTab: false, onlineTarget: null, WebSocket: null, EventSource: null });
  clients.push(c);
  return c;
}

describe("visibleRows", () => {
  it("renders the rows in the viewport and the overscan around them", () => {
    // A list 200 px below the top of an 800 px viewport, 50 px rows.
    expect(visibleRows(200, 800, 1000, 50, 2)).toEqual({ start: 0, end: 14 });
    // Scrolled 10,000 px into the list: rows 200..216 are visible.
    expect(visibleRows(-10_000, 800, 1000, 50, 2)).toEqual({ start: 198, end: 218 });
    // Past the end, and empty lists.
    expect(visibleRows(-60_000, 800, 1000, 50, 2)).toEqual({ start: 1000, end: 1000 });
    expect(visibleRows(0, 800, 0, 50, 2)).toEqual({ start: 0, end: 0 });
    // Below the viewport: nothing but the overscan.
    expect(visibleRows(900, 800, 1000, 50, 2)).toEqual({ start: 0, end: 2 });
  });
});

const job = (over: Partial<JobSnapshot>): JobSnapshot => ({
  job_id: "01938f6e-5a5b-7c3d-9e0f-123456789abc",
  project: "p",
  owner: "alice",
  state: "running",
  progress: 0,
  seq: 1,
  created_at: "2026-12-03T08:00:00.000Z",
  ...over,
});

describe("matches", () => {
  it("filters by state and tag, and searches id prefixes and suffixes, and words of the name", () => {
    const j = job({ name: "Nightly Import", pipeline: "import", tags: ["customer-42"] });
    expect(matches(j, NO_FILTER)).toBe(true);
    expect(matches(j, { ...NO_FILTER, states: ["failed", "running"] })).toBe(true);
    expect(matches(j, { ...NO_FILTER, states: ["failed"] })).toBe(false);
    expect(matches(j, { ...NO_FILTER, tag: "customer-42" })).toBe(true);
    expect(matches(j, { ...NO_FILTER, tag: "customer-4" })).toBe(false);
    expect(matches(j, { ...NO_FILTER, owner: j.owner })).toBe(true);
    expect(matches(j, { ...NO_FILTER, owner: j.owner + "x" })).toBe(false);
    for (const q of ["01938f6e", "01938F6E-5A", "56789abc", "nightly", "import night", "ALICE"]) {
      expect(matches(j, { ...NO_FILTER, search: q }), q).toBe(true);
    }
    for (const q of ["9e0f", "weekly", "nightly export"]) expect(matches(j, { ...NO_FILTER, search: q }), q).toBe(false);
    expect(isJobId(j.job_id)).toBe(true);
    expect(isJobId("01938f6e")).toBe(false);
  });
});

describe("filters in the address", () => {
  it("round-trip, and drop what the server would refuse", () => {
    const f = { states: ["failed", "canceled"] as const, tag: "invoice:2026-11", owner: "alice@example.org", search: "nightly import" };
    const q = filterToQuery({ ...f, states: [...f.states] });
    expect(q).toBe("state=failed%2Ccanceled&tag=invoice%3A2026-11&owner=alice%40example.org&q=nightly+import");
    expect(filterFromQuery(q)).toEqual({ ...f, states: ["failed", "canceled"] });
    expect(filterToQuery(NO_FILTER)).toBe("");
    expect(filterFromQuery("state=failed,bogus,failed&tag=has space&owner=has space")).toEqual({ states: ["failed"], tag: "", owner: "", search: "" });
    expect(filterFromQuery("owner=" + "o".repeat(129)).owner).toBe("");
    expect(filterFromQuery("owner=%E2%80%8Bzero-width").owner).toBe("");
  });
});

describe("bulk actions", () => {
  it("run a few at a time and report each failure", async () => {
    let running = 0;
    let most = 0;
    const r = await runBulk(
      Array.from({ length: 20 }, (_, i) => String(i)),
      async (id) => {
        running++;
        most = Math.max(most, running);
        await new Promise((res) => setTimeout(res, 2));
        running--;
        if (id === "7") throw new Error("conflict");
      },
      3,
    );
    expect(most).toBe(3);
    expect(r.done).toBe(19);
    expect(r.failed).toEqual([{ id: "7", message: "conflict" }]);
  });

  it("cancel takes unfinished jobs and delete finished ones", () => {
    const js = [job({ job_id: "a", state: "running" }), job({ job_id: "b", state: "failed" }), job({ job_id: "c", state: "queued" })];
    expect(actionable(js, "cancel")).toEqual(["a", "c"]);
    expect(actionable(js, "delete")).toEqual(["b"]);
  });

  it("the watch command names the server unless it is the default one", () => {
    expect(watchCommand("J", "http://127.0.0.1:8000", false)).toBe("progressd watch J");
    expect(watchCommand("J", "https://progress.example", true)).toBe('progressd watch J --server https://progress.example --token "$PROGRESSD_TOKEN"');
  });
});

describe("job list against the server", () => {
  it("pages, filters, searches and deletes in bulk", async () => {
    const project = uniqueProject("list");
    const made: JobSnapshot[] = [];
    // 130 jobs: every tenth fails; the others have tag "even" or "odd".
    for (let i = 0; i < 130; i++) {
      const j = await post<JobSnapshot>(server(), "/api/v1/jobs", {
        project,
        name: `item ${i}`,
        tags: [i % 2 ? "odd" : "even"],
        stages: [{ name: "work" }],
      });
      if (i % 10 === 0) await post(server(), `/api/v1/jobs/${j.job_id}/progress`, { state: "failed", error: "boom" });
      made.push(j);
    }
    const c = newClient();
    const { container } = render(
      <ProgressProvider client={c}>
        <JobList project={project} onAuthError={() => {}} />
      </ProgressProvider>,
    );
    const shown = () => Number(container.querySelector("[data-shown]")?.getAttribute("data-shown"));
    // The first page: compact rows, of which only those near the viewport are in the DOM.
    await waitFor(() => shown() === PAGE_SIZE, "the first page");
    const rows = container.querySelector("ol.rows")!;
    expect(rows.getAttribute("data-count")).toBe(String(PAGE_SIZE));
    expect(rows.querySelectorAll("li.row").length).toBeLessThan(40);
    expect(rows.querySelector("li.row")!.textContent).toContain("item 129");

    await act(async () => fireEvent.click(screen.getByRole("button", { name: "Load older jobs" })));
    await waitFor(() => shown() === 130, "the second page");
    expect(screen.queryByRole("button", { name: "Load older jobs" })).toBeNull();

    // The state filter asks the server, and turns the list into cards (13 < 100).
    await act(async () => fireEvent.click(screen.getByRole("button", { name: "failed" })));
    await waitFor(() => shown() === 13, "the 13 failed jobs");
    expect(container.querySelectorAll("article.job").length).toBe(13);
    // The failed card says its error once: in the bar's words (and their spoken twin), in no other line.
    const card = container.querySelector("article.job")!;
    expect(card.querySelector(".pd-bar__text")!.textContent).toContain("boom");
    const visible = [...card.querySelectorAll("p, span, code, a, time")].filter((e) => !e.closest(".pd-bar"));
    expect(visible.filter((e) => e.textContent!.includes("boom"))).toEqual([]);

    // Tag and search narrow it further: failed jobs are 0, 10, …, 120; "even" keeps them all; "item 12" finds 120.
    const tag = screen.getByLabelText("Tag");
    fireEvent.change(tag, { target: { value: "even" } });
    await act(async () => fireEvent.keyDown(tag, { key: "Enter" }));
    await waitFor(() => shown() === 13, "the failed jobs tagged even");
    fireEvent.change(screen.getByLabelText("Search by id or name"), { target: { value: "item 12" } });
    await waitFor(() => shown() === 1, "item 120 alone");
    fireEvent.change(screen.getByLabelText("Search by id or name"), { target: { value: made[120]!.job_id.slice(-8) } });
    await waitFor(() => shown() === 1, "item 120 by the end of its id");
    fireEvent.change(screen.getByLabelText("Search by id or name"), { target: { value: "" } });
    await waitFor(() => shown() === 13, "all failed again");

    // Select all 13, delete, confirm: gone from the list and from the server.
    fireEvent.click(screen.getByLabelText("Select all 13"));
    const bulk = screen.getByRole("region", { name: "Selected jobs" });
    expect(within(bulk).getByRole("button", { name: "Cancel 0" })).toHaveProperty("disabled", true);
    fireEvent.click(within(bulk).getByRole("button", { name: "Delete 13" }));
    const dialog = await screen.findByRole("dialog");
    expect(dialog.textContent).toContain("Delete 13 finished jobs?");
    await act(async () => fireEvent.click(within(dialog).getByRole("button", { name: "Delete 13" })));
    await waitFor(() => shown() === 0, "the deleted jobs to leave the list");
    const left = await c.api.listJobs({ project, state: "failed" });
    expect(left.jobs).toEqual([]);
    const kept = await c.api.listJobs({ project, limit: 500 });
    expect(kept.jobs.length).toBe(117);
  });
});

describe("useProjects against the server", () => {
  it("pages with loadMore; a refresh brings a project of a later page to the front and loses none", async () => {
    // A user of its own on the auth server: these five projects are all it has.
    const user = "pages-" + Math.random().toString(36).slice(2, 8);
    const token = mintToken(user);
    const names = [0, 1, 2, 3, 4].map((i) => `${user}-p${i}`);
    for (const p of names) {
      await post(authServer(), "/api/v1/jobs", { project: p }, token);
      await new Promise((r) => setTimeout(r, 5)); // distinct activity times
    }
    const c = new ProgressClient({ server: authServer(), token, crossTab: false, onlineTarget: null, WebSocket: null, EventSource: null });
    clients.push(c);
    let got: UseProjectsResult | undefined;
    function Probe() {
      got = useProjects({ limit: 2, refreshMs: 50, pollMs: 50 });
      return null;
    }
    render(
      <ProgressProvider client={c} token={token}>
        <Probe />
      </ProgressProvider>,
    );
    const listed = () => got?.data?.map((p) => p.project) ?? [];
    await waitFor(() => listed().length === 2, "the first page");
    expect(listed()).toEqual([names[4], names[3]]);
    expect(got!.hasMore).toBe(true);
    await act(async () => got!.loadMore());
    await waitFor(() => listed().length === 4, "two pages");
    await act(async () => got!.loadMore());
    await waitFor(() => listed().length === 5 && !got!.hasMore, "all five, and no more pages");
    expect(listed()).toEqual([...names].reverse());

    // New activity in the oldest: a poll's first page brings it to the front with its new count.
    await post(authServer(), "/api/v1/jobs", { project: names[0] }, token);
    await waitFor(() => listed()[0] === names[0], "the oldest project first after its activity");
    expect([...listed()].sort()).toEqual([...names].sort());
    expect(got!.data!.find((p) => p.project === names[0])!.jobs.queued).toBe(2);
  });
});
