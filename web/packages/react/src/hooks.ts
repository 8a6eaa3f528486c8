import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { DEFAULT_LOG_LIMIT, type ConnectionStatus, type JobLogs, type JobSnapshot, type Listener, type ProgressClient, type ProjectSummary, type ProtocolError } from "@progressd/client";
import { useProgressContext } from "./context.js";

const noop = () => undefined;

/**
 * Subscribes a component to store changes, re-rendering at most once per
 * animation frame however often the store changes.
 */
function useBatchedStore<T>(subscribeStore: (l: Listener) => () => void, getSnapshot: () => T): T {
  const { batcher } = useProgressContext();
  const subscribe = useCallback(
    (onChange: Listener) => {
      const unsub = subscribeStore(() => batcher.schedule(onChange));
      return () => {
        unsub();
        batcher.cancel(onChange);
      };
    },
    [subscribeStore, batcher],
  );
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}

/**
 * The client's token, live, so that a hook's HTTP load runs again when it
 * changes. Every store read here also serves as the server snapshot: a page
 * rendered on the server (Next.js, renderToString) shows what the client
 * knows then and hydrates from there.
 */
function useClientToken(client: ProgressClient): string | null {
  const sub = useCallback((l: Listener) => client.onStatus(l), [client]);
  const get = useCallback(() => client.getToken(), [client]);
  return useSyncExternalStore(sub, get, get);
}

export interface UseJobOptions {
  /** Subscribe to job:<id> (default true). False: only read what other subscriptions bring (a project list). */
  watch?: boolean;
}

/** The newest snapshot of a job, live; undefined until the first arrives. */
export function useJob(jobId: string | null | undefined, opts: UseJobOptions = {}): JobSnapshot | undefined {
  const { client } = useProgressContext();
  const watch = opts.watch ?? true;
  useEffect(() => {
    if (!jobId || !watch) return;
    return client.watchJob(jobId);
  }, [client, jobId, watch]);
  const sub = useCallback((l: Listener) => (jobId ? client.store.subscribeJob(jobId, l) : noop), [client, jobId]);
  const get = useCallback(() => (jobId ? client.store.get(jobId) : undefined), [client, jobId]);
  return useBatchedStore(sub, get);
}

export interface UseProjectJobsOptions {
  /** Also load the newest jobs over HTTP (history the channel does not replay). Default true. */
  list?: boolean;
  /** How many to load. Default 50. */
  limit?: number;
}

/** A project's jobs, newest first, live. */
export function useProjectJobs(project: string | null | undefined, opts: UseProjectJobsOptions = {}): readonly JobSnapshot[] {
  const { client } = useProgressContext();
  const list = opts.list ?? true;
  const limit = opts.limit ?? 50;
  const token = useClientToken(client);
  useEffect(() => {
    if (!project) return;
    return client.watchProject(project);
  }, [client, project]);
  useEffect(() => {
    if (!project || !list) return;
    client.listProject(project, { limit }).catch(noop);
  }, [client, project, list, limit, token]);
  const sub = useCallback((l: Listener) => (project ? client.store.subscribeProject(project, l) : noop), [client, project]);
  const get = useCallback(() => (project ? client.store.projectJobs(project) : EMPTY), [client, project]);
  return useBatchedStore(sub, get);
}

const EMPTY: readonly JobSnapshot[] = Object.freeze([]);

export interface UseChannelJobsOptions {
  /** Also load the newest ones over HTTP (history the channel does not replay). Default true. */
  list?: boolean;
  /** How many to load. Default 50. */
  limit?: number;
}

/**
 * The jobs of a channel query, newest first, live: subscribes to channel
 * and lists query over HTTP into the store.
 */
function useChannelJobs(
  channel: string | null,
  query: { parent?: string; tag?: string },
  opts: UseChannelJobsOptions,
): readonly JobSnapshot[] {
  const { client } = useProgressContext();
  const list = opts.list ?? true;
  const limit = opts.limit ?? 50;
  const token = useClientToken(client);
  useEffect(() => {
    if (!channel) return;
    return client.subscribe(channel);
  }, [client, channel]);
  const { parent, tag } = query;
  useEffect(() => {
    if (!channel || !list) return;
    client.listInto({ parent, tag }, { limit }).catch(noop);
  }, [client, channel, parent, tag, list, limit, token]);
  const sub = useCallback((l: Listener) => (channel ? client.store.subscribeAll(l) : noop), [client, channel]);
  const get = useCallback(() => (channel ? client.store.channelJobs(channel) : EMPTY), [client, channel]);
  return useBatchedStore(sub, get);
}

