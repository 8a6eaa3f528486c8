// ProgressClient is what a page uses: one per server, shared by every
// component. It counts references per channel (ten bars on one job are one
// server subscription), keeps the newest snapshot of every job (JobStore),
// and either owns the page's one Connection or, when another tab of the
// same origin already has one for the same server and user, borrows that
// tab's (cross-tab sharing, see crosstab.ts).

import { Api } from "./api.js";
import { Connection, type ConnectionOptions } from "./connection.js";
import {
  browserCrossTab,
  holdLock,
  whenReleased,
  type BroadcastChannelCtor,
  type BroadcastChannelLike,
  type HeldLock,
  type LockManagerLike,
  type TabMessage,
} from "./crosstab.js";
import { randomId, realTimers, resolveServer, type FetchLike, type Timers } from "./env.js";
import { decodeToken, fnv1a, identityKey, tokenUser } from "./jwt.js";
import { DEFAULT_LOG_LIMIT, LogStore, logsJob, type JobLogs } from "./logs.js";
import { JobStore } from "./store.js";
import type { ChannelError, ConnectionStatus, JobSnapshot, Listener, LogLine, ProtocolError } from "./types.js";

export interface ProgressClientOptions extends Omit<ConnectionOptions, "server" | "token" | "clientId"> {
  /** The server's base URL; default this page's origin. */
  server?: string;
  token?: string | null;
  /** This page's id, sent as client_id. Default: random. */
  clientId?: string;
  /**
   * Share one connection between the tabs of this origin (Web Locks +
   * BroadcastChannel). "auto" (default): when the browser has both.
   */
  crossTab?: boolean | "auto";
  /** Web Locks to use instead of navigator.locks (tests). */
  locks?: LockManagerLike;
  /** BroadcastChannel to use instead of the browser's (tests). */
  BroadcastChannel?: BroadcastChannelCtor;
  /** How long a channel nobody wants stays subscribed (absorbs unmount/remount). Default 250 ms. */
  releaseDelayMs?: number;
}

type Role = "solo" | "leader" | "follower";

/** A job's log lines, watched: scrollback, then live (ProgressClient.logs). */
export interface LogsWatch {
  /** What is held now: the same object until a line arrives. */
  get(): JobLogs;
  /** Calls l on every change; returns the unsubscribe. */
  subscribe(l: Listener): () => void;
  /** The server's refusal of the logs: channel (forbidden, not_found, …), if any. */
  error(): ProtocolError | undefined;
  /** Stops watching (idempotent). */
  close(): void;
}

interface Group {
  key: string;
  bc: BroadcastChannelLike;
  tabLock: HeldLock | null;
  leaderLock: HeldLock | null;
  /** Other tabs' channels, while this tab leads. */
  remote: Map<string, Set<string>>;
  /** Cancels watching a follower tab's lock. */
  watchers: Map<string, () => void>;
  ready: boolean;
  left: boolean;
}

export class ProgressClient {
  readonly server: string;
  readonly clientId: string;
  readonly store = new JobStore();
  /** The log lines of the jobs whose logs: channel the page watches. */
  readonly logStore = new LogStore();
  readonly api: Api;

  private token: string | null;
  private readonly opts: ProgressClientOptions;
  private readonly timers: Timers;
  private readonly refs = new Map<string, number>();
  private readonly releaseTimers = new Map<string, unknown>();
  private readonly releaseDelayMs: number;
  private readonly channelErrors = new Map<string, ProtocolError>();
  private readonly statusListeners = new Set<Listener>();
  private readonly errorListeners = new Set<(e: ChannelError) => void>();
  private readonly crossTab: { locks: LockManagerLike; BroadcastChannel: BroadcastChannelCtor } | null;
  private readonly tabId: string;

  private role: Role = "solo";
  private conn: Connection | null = null;
  private group: Group | null = null;
  private status: ConnectionStatus = { state: "closed", transport: null, reason: "idle", attempt: 0, role: "solo" };
  private subsQueued = false;
  private disposed = false;
  /** Serializes group changes: a new group is joined after the old one is left. */
  private switching: Promise<void> = Promise.resolve();
  private listed = new Map<string, Promise<void>>();
  /**
   * A follower's logs: jobs the leader has caught it up on: live lines the
   * leader relays count only after the catch-up, or the follower would
   * start past the scrollback and skip it.
   */
  private readonly logsCaughtUp = new Set<string>();

