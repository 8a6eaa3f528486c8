import { memo, useCallback, useDeferredValue, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { ApiError, decodeToken, type JobList as JobPage, type JobSnapshot, type JobState, type ListQuery, type Listener, type ProgressClient } from "@progressd/client";
import { InlineProgressBar, useProgressClient, useProjectJobs } from "@progressd/react";
import { Confirm } from "./Confirm";
import { actionable, anyDeleted, cancelJob, deleteJob, isDeleted, runBulk, useDeletedVersion, type BulkResult } from "./jobActions";
import { Flags, JobCard, JobTime, SelectBox, jobTitle, shortId, type Selectable } from "./JobCard";
import { projectFromHash } from "./settings";
import { STATES, filterFromQuery, filterToQuery, isJobId, matches, serverQuery, validOwner, validTag, type JobFilter } from "./jobFilter";
import { useWindowedRows } from "./windowing";

/** From this many jobs on, the list is compact rows, and only those near the viewport are rendered. */
export const COMPACT_FROM = 100;
/** The height of a compact row in px (dashboard.css .row). */
export const ROW_HEIGHT = 48;
/** Jobs fetched per "load more". */
export const PAGE_SIZE = 100;

export type StateCounts = Partial<Record<JobState, number>>;

interface Paging {
  /** The next page's cursor; null on the last page; undefined before the first answer. */
  cursor: string | null | undefined;
  loading: boolean;
  error: string | null;
}

/** The query of a page of the list: the filter's state and tag go to the server, the search does not. */
function pageQuery(project: string, filter: Pick<JobFilter, "states" | "tag" | "owner">, cursor?: string): ListQuery {
  return { ...serverQuery(project, { ...filter, search: "" }), limit: PAGE_SIZE, cursor };
}

let early: { path: string; token: string | null; page: Promise<JobPage> } | null = null;

/**
 * Requests the first page of the list the address shows (#/p/<project>?…)
 * as the script starts, before React's first render, so it is on its way
 * while the page renders and connects: on a first load, the rows' data
 * then arrives about when the list is ready to show it.
 */
export function prefetchFirstPage(client: ProgressClient): void {
  const project = /^#\/p\//.test(location.hash) ? projectFromHash() : null;
  if (!project) return;
  const q = pageQuery(project, filterFromQuery(location.hash.split("?")[1] ?? ""));
  const page = client.api.listJobs(q);
  early = { path: JSON.stringify(q), token: client.getToken(), page };
  // Into the store as soon as it comes: if that is before the first render,
  // the list's first render has its rows.
  page.then(
    (res) => client.store.acceptAll(res.jobs),
    () => undefined, // the list shows the error when it takes the page
  );
}

/** The prefetched first page if it is the one asked for (same query, same token); once. */
function takePrefetched(q: ListQuery, token: string | null): Promise<JobPage> | null {
  const e = early;
  early = null;
  return e && e.path === JSON.stringify(q) && e.token === token ? e.page : null;
}

/** The client's token, live. */
function useClientToken(): string | null {
  const client = useProgressClient();
  const sub = useCallback((l: Listener) => client.onStatus(l), [client]);
  return useSyncExternalStore(sub, () => client.getToken());
}

const tagsOf = (j: JobSnapshot): readonly string[] => j.tags ?? [];
const ownerOf = (j: JobSnapshot): readonly string[] => (j.owner ? [j.owner] : []);

/**
 * Pages of the project's jobs matching the filter's state and tag, newest
 * first, fetched into the client's store (where live updates keep them
 * current). Starts over when the filter or the token changes.
 */
function usePagedJobs(project: string, filter: JobFilter, onAuthError: () => void): Paging & { loadMore: () => void } {
  const client = useProgressClient();
  const token = useClientToken();
  const states = filter.states.join(",");
  const tag = filter.tag;
  const owner = filter.owner;
  const [paging, setPaging] = useState<Paging>({ cursor: undefined, loading: true, error: null });
  const generation = useRef(0);

  const fetchPage = useCallback(
    (cursor: string | undefined) => {
      const gen = generation.current;
      setPaging((p) => ({ ...p, loading: true, error: null }));
      const q = pageQuery(project, { states: states ? (states.split(",") as JobState[]) : [], tag, owner }, cursor);
      (takePrefetched(q, client.getToken()) ?? client.api.listJobs(q)).then(
        (res) => {
          if (gen !== generation.current) return;
          client.store.acceptAll(res.jobs);
          setPaging({ cursor: res.next_cursor ?? null, loading: false, error: null });
        },
        (e: unknown) => {
          if (gen !== generation.current) return;
          if (e instanceof ApiError && e.status === 401) onAuthError();
          setPaging((p) => ({ ...p, loading: false, error: e instanceof Error ? e.message : String(e) }));
        },
      );
    },
    [client, project, states, tag, owner, onAuthError],
  );

  useEffect(() => {
    generation.current++;
    setPaging({ cursor: undefined, loading: true, error: null });
    fetchPage(undefined);
  }, [fetchPage, token]);

  const loadMore = useCallback(() => {
    if (paging.cursor && !paging.loading) fetchPage(paging.cursor);
  }, [fetchPage, paging.cursor, paging.loading]);
  return { ...paging, loadMore };
}

/**
 * A project's jobs: filter by state and tag, search by id or name, load
 * older pages, select several to cancel or delete. Live: every job shown
 * follows its updates, and new ones appear at the top.
 */
export const JobList = memo(function JobList({
  project,
  counts,
  onAuthError,
}: {
  project: string;
  /** The project's jobs by state (GET /api/v1/projects), when known. */
  counts?: StateCounts;
  onAuthError: () => void;
}) {
  const client = useProgressClient();
  // The filters live in the address too, so a filtered list can be shared and reloaded.
  const [filter, setFilterState] = useState<JobFilter>(() => filterFromQuery(location.hash.split("?")[1] ?? ""));
  const setFilter = useCallback((f: JobFilter) => {
    setFilterState(f);
    const q = filterToQuery(f);
    history.replaceState(history.state, "", location.pathname + location.search + location.hash.split("?")[0] + (q ? "?" + q : ""));
  }, []);
  const search = useDeferredValue(filter.search);
  const paging = usePagedJobs(project, filter, onAuthError);
  // An operator (an admin token, or single-user mode) sees every owner's jobs.
  const token = useClientToken();
  const operator = !token || decodeToken(token)?.admin === true;
  const all = useProjectJobs(project, { list: false });
  const deletedVersion = useDeletedVersion();
  const shown = useMemo(() => {
    const f = { ...filter, search };
    if (f.states.length === 0 && !f.tag && !f.owner && !f.search.trim() && !anyDeleted()) return all;
    return all.filter((j) => !isDeleted(j.job_id) && matches(j, f));
    // deletedVersion: a deleted job leaves the list.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [all, filter.states, filter.tag, filter.owner, search, deletedVersion]);

  // A full job id typed in the search is looked up, loaded or not.
  useEffect(() => {
    const id = search.trim();
    if (!isJobId(id) || client.store.get(id)) return;
    const ac = new AbortController();
    client.api.getJob(id, ac.signal).then((j) => client.store.accept(j), () => undefined);
    return () => ac.abort();
  }, [client, search]);

  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const onSelect = useCallback((id: string, on: boolean) => {
    setSelected((s) => {
      const n = new Set(s);
      if (on) n.add(id);
      else n.delete(id);
      return n;
    });
  }, []);
  const selectedJobs = useMemo(() => shown.filter((j) => selected.has(j.job_id)), [shown, selected]);
  const allSelected = shown.length > 0 && selectedJobs.length === shown.length;

  const total = counts ? STATES.reduce((n, s) => n + (filter.states.length === 0 || filter.states.includes(s) ? (counts[s] ?? 0) : 0), 0) : undefined;

  return (
    <div className="joblist">
      <Filters filter={filter} setFilter={setFilter} counts={counts} jobs={all} owners={operator} />
      <div className="joblist__bar">
        <label className="select-all small">
          <input
            type="checkbox"
            checked={allSelected}
            disabled={shown.length === 0}
            onChange={(e) => setSelected(e.target.checked ? new Set(shown.map((j) => j.job_id)) : new Set())}
          />
          <span>{allSelected ? "Unselect all" : `Select all ${shown.length}`}</span>
        </label>
        <p className="small muted" role="status" data-shown={shown.length}>
          {shown.length === 0 && paging.loading
            ? "Loading…"
            : `${shown.length.toLocaleString()} shown` + (total !== undefined && !search && !filter.tag && !filter.owner ? ` of ${total.toLocaleString()}` : "")}
        </p>
      </div>
      {selectedJobs.length > 0 && <BulkBar jobs={selectedJobs} onDone={() => setSelected(new Set())} />}
      {paging.error && (
        <p className="alert" role="alert">
          Could not load jobs: {paging.error}
        </p>
      )}
      {shown.length === 0 ? (
        !paging.loading && <Empty project={project} filtered={filter.states.length > 0 || !!filter.tag || !!filter.owner || !!search} />
      ) : shown.length < COMPACT_FROM ? (
        <ol className="jobs">
          {shown.map((j) => (
            <li key={j.job_id}>
              <JobCard job={j} selected={selected.has(j.job_id)} onSelect={onSelect} />
            </li>
          ))}
        </ol>
      ) : (
        <Rows jobs={shown} selected={selected} onSelect={onSelect} />
      )}
      {paging.cursor && (
        <p className="joblist__more">
          <button type="button" className="btn" onClick={paging.loadMore} disabled={paging.loading}>
            {paging.loading ? "Loading…" : "Load older jobs"}
          </button>
        </p>
      )}
    </div>
  );
});

function Empty({ project, filtered }: { project: string; filtered: boolean }) {
  return (
    <div className="empty">
      {filtered ? (
        <p>No job in {project} matches these filters among those loaded.</p>
      ) : (
        <>
          <p>
            Nothing has run in <strong>{project}</strong> yet.
          </p>
          <p className="muted small">
            Start a pipeline above, or report from any language: <code>POST /api/v1/jobs/&#123;id&#125;/progress</code>.
          </p>
        </>
      )}
    </div>
  );
}

function Filters({
  filter,
  setFilter,
  counts,
  jobs,
  owners,
}: {
  filter: JobFilter;
  setFilter: (f: JobFilter) => void;
  counts?: StateCounts;
  /** The jobs loaded, whose tags and owners the fields suggest. */
  jobs: readonly JobSnapshot[];
  /** Offer the owner field (an operator's list has everyone's jobs; anyone else's, its own only). */
  owners: boolean;
}) {
  const toggle = (s: JobState) =>
    setFilter({ ...filter, states: filter.states.includes(s) ? filter.states.filter((x) => x !== s) : [...filter.states, s] });
  return (
    <div className="filters" role="search" aria-label="Filter jobs">
      <div className="filters__states" role="group" aria-label="State">
        <button type="button" className="toggle" aria-pressed={filter.states.length === 0} onClick={() => setFilter({ ...filter, states: [] })}>
          all
        </button>
        {STATES.map((s) => (
          <button key={s} type="button" className={"toggle toggle--" + s} aria-pressed={filter.states.includes(s)} onClick={() => toggle(s)}>
            {s}
            {counts?.[s] !== undefined && <span className="toggle__n">{counts[s]!.toLocaleString()}</span>}
          </button>
        ))}
      </div>
      <SuggestField
        label="Tag"
        value={filter.tag}
        valid={validTag}
        jobs={jobs}
        suggest={tagsOf}
        onApply={(tag) => setFilter({ ...filter, tag })}
      />
      {(owners || filter.owner) && (
        <SuggestField
          label="Owner"
          value={filter.owner}
          valid={validOwner}
          jobs={jobs}
          suggest={ownerOf}
          onApply={(owner) => setFilter({ ...filter, owner })}
        />
      )}
      <label className="filters__field filters__search">
        <span className="sr-only">Search by id or name</span>
        <input
          type="search"
          placeholder="Search id or name…"
          value={filter.search}
          onChange={(e) => setFilter({ ...filter, search: e.target.value })}
        />
      </label>
    </div>
  );
}

/**
 * A filter typed by hand (tag, owner), applied on Enter or leaving the
 * field, with the values of the jobs loaded as suggestions. A value the
 * server would refuse is marked and not applied.
 */
function SuggestField({
  label,
  value,
  valid,
  jobs,
  suggest,
  onApply,
}: {
  label: string;
  value: string;
  valid: (v: string) => boolean;
  jobs: readonly JobSnapshot[];
  suggest: (j: JobSnapshot) => readonly string[];
  onApply: (v: string) => void;
}) {
  const [text, setText] = useState(value);
  // The suggestions are gathered when the field is used, not on every live update.
  const [open, setOpen] = useState(false);
  const options = useMemo(() => (open ? [...new Set(jobs.flatMap(suggest))].sort().slice(0, 200) : []), [open, jobs, suggest]);
  const ok = text === "" || valid(text.trim());
  const apply = () => {
    const v = text.trim();
    if (v !== value && (v === "" || valid(v))) onApply(v);
  };
  const listId = "known-" + label.toLowerCase();
  return (
    <label className="filters__field">
      <span className="sr-only">{label}</span>
      <input
        type="text"
        list={listId}
        placeholder={label.toLowerCase()}
        value={text}
        aria-invalid={!ok}
        onChange={(e) => setText(e.target.value)}
        onFocus={() => setOpen(true)}
        onBlur={() => {
          setOpen(false);
          apply();
        }}
        onKeyDown={(e) => e.key === "Enter" && apply()}
        size={14}
      />
      <datalist id={listId}>
        {options.map((t) => (
          <option key={t} value={t} />
        ))}
      </datalist>
    </label>
  );
}

/** Cancel or delete the selected jobs, delete after a confirmation. */
function BulkBar({ jobs, onDone }: { jobs: readonly JobSnapshot[]; onDone: () => void }) {
  const client = useProgressClient();
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ what: string; r: BulkResult } | null>(null);
  const cancelable = actionable(jobs, "cancel");
  const deletable = actionable(jobs, "delete");
  const run = async (what: string, ids: string[], action: (id: string) => Promise<void>) => {
    setBusy(true);
    setResult(null);
    const r = await runBulk(ids, action);
    setBusy(false);
    setResult({ what, r });
    if (r.failed.length === 0) onDone();
  };
  return (
    <div className="bulk" role="region" aria-label="Selected jobs">
      <span className="small">
        <strong>{jobs.length}</strong> selected
      </span>
      <button
        type="button"
        className="btn btn--small"
        disabled={busy || cancelable.length === 0}
        onClick={() => void run("canceled", cancelable, (id) => cancelJob(client, id))}
      >
        Cancel {cancelable.length}
      </button>
      <button type="button" className="btn btn--small btn--danger" disabled={busy || deletable.length === 0} onClick={() => setAsking(true)}>
        Delete {deletable.length}
      </button>
      <button type="button" className="btn btn--small btn--ghost" onClick={onDone} disabled={busy}>
        Clear selection
      </button>
      {result && (
        <span className={"small" + (result.r.failed.length ? " bulk__error" : " muted")} role="status">
          {result.r.done} {result.what}
          {result.r.failed.length > 0 && `, ${result.r.failed.length} failed: ${result.r.failed[0]!.message}`}
        </span>
      )}
      {asking && (
        <Confirm
          title={`Delete ${deletable.length} finished job${deletable.length === 1 ? "" : "s"}?`}
          confirm={`Delete ${deletable.length}`}
          onCancel={() => setAsking(false)}
          onConfirm={() => {
            setAsking(false);
            void run("deleted", deletable, (id) => deleteJob(client, id));
          }}
        >
          <p className="small">
            Their snapshots and log lines are removed from the server. This cannot be undone.
            {jobs.length > deletable.length && ` ${jobs.length - deletable.length} selected jobs have not finished and are kept.`}
          </p>
        </Confirm>
      )}
    </div>
  );
}

/** The compact list: fixed-height rows, only those near the viewport in the DOM. */
function Rows({ jobs, selected, onSelect }: { jobs: readonly JobSnapshot[]; selected: ReadonlySet<string>; onSelect: Selectable["onSelect"] }) {
  const ref = useRef<HTMLOListElement>(null);
  const { start, end } = useWindowedRows(ref, jobs.length, ROW_HEIGHT);
  return (
    <ol ref={ref} className="rows" style={{ height: jobs.length * ROW_HEIGHT }} data-count={jobs.length}>
      {jobs.slice(start, end).map((j, i) => (
        <li
          key={j.job_id}
          className="row"
          style={{ transform: `translateY(${(start + i) * ROW_HEIGHT}px)` }}
          aria-setsize={jobs.length}
          aria-posinset={start + i + 1}
        >
          <JobRow job={j} selected={selected.has(j.job_id)} onSelect={onSelect} />
        </li>
      ))}
    </ol>
  );
}

const JobRow = memo(function JobRow({ job, selected, onSelect }: { job: JobSnapshot } & Selectable) {
  const title = jobTitle(job);
  return (
    <div className="row__inner" data-job-id={job.job_id} data-state={job.state}>
      <SelectBox job={job} selected={selected} onSelect={onSelect} />
      <span className="row__title">
        <a className="job__open" href={"#/jobs/" + encodeURIComponent(job.job_id)}>
          {title}
        </a>{" "}
        <code className="job__id">{shortId(job.job_id)}</code>
      </span>
      <span className="row__state">
        <span className={"badge badge--" + job.state}>{job.state}</span>
        <Flags job={job} />
      </span>
      <InlineProgressBar className="row__bar" jobId={job.job_id} watch={false} label={`${title} ${shortId(job.job_id)}`} />
      <span className="row__time small muted">
        <JobTime job={job} />
      </span>
    </div>
  );
});