/**
 * A job's direct children, newest first, live (children:<id>). The
 * parent's own snapshot (useJob) carries their counts and its bar.
 */
export function useJobChildren(jobId: string | null | undefined, opts: UseChannelJobsOptions = {}): readonly JobSnapshot[] {
  return useChannelJobs(jobId ? "children:" + jobId : null, { parent: jobId ?? undefined }, opts);
}

/** The caller's jobs with a tag (an admin's: everyone's), newest first, live (tag:<tag>). */
export function useTaggedJobs(tag: string | null | undefined, opts: UseChannelJobsOptions = {}): readonly JobSnapshot[] {
  return useChannelJobs(tag ? "tag:" + tag : null, { tag: tag ?? undefined }, opts);
}

export interface UseJobLogsOptions {
  /** How many of the newest lines to hold and return. Default 1,000 (the server's default). */
  limit?: number;
}

export interface UseJobLogsResult extends JobLogs {
  /** The server's refusal of logs:<id> (forbidden, not_found, …), if any. */
  error: ProtocolError | undefined;
}

/**
 * A job's log lines, live (logs:<id>): the lines the server kept, then
 * every new one, at most limit held (the newest), each once; after a
 * reconnect it resumes after the last line held. `truncated` says lines
 * were lost between those shown (the page fell too far behind).
 */
export function useJobLogs(jobId: string | null | undefined, opts: UseJobLogsOptions = {}): UseJobLogsResult {
  const { client } = useProgressContext();
  const limit = opts.limit ?? DEFAULT_LOG_LIMIT;
  useEffect(() => {
    if (!jobId) return;
    return client.watchLogs(jobId, { limit });
  }, [client, jobId, limit]);
  const sub = useCallback((l: Listener) => (jobId ? client.logStore.subscribe(jobId, l) : noop), [client, jobId]);
  const get = useCallback(() => client.logStore.get(jobId ?? "", limit), [client, jobId, limit]);
  const logs = useBatchedStore(sub, get);
  const error = useChannelError(jobId ? "logs:" + jobId : null);
  return useMemo(() => ({ lines: logs.lines, truncated: logs.truncated, last: logs.last, error }), [logs, error]);
}

export interface UseProjectsResult {
  /** The projects of the pages loaded, most recent activity first. */
  data: readonly ProjectSummary[] | undefined;
  error: unknown;
  status: "loading" | "success" | "error";
  /** The server has more projects than those in data (loadMore fetches the next page). */
  hasMore: boolean;
  /** A loadMore is on its way. */
  loadingMore: boolean;
  /** Fetches the next page and adds its projects to data. */
  loadMore: () => void;
}

export interface UseProjectsOptions {
  /** Projects per page. Default 200. */
  limit?: number;
  /** The list is fetched again at most this often while jobs the page watches change. Default 2,000 ms. */
  refreshMs?: number;
  /**
   * Also fetch it again this often while the page is visible, for projects
   * whose jobs the page does not watch. Default 0: never.
   */
  pollMs?: number;
}

interface ProjectsState {
  list: readonly ProjectSummary[] | undefined;
  cursor: string | null;
  /** More than the first page loaded: a refresh keeps the others. */
  paged: boolean;
  error: unknown;
  loadingMore: boolean;
}

/**
 * The caller's projects from GET /api/v1/projects (the durable list: right
 * after a restart and with any number of jobs), most recent activity
 * first, a page at a time. It is fetched again, at most every refreshMs
 * (default 2 s), while jobs the page watches change, and every pollMs if
 * set.
 *
 * A refresh fetches the first page only: any project with new activity is
 * on it, since the list is ordered by activity. The projects of later pages
 * loaded (loadMore) stay, after it, with the counts they had.
 */