  constructor(opts: ProgressClientOptions = {}) {
    this.opts = opts;
    this.server = resolveServer(opts.server);
    this.token = opts.token || null;
    this.timers = opts.timers ?? realTimers;
    this.clientId = opts.clientId ?? randomId();
    this.tabId = this.clientId + "." + fnv1a(String(Math.random()));
    this.releaseDelayMs = opts.releaseDelayMs ?? 250;
    const fetchFn: FetchLike | undefined = opts.fetch ?? undefined;
    this.api = new Api(this.server, () => this.token, fetchFn ?? ((...a) => globalThis.fetch(...a)));
    const mode = opts.crossTab ?? "auto";
    if (mode === false) this.crossTab = null;
    else if (opts.locks && opts.BroadcastChannel) this.crossTab = { locks: opts.locks, BroadcastChannel: opts.BroadcastChannel };
    else this.crossTab = browserCrossTab();
    if (mode === true && !this.crossTab) {
      // Asked for but not available: one connection per tab, as documented.
    }
  }

  // ---- public API -------------------------------------------------------

  /**
   * Keeps the server subscribed to channel ("job:ID", "project:P",
   * "user:U") until the returned function is called. Calls are counted:
   * the server is asked once, however many components want the channel.
   */
  subscribe(channel: string): () => void {
    if (this.disposed) return () => undefined;
    const pendingRelease = this.releaseTimers.get(channel);
    if (pendingRelease !== undefined) {
      this.timers.clearTimeout(pendingRelease);
      this.releaseTimers.delete(channel);
    }
    const n = (this.refs.get(channel) ?? 0) + 1;
    this.refs.set(channel, n);
    if (n === 1 && pendingRelease === undefined) this.channelsChanged();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.release(channel);
    };
  }

  watchJob(jobId: string): () => void {
    return this.subscribe("job:" + jobId);
  }

  /** Keeps children:<jobId> subscribed: the job's direct children. */
  watchChildren(jobId: string): () => void {
    return this.subscribe("children:" + jobId);
  }

  /** Keeps tag:<tag> subscribed: the caller's jobs with that tag. */
  watchTag(tag: string): () => void {
    return this.subscribe("tag:" + tag);
  }

  watchProject(project: string): () => void {
    return this.subscribe("project:" + project);
  }

  watchUser(user: string): () => void {
    return this.subscribe("user:" + user);
  }

  /**
   * Keeps logs:<jobId> subscribed and the job's newest lines (at least
   * limit, default 1,000) in logStore: the kept lines first, then every
   * new one; after a reconnect it resumes after the last line held.
   */
  watchLogs(jobId: string, opts: { limit?: number } = {}): () => void {
    const releaseLimit = this.logStore.holdLimit(jobId, logLimit(opts.limit));
    const unsubscribe = this.subscribe("logs:" + jobId);
    return () => {
      // The limit first: when the channel goes, nothing holds the lines.
      releaseLimit();
      unsubscribe();
    };
  }

  /**
   * Watches a job's log lines: scrollback, then live, at most limit
   * (default 1,000) held, each line once (highest n wins), resuming after
   * the last one on reconnect.
   *
   *     const logs = client.logs(jobId);
   *     logs.subscribe(() => render(logs.get().lines));
   *     logs.close();
   */
  logs(jobId: string, opts: { limit?: number } = {}): LogsWatch {
    const limit = logLimit(opts.limit);
    const close = this.watchLogs(jobId, { limit });
    return {
      get: () => this.logStore.get(jobId, limit),
      subscribe: (l) => this.logStore.subscribe(jobId, l),
      error: () => this.channelError("logs:" + jobId),
      close,
    };
  }

  /** How many components want a channel (0 if none). */
  refCount(channel: string): number {
    return this.refs.get(channel) ?? 0;
  }

  /** The job's newest snapshot, if the page has one. */
  getJob(jobId: string): JobSnapshot | undefined {
    return this.store.get(jobId);
  }

  getStatus(): ConnectionStatus {
    return this.status;
  }

  onStatus(l: Listener): () => void {
    this.statusListeners.add(l);
    return () => this.statusListeners.delete(l);
  }

  /** Subscriptions the server refused, by channel. */
  channelError(channel: string): ProtocolError | undefined {
    return this.channelErrors.get(channel);
  }

  onChannelError(l: (e: ChannelError) => void): () => void {
    this.errorListeners.add(l);
    return () => this.errorListeners.delete(l);
  }

  getToken(): string | null {
    return this.token;
  }

  /** The user this page acts as: the token's sub, "local" without a token, null if unreadable. */
  user(): string | null {
    return tokenUser(this.token);
  }

  /**
   * Switches the token. The same user with a fresh token keeps the
   * connection (an auth frame refreshes it); another user (or admin-ness)
   * forgets every snapshot, closes the connection, waits until it has
   * closed, and opens a new one.
   */
  setToken(token: string | null | undefined): void {
    token = token || null;
    if (token === this.token || this.disposed) return;
    const sameIdentity = identityKey(token) === identityKey(this.token);
    this.token = token;
    this.listed.clear();
    for (const l of [...this.statusListeners]) l(); // the token is part of what listeners read
    if (!sameIdentity) {
      this.store.clear();
      this.logStore.clear();
      this.logsCaughtUp.clear();
      this.channelErrors.clear();
    }
    if (this.group) {
      if (sameIdentity) {
        if (this.role === "leader") this.conn?.setToken(token);
        else if (token) this.post({ k: "token", from: this.tabId, token });
        return;
      }
      this.switchGroup();
      return;
    }
    this.conn?.setToken(token);
  }

  /**
   * Fetches a project's newest jobs over HTTP into the store (once per
   * project and token; force: again). Live changes come from the project
   * channel; this fills in history the channel does not replay.
   */
  listProject(project: string, opts: { limit?: number; force?: boolean } = {}): Promise<void> {
    return this.listInto({ project }, opts);
  }

  /**
   * Fetches the newest jobs of a list query ({parent}, {tag}, {project})
   * into the store, once per query and token unless forced.
   */
  listInto(q: { project?: string; parent?: string; tag?: string }, opts: { limit?: number; force?: boolean } = {}): Promise<void> {
    const key = JSON.stringify([q.project, q.parent, q.tag, opts.limit ?? 50]);
    let p = opts.force ? undefined : this.listed.get(key);
    if (!p) {
      p = this.api.listJobs({ ...q, limit: opts.limit ?? 50 }).then((res) => {
        this.store.acceptAll(res.jobs ?? []);
      });
      p.catch(() => this.listed.delete(key));
      this.listed.set(key, p);
    }
    return p;
  }

  /** Closes everything; resolves once the connection has closed. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.releaseTimers.values()) this.timers.clearTimeout(t);
    this.releaseTimers.clear();
    await this.switching;
    await this.leave();
    const c = this.conn;
    this.conn = null;
    await c?.dispose();
    this.setStatus({ state: "closed", transport: null, reason: "disposed", attempt: 0, role: this.role });
  }

  /** Resolves when this page holds no open or closing connection. */
  async whenClosed(): Promise<void> {
    await this.switching;
    await this.conn?.whenClosed();
  }

  // ---- channels ---------------------------------------------------------

  private release(channel: string): void {
    const n = (this.refs.get(channel) ?? 0) - 1;
    if (n > 0) {
      this.refs.set(channel, n);
      return;
    }
    this.refs.delete(channel);
    if (this.releaseDelayMs <= 0) {
      this.channelsChanged();
      return;
    }
    const t = this.timers.setTimeout(() => {
      this.releaseTimers.delete(channel);
      if (!this.refs.has(channel)) this.channelsChanged();
    }, this.releaseDelayMs);
    this.releaseTimers.set(channel, t);
  }

  /** The channels this tab wants: referenced now, or released but still lingering. */
  private localChannels(): Set<string> {
    const s = new Set(this.refs.keys());
    for (const ch of this.releaseTimers.keys()) s.add(ch);
    return s;
  }

  private channelsChanged(): void {
    if (this.disposed) return;
    if (this.crossTab && !this.group) this.join();
    if (this.role === "follower") {
      this.queueSubs();
      this.pruneLogs();
    } else this.syncConnection();
  }

  /** Forgets the lines of jobs whose logs: channel neither this tab nor (as leader) its connection has. */
  private pruneLogs(): void {
    const keep = new Set<string>();
    for (const ch of this.localChannels()) {
      const id = logsJob(ch);
      if (id) keep.add(id);
    }
    for (const ch of this.conn?.channels() ?? []) {
      const id = logsJob(ch);
      if (id) keep.add(id);
    }
    this.logStore.keepOnly(keep);
    for (const id of this.logsCaughtUp) if (!keep.has(id)) this.logsCaughtUp.delete(id);
  }

  /** Makes the connection's channel set the union of this tab's and (as leader) other tabs'. */
  private syncConnection(): void {
    const want = this.localChannels();
    if (this.group && this.role === "leader") for (const set of this.group.remote.values()) for (const ch of set) want.add(ch);
    if (want.size === 0 && !this.conn) return;
    const conn = this.ensureConnection();
    for (const ch of conn.channels()) if (!want.has(ch)) conn.remove(ch);
    for (const ch of want) {
      if (!conn.channels().has(ch)) {
        this.channelErrors.delete(ch);
        const job = logsJob(ch);
        if (job) this.logStore.ensure(job);
        conn.add(ch);
      }
    }
    this.pruneLogs();
  }

  private ensureConnection(): Connection {
    if (this.conn) return this.conn;
    this.conn = new Connection(
      { ...this.opts, server: this.server, token: this.token, clientId: this.clientId },
      {
        onUpdate: (_ch, job) => this.onJob(job),
        onLog: (ch, lines, truncated) => this.onLogLines(ch, lines, truncated),
        logAfter: (ch) => {
          const job = logsJob(ch);
          return job ? this.logStore.after(job) : undefined;
        },
        onStatus: (s) => {
          this.setStatus({ ...s, role: this.role });
          if (this.role === "leader") this.post({ k: "status", from: this.tabId, status: this.status });
        },
        onChannelError: (e) => {
          this.onChannelErr(e);
          if (this.role === "leader") this.post({ k: "chanerr", from: this.tabId, channel: e.channel, error: e.error });
        },
      },
    );
    return this.conn;
  }

  private onJob(job: JobSnapshot): void {
    if (!this.store.accept(job)) return;
    if (this.relaying()) this.post({ k: "jobs", from: this.tabId, jobs: [job] });
  }

  private onLogLines(channel: string, lines: LogLine[], truncated: boolean): void {
    const job = logsJob(channel);
    if (!job || !this.logStore.accept(job, lines, truncated)) return;
    if (this.relaying()) this.post({ k: "logs", from: this.tabId, job, lines, truncated });
  }

  /**
   * Whether this tab leads other tabs that may want what arrives. A tab
   * alone posts nothing: a structured clone per snapshot cost a tenth of
   * the dashboard's main thread at 2,000 updates a second. A follower that
   * joins later is caught up from the store when it names its channels.
   */
  private relaying(): boolean {
    return this.role === "leader" && (this.group?.remote.size ?? 0) > 0;
  }

  private onChannelErr(e: ChannelError): void {
    if (!this.localChannels().has(e.channel)) return;
    this.channelErrors.set(e.channel, e.error);
    for (const l of [...this.errorListeners]) l(e);
  }

  private setStatus(s: ConnectionStatus): void {
    this.status = s;
    for (const l of [...this.statusListeners]) l();
  }

  // ---- cross-tab --------------------------------------------------------

  private groupKey(): string {
    return "progressd:v1:" + fnv1a(this.server) + ":" + fnv1a(identityKey(this.token));
  }

  /** Joins the group of this server and identity: follower until the leader lock is granted. */
  private join(): void {
    if (!this.crossTab || this.disposed) return;
    const { locks, BroadcastChannel } = this.crossTab;
    const key = this.groupKey();
    let bc: BroadcastChannelLike;
    try {
      bc = new BroadcastChannel(key);
    } catch {
      return; // no sharing: this tab connects on its own
    }
    const g: Group = {
      key,
      bc,
      tabLock: null,
      leaderLock: null,
      remote: new Map(),
      watchers: new Map(),
      ready: false,
      left: false,
    };
    this.group = g;
    this.role = "follower";
    this.setStatus({ state: "connecting", transport: null, attempt: 0, role: "follower" });
    bc.onmessage = (ev) => {
      if (!g.left) this.onTabMessage(g, ev.data as TabMessage);
    };
    // The tab lock says "this tab lives": the leader waits on it to notice a
    // closed or crashed tab. It is held before the leader hears of us.
    g.tabLock = holdLock(locks, key + ":tab:" + this.tabId, () => {
      if (g.left) return;
      g.ready = true;
      this.post({ k: "hello", from: this.tabId });
      this.queueSubs();
      g.leaderLock = holdLock(locks, key + ":leader", () => {
        if (!g.left) this.becomeLeader(g);
      });
    });
  }

  private becomeLeader(g: Group): void {
    this.role = "leader";
    this.setStatus({ ...this.status, role: "leader" });
    this.syncConnection();
    if (this.conn) this.setStatus({ ...this.conn.getStatus(), role: "leader" });
    else this.setStatus({ state: "closed", transport: null, reason: "idle", attempt: 0, role: "leader" });
    this.post({ k: "leader", from: this.tabId });
    this.post({ k: "status", from: this.tabId, status: this.status });
  }

  private onTabMessage(g: Group, m: TabMessage): void {
    if (!m || typeof m !== "object" || m.from === this.tabId) return;
    if (this.role === "leader") {
      switch (m.k) {
        case "hello":
          this.post({ k: "leader", from: this.tabId });
          this.post({ k: "status", from: this.tabId, status: this.status });
          return;
        case "subs": {
          const before = g.remote.get(m.from) ?? new Set<string>();
          const now = new Set(m.channels);
          g.remote.set(m.from, now);
          this.watchTab(g, m.from);
          // Catch the tab up on channels it just added: if this tab was
          // already subscribed, the server will not send them again.
          const jobs: JobSnapshot[] = [];
          for (const ch of now) if (!before.has(ch)) jobs.push(...this.store.jobsFor(ch));
          if (jobs.length) this.post({ k: "jobs", from: this.tabId, to: m.from, jobs });
          this.syncConnection();
          // Log lines too, one catch-up per new logs: channel, empty or
          // not: the tab takes relayed lines of that job only after it.
          for (const ch of now) {
            const job = logsJob(ch);
            if (!job || before.has(ch)) continue;
            const truncated = this.logStore.get(job).truncated;
            this.post({ k: "logs", from: this.tabId, to: m.from, job, lines: this.logStore.lines(job), truncated });
          }
          return;
        }
        case "bye":
          this.dropTab(g, m.from);
          return;
        case "token": {
          // A fresher token of the same identity: keep the connection, refresh it.
          const cur = decodeToken(this.conn?.getToken() ?? this.token)?.exp ?? 0;
          const next = decodeToken(m.token)?.exp ?? 0;
          if (identityKey(m.token) === identityKey(this.token) && next > cur) this.conn?.setToken(m.token);
          return;
        }
        case "leader":
          return; // cannot happen: one lock holder
        default:
          return;
      }
    }
    // follower
    switch (m.k) {
      case "leader":
        // A new leader catches this tab up again on every logs: channel.
        this.logsCaughtUp.clear();
        this.queueSubs(true);
        return;
      case "status":
        this.setStatus({ ...m.status, role: "follower" });
        return;
      case "jobs":
        if (m.to && m.to !== this.tabId) return;
        this.store.acceptAll(m.jobs);
        return;
      case "chanerr":
        this.onChannelErr({ channel: m.channel, error: m.error });
        return;
      case "logs":
        if (m.to !== undefined) {
          if (m.to !== this.tabId || !this.logStore.has(m.job)) return;
          this.logsCaughtUp.add(m.job);
        } else if (!this.logsCaughtUp.has(m.job)) return;
        this.logStore.accept(m.job, m.lines, m.truncated);
        return;
      default:
        return;
    }
  }

  private watchTab(g: Group, tab: string): void {
    if (g.watchers.has(tab) || !this.crossTab) return;
    g.watchers.set(
      tab,
      whenReleased(this.crossTab.locks, g.key + ":tab:" + tab, () => this.dropTab(g, tab)),
    );
  }

  private dropTab(g: Group, tab: string): void {
    g.watchers.get(tab)?.();
    g.watchers.delete(tab);
    if (g.remote.delete(tab) && this.role === "leader" && !g.left) this.syncConnection();
  }

  /** Tells the leader which channels this tab wants, once per task. */
  private queueSubs(force = false): void {
    if (this.subsQueued && !force) return;
    this.subsQueued = true;
    queueMicrotask(() => {
      this.subsQueued = false;
      const g = this.group;
      if (!g || !g.ready || g.left || this.role !== "follower") return;
      this.post({ k: "subs", from: this.tabId, channels: [...this.localChannels()] });
    });
  }

  private post(m: TabMessage): void {
    const g = this.group;
    if (!g || g.left) return;
    try {
      g.bc.postMessage(m);
    } catch {
      /* closed */
    }
  }

  /** Leaves the group: a leader closes its connection before letting the lock go. */
  private async leave(): Promise<void> {
    const g = this.group;
    if (!g) return;
    if (this.role === "follower" && g.ready) this.post({ k: "bye", from: this.tabId });
    g.left = true;
    this.group = null;
    for (const cancel of g.watchers.values()) cancel();
    g.watchers.clear();
    g.remote.clear();
    const conn = this.conn;
    this.conn = null;
    await conn?.dispose();
    try {
      g.bc.close();
    } catch {
      /* already closed */
    }
    await g.leaderLock?.release();
    await g.tabLock?.release();
    this.role = "solo";
  }

  private switchGroup(): void {
    this.switching = this.switching.then(async () => {
      await this.leave();
      if (this.disposed) return;
      if (this.localChannels().size > 0) this.channelsChanged();
      else this.setStatus({ state: "closed", transport: null, reason: "idle", attempt: 0, role: "solo" });
    });
  }
}

/** A watcher's line limit: a whole number ≥ 1 (default DEFAULT_LOG_LIMIT). */
function logLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LOG_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`progressd: a log limit is a whole number ≥ 1, not ${limit}`);
  return limit;
}
