import { describe, expect, it, vi } from "vitest";
import { JobStore, channelMatcher } from "@progressd/client";
import { snapshot } from "./fakes";

describe("JobStore", () => {
  it("keeps the highest seq per job and ignores older or equal ones", () => {
    const s = new JobStore();
    expect(s.accept(snapshot("a", 5, { progress: 0.5 }))).toBe(true);
    expect(s.accept(snapshot("a", 3, { progress: 0.3 }))).toBe(false);
    expect(s.accept(snapshot("a", 5, { progress: 0.9 }))).toBe(false);
    expect(s.get("a")!.progress).toBe(0.5);
    expect(s.accept(snapshot("a", 6, { progress: 0.6 }))).toBe(true);
    expect(s.get("a")!.seq).toBe(6);
  });

  it("never moves backwards, whatever the delivery order", () => {
    const s = new JobStore();
    const seqs = [4, 1, 9, 2, 9, 7, 12, 3, 11];
    const seen: number[] = [];
    s.subscribeJob("j", () => seen.push(s.get("j")!.seq));
    for (const q of seqs) s.accept(snapshot("j", q));
    expect(seen).toEqual([4, 9, 12]);
  });

  it("keeps a project's order newest first through updates, joins, moves and clears", () => {
    const s = new JobStore();
    const at = (i: number) => `2026-12-03T08:00:0${i}.000Z`;
    for (const [id, i] of [["b", 2], ["a", 1], ["c", 3]] as const) s.accept(snapshot(id, 1, { created_at: at(i) }));
    const ids = () => s.projectJobs("p1").map((j) => `${j.job_id}${j.seq}`);
    expect(ids()).toEqual(["c1", "b1", "a1"]);
    // An update keeps the order and shows the newest snapshot; the list is a new array.
    const before = s.projectJobs("p1");
    s.accept(snapshot("a", 2, { created_at: at(1) }));
    expect(s.projectJobs("p1")).not.toBe(before);
    expect(ids()).toEqual(["c1", "b1", "a2"]);
    expect(s.projectJobs("p1")).toBe(s.projectJobs("p1"));
    // A job joins in the middle; another moves to another project.
    s.accept(snapshot("d", 1, { created_at: at(2) + "x" }));
    expect(ids()).toEqual(["c1", "d1", "b1", "a2"]);
    s.accept(snapshot("b", 2, { created_at: at(2), project: "p2" }));
    expect(ids()).toEqual(["c1", "d1", "a2"]);
    expect(s.projectJobs("p2").map((j) => j.job_id)).toEqual(["b"]);
    s.clear();
    expect(s.projectJobs("p1")).toEqual([]);
    s.accept(snapshot("e", 1));
    expect(ids()).toEqual(["e1"]);
  });

  it("notifies job, project and any listeners only on a kept change", () => {
    const s = new JobStore();
    const job = vi.fn();
    const proj = vi.fn();
    const any = vi.fn();
    s.subscribeJob("a", job);
    s.subscribeProject("p1", proj);
    s.subscribeAll(any);
    s.accept(snapshot("a", 1));
    s.accept(snapshot("a", 1));
    s.accept(snapshot("b", 1));
    expect(job).toHaveBeenCalledTimes(1);
    expect(proj).toHaveBeenCalledTimes(2);
    expect(any).toHaveBeenCalledTimes(2);
  });

  it("lists a project newest first and returns the same array until it changes", () => {
    const s = new JobStore();
    s.accept(snapshot("old", 1, { created_at: "2026-01-01T00:00:00.000Z" }));
    s.accept(snapshot("new", 1, { created_at: "2026-01-02T00:00:00.000Z" }));
    s.accept(snapshot("other", 1, { project: "p2" }));
    const a = s.projectJobs("p1");
    expect(a.map((j) => j.job_id)).toEqual(["new", "old"]);
    expect(s.projectJobs("p1")).toBe(a);
    s.accept(snapshot("other", 2, { project: "p2" }));
    expect(s.projectJobs("p1")).toBe(a);
    s.accept(snapshot("old", 2));
    expect(s.projectJobs("p1")).not.toBe(a);
    expect(s.projectJobs("nope")).toEqual([]);
  });

  it("finds the jobs a channel covers", () => {
    const s = new JobStore();
    s.accept(snapshot("a", 1, { owner: "alice" }));
    s.accept(snapshot("b", 1, { owner: "bob", project: "p2" }));
    expect(s.jobsFor("job:a").map((j) => j.job_id)).toEqual(["a"]);
    expect(s.jobsFor("project:p2").map((j) => j.job_id)).toEqual(["b"]);
    expect(s.jobsFor("user:alice").map((j) => j.job_id)).toEqual(["a"]);
    expect(channelMatcher("bogus")).toBeNull();
  });

  it("finds a job's children and a tag's jobs, the same array until the store changes", () => {
    const s = new JobStore();
    s.accept(snapshot("parent", 1, { tags: ["t1"] }));
    s.accept(snapshot("c1", 1, { parent_id: "parent", created_at: "2026-01-01T00:00:01.000Z" }));
    s.accept(snapshot("c2", 1, { parent_id: "parent", tags: ["t1"], created_at: "2026-01-01T00:00:02.000Z" }));
    s.accept(snapshot("other", 1, { parent_id: "x" }));
    const kids = s.channelJobs("children:parent");
    expect(kids.map((j) => j.job_id)).toEqual(["c2", "c1"]);
    expect(s.channelJobs("children:parent")).toBe(kids);
    expect(s.channelJobs("tag:t1").map((j) => j.job_id)).toEqual(["c2", "parent"]);
    s.accept(snapshot("c3", 1, { parent_id: "parent", created_at: "2026-01-01T00:00:03.000Z" }));
    expect(s.channelJobs("children:parent").map((j) => j.job_id)).toEqual(["c3", "c2", "c1"]);
    expect(s.channelJobs("bogus")).toEqual([]);
  });

  it("clear forgets everything and tells listeners", () => {
    const s = new JobStore();
    const l = vi.fn();
    s.accept(snapshot("a", 1));
    s.subscribeJob("a", l);
    s.clear();
    expect(s.get("a")).toBeUndefined();
    expect(l).toHaveBeenCalledTimes(1);
    // After a clear, a lower seq (another user's view) is accepted again.
    expect(s.accept(snapshot("a", 1))).toBe(true);
  });
});
