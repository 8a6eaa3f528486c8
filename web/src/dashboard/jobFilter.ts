// What the job list shows: a project's jobs narrowed by state, tag, owner
// and a search. State, tag and owner go to the server
// (GET /api/v1/jobs?state=&tag=&owner=),
// so "load more" pages through matching jobs only; the search runs in the
// page over the jobs it holds (the API has no text search), and a full job
// id is also looked up on the server.

import type { JobSnapshot, JobState, ListQuery } from "@progressd/client";

export const STATES: readonly JobState[] = ["queued", "running", "succeeded", "failed", "canceled"];

export interface JobFilter {
  /** Any of these states; empty: every state. */
  states: readonly JobState[];
  /** Only jobs with this tag; "": any. */
  tag: string;
  /** Only jobs of this owner (an operator sees every owner's); "": any. */
  owner: string;
  /** A job id prefix, or words of its name, pipeline or owner; "": all. */
  search: string;
}

export const NO_FILTER: JobFilter = { states: [], tag: "", owner: "", search: "" };

/** A job id as the server makes them (a UUID). */
export function isJobId(s: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s.trim());
}

/**
 * Whether job belongs in the list under f. The search matches an id
 * prefix (the full id, or the 8 characters a row shows at its end), or
 * every word of it somewhere in the name, pipeline or owner.
 */
export function matches(job: JobSnapshot, f: JobFilter): boolean {
  if (f.states.length > 0 && !f.states.includes(job.state)) return false;
  if (f.tag && !(job.tags ?? []).includes(f.tag)) return false;
  if (f.owner && job.owner !== f.owner) return false;
  const q = f.search.trim().toLowerCase();
  if (!q) return true;
  const id = job.job_id.toLowerCase();
  if (id.startsWith(q) || (q.length >= 4 && id.endsWith(q))) return true;
  const text = [job.name, job.pipeline, job.owner].filter(Boolean).join(" ").toLowerCase();
  return q.split(/\s+/).every((w) => text.includes(w));
}

/** The list query the server filters by (the search is not one of them). */
export function serverQuery(project: string, f: JobFilter): ListQuery {
  return {
    project,
    // The API takes several states comma-separated.
    ...(f.states.length > 0 ? { state: f.states.join(",") as JobState } : {}),
    ...(f.tag ? { tag: f.tag } : {}),
    ...(f.owner ? { owner: f.owner } : {}),
  };
}

/** A tag as the server accepts it (SPEC "Tags"); anything else is not sent. */
export function validTag(t: string): boolean {
  return /^[A-Za-z0-9:_.-]{1,64}$/.test(t);
}

/** An owner as the server accepts it: a user id, no spaces or control characters, at most 128 bytes. */
export function validOwner(o: string): boolean {
  return o.length > 0 && new TextEncoder().encode(o).length <= 128 && !/[\s\p{C}]/u.test(o);
}

/** The filter as the query of a list's address: "state=failed,canceled&tag=t&owner=u&q=word" ("" for none). */
export function filterToQuery(f: JobFilter): string {
  const p = new URLSearchParams();
  if (f.states.length > 0) p.set("state", f.states.join(","));
  if (f.tag) p.set("tag", f.tag);
  if (f.owner) p.set("owner", f.owner);
  if (f.search) p.set("q", f.search);
  return p.toString();
}

/** The filter a list's address names; unknown states, bad tags and bad owners are left out. */
export function filterFromQuery(query: string): JobFilter {
  const p = new URLSearchParams(query);
  const states = (p.get("state") ?? "").split(",").filter((s): s is JobState => (STATES as readonly string[]).includes(s));
  const tag = p.get("tag") ?? "";
  const owner = p.get("owner") ?? "";
  return { states: [...new Set(states)], tag: validTag(tag) ? tag : "", owner: validOwner(owner) ? owner : "", search: p.get("q") ?? "" };
}