export function useProjects(opts: UseProjectsOptions = {}): UseProjectsResult {
  const { client } = useProgressContext();
  const limit = opts.limit ?? 200;
  const refreshMs = opts.refreshMs ?? 2000;
  const pollMs = opts.pollMs ?? 0;
  const token = useClientToken(client);
  const [state, setState] = useState<ProjectsState>(NO_PROJECTS);
  const generation = useRef(0);
  useEffect(() => {
    let live = true;
    const gen = ++generation.current;
    setState(NO_PROJECTS);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let last = 0;
    const load = () => {
      last = Date.now();
      client.api
        .listProjects({ limit })
        .then((res) => {
          if (!live || gen !== generation.current) return;
          const first = res.projects ?? [];
          setState((s) => {
            if (!s.paged) return { ...s, list: first, cursor: res.next_cursor ?? null, error: undefined };
            const names = new Set(first.map((p) => p.project));
            return { ...s, list: [...first, ...(s.list ?? []).filter((p) => !names.has(p.project))], error: undefined };
          });
        })
        .catch((error: unknown) => live && gen === generation.current && setState((s) => ({ ...s, error })));
    };
    const soon = () => {
      if (timer !== undefined) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          load();
        },
        Math.max(0, last + refreshMs - Date.now()),
      );
    };
    load();
    const unsub = client.store.subscribeAll(soon);
    const poll =
      pollMs > 0
        ? setInterval(() => {
            if (typeof document === "undefined" || document.visibilityState !== "hidden") soon();
          }, pollMs)
        : undefined;
    return () => {
      live = false;
      unsub();
      if (timer !== undefined) clearTimeout(timer);
      if (poll !== undefined) clearInterval(poll);
    };
  }, [client, limit, refreshMs, pollMs, token]);

  const { cursor, loadingMore } = state;
  const loadMore = useCallback(() => {
    if (!cursor || loadingMore) return;
    const gen = generation.current;
    setState((s) => ({ ...s, loadingMore: true }));
    client.api.listProjects({ limit, cursor }).then(
      (res) => {
        if (gen !== generation.current) return;
        setState((s) => {
          const have = new Set((s.list ?? []).map((p) => p.project));
          const more = (res.projects ?? []).filter((p) => !have.has(p.project));
          return { ...s, list: [...(s.list ?? []), ...more], cursor: res.next_cursor ?? null, paged: true, loadingMore: false, error: undefined };
        });
      },
      (error: unknown) => gen === generation.current && setState((s) => ({ ...s, loadingMore: false, error })),
    );
  }, [client, limit, cursor, loadingMore]);

  return useMemo(
    () => ({
      data: state.list,
      error: state.error,
      status: state.error !== undefined ? "error" : state.list === undefined ? "loading" : "success",
      hasMore: !!state.cursor,
      loadingMore: state.loadingMore,
      loadMore,
    }),
    [state, loadMore],
  );
}

const NO_PROJECTS: ProjectsState = { list: undefined, cursor: null, paged: false, error: undefined, loadingMore: false };

/** Every job the page knows, newest first, live. */
export function useAllJobs(): readonly JobSnapshot[] {
  const { client } = useProgressContext();
  const sub = useCallback((l: Listener) => client.store.subscribeAll(l), [client]);
  const get = useCallback(() => client.store.all(), [client]);
  return useBatchedStore(sub, get);
}

/** Keeps a channel subscribed while the component is mounted ("user:alice", "project:p1"). */
export function useChannel(channel: string | null | undefined): ProtocolError | undefined {
  const { client } = useProgressContext();
  useEffect(() => {
    if (!channel) return;
    return client.subscribe(channel);
  }, [client, channel]);
  return useChannelError(channel);
}

/** The server's refusal of a channel (forbidden, not_found, …), if any. */
export function useChannelError(channel: string | null | undefined): ProtocolError | undefined {
  const { client } = useProgressContext();
  const sub = useCallback((l: Listener) => client.onChannelError(l), [client]);
  // onChannelError and onStatus both mean "look again"; a status change clears errors on resubscribe.
  const subAll = useCallback(
    (l: Listener) => {
      const a = sub(l);
      const b = client.onStatus(l);
      return () => {
        a();
        b();
      };
    },
    [client, sub],
  );
  const get = useCallback(() => (channel ? client.channelError(channel) : undefined), [client, channel]);
  return useSyncExternalStore(subAll, get, get);
}

/** The connection's state: connecting, open, reconnecting or closed (with why). */
export function useConnectionState(): ConnectionStatus {
  const { client } = useProgressContext();
  const sub = useCallback((l: Listener) => client.onStatus(l), [client]);
  const get = useCallback(() => client.getStatus(), [client]);
  return useSyncExternalStore(sub, get, get);
}
