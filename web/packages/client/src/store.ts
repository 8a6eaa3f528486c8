// JobStore keeps the newest snapshot of every job the page has seen, from
// whichever channel or HTTP listing brought it. It is the one place that
// decides "newer": the highest seq wins, so a late, duplicated or replayed
// delivery never moves a bar backwards.

import type { JobSnapshot, Listener } from "./types.js";

/** The job ids a channel name covers, as a predicate. */
export function channelMatcher(channel: string): ((job: JobSnapshot) => boolean) | null {
  const i = channel.indexOf(":");
  if (i < 0) return null;
  const kind = channel.slice(0, i);
  const name = channel.slice(i + 1);
  switch (kind) {
    case "job":
      return (j) => j.job_id === name;
    case "project":
      return (j) => j.project === name;
    case "user":
      return (j) => j.owner === name;
    case "children":
      return (j) => j.parent_id === name;
    case "tag":
      return (j) => j.tags?.includes(name) ?? false;
    default:
      return null;
  }
}

const EMPTY: readonly JobSnapshot[] = Object.freeze([]);

/** Newest first: created_at, then job_id (UUIDv7 ids sort by time too). */
export function compareNewestFirst(a: JobSnapshot, b: JobSnapshot): number {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.job_id < b.job_id ? 1 : a.job_id > b.job_id ? -1 : 0;
}

export class JobStore {
  private jobs = new Map<string, JobSnapshot>();
  private byProject = new Map<string, Set<string>>();
  private projectCache = new Map<string, readonly JobSnapshot[]>();
  /**
   * A project's last sorted list, kept while only its jobs' contents change
   * (their order cannot: it is by created_at and id): the next read maps it
   * to the newest snapshots in O(n) instead of sorting again, which at
   * 10,000 jobs and an update every frame was most of a frame's script.
   */
  private projectOrder = new Map<string, readonly JobSnapshot[]>();
  private allCache: readonly JobSnapshot[] | null = null;
  private channelCache = new Map<string, { version: number; list: readonly JobSnapshot[] }>();
  private jobListeners = new Map<string, Set<Listener>>();
  private projectListeners = new Map<string, Set<Listener>>();
  private anyListeners = new Set<Listener>();
  private version = 0;

  /** The newest snapshot of a job, the same object until it changes. */
  get(jobId: string): JobSnapshot | undefined {
    return this.jobs.get(jobId);
  }

  /** Incremented on every accepted change. */
  getVersion(): number {
    return this.version;
  }

  /**
   * Offers a snapshot. It is kept if the store has no snapshot of the job
   * or an older one (lower seq); returns whether it was kept.
   */
  accept(job: JobSnapshot): boolean {
    if (!job || typeof job.job_id !== "string" || typeof job.seq !== "number") return false;
    const prev = this.jobs.get(job.job_id);
    if (prev && prev.seq >= job.seq) return false;
    this.jobs.set(job.job_id, job);
    if (prev && prev.project !== job.project) this.unindex(prev);
    let set = this.byProject.get(job.project);
    if (!set) this.byProject.set(job.project, (set = new Set()));
    set.add(job.job_id);
    this.projectCache.delete(job.project);
    if (!prev || prev.project !== job.project || prev.created_at !== job.created_at) this.projectOrder.delete(job.project);
    this.allCache = null;
    this.version++;
    this.emit(this.jobListeners.get(job.job_id));
    this.emit(this.projectListeners.get(job.project));
    if (prev && prev.project !== job.project) this.emit(this.projectListeners.get(prev.project));
    this.emit(this.anyListeners);
    return true;
  }

  /** Offers many snapshots; returns how many were kept. */
  acceptAll(jobs: Iterable<JobSnapshot>): number {
    let n = 0;
    for (const j of jobs) if (this.accept(j)) n++;
    return n;
  }

  /** A project's jobs, newest first; the same array until one changes. */
  projectJobs(project: string): readonly JobSnapshot[] {
    let list = this.projectCache.get(project);
    if (list) return list;
    const ids = this.byProject.get(project);
    if (!ids || ids.size === 0) return EMPTY;
    const order = this.projectOrder.get(project);
    list = Object.freeze(order ? order.map((j) => this.jobs.get(j.job_id)!) : [...ids].map((id) => this.jobs.get(id)!).sort(compareNewestFirst));
    this.projectCache.set(project, list);
    this.projectOrder.set(project, list);
    return list;
  }

  /** Every job, newest first; the same array until one changes. */
  all(): readonly JobSnapshot[] {
    if (!this.allCache) this.allCache = Object.freeze([...this.jobs.values()].sort(compareNewestFirst));
    return this.allCache;
  }

  /**
   * The jobs a channel covers ("children:ID", "tag:T", …), newest first;
   * the same array until the store changes.
   */
  channelJobs(channel: string): readonly JobSnapshot[] {
    const hit = this.channelCache.get(channel);
    if (hit && hit.version === this.version) return hit.list;
    const m = channelMatcher(channel);
    const list = m ? Object.freeze(this.all().filter(m)) : EMPTY;
    this.channelCache.set(channel, { version: this.version, list });
    return list;
  }

  /** The jobs a channel covers that the store holds. */
  jobsFor(channel: string): JobSnapshot[] {
    const m = channelMatcher(channel);
    if (!m) return [];
    if (channel.startsWith("job:")) {
      const j = this.jobs.get(channel.slice(4));
      return j ? [j] : [];
    }
    if (channel.startsWith("project:")) return [...this.projectJobs(channel.slice(8))];
    return [...this.jobs.values()].filter(m);
  }

  /** Forgets everything (another user signed in) and tells every listener. */
  clear(): void {
    if (this.jobs.size === 0) return;
    this.jobs.clear();
    this.byProject.clear();
    this.projectCache.clear();
    this.projectOrder.clear();
    this.channelCache.clear();
    this.allCache = null;
    this.version++;
    for (const s of this.jobListeners.values()) this.emit(s);
    for (const s of this.projectListeners.values()) this.emit(s);
    this.emit(this.anyListeners);
  }

  subscribeJob(jobId: string, l: Listener): () => void {
    return add(this.jobListeners, jobId, l);
  }

  subscribeProject(project: string, l: Listener): () => void {
    return add(this.projectListeners, project, l);
  }

  /** Called after every accepted change of any job. */
  subscribeAll(l: Listener): () => void {
    this.anyListeners.add(l);
    return () => this.anyListeners.delete(l);
  }

  private unindex(job: JobSnapshot): void {
    const set = this.byProject.get(job.project);
    set?.delete(job.job_id);
    if (set && set.size === 0) this.byProject.delete(job.project);
    this.projectCache.delete(job.project);
    this.projectOrder.delete(job.project);
  }

  private emit(set: Set<Listener> | undefined): void {
    if (!set) return;
    for (const l of [...set]) {
      try {
        l();
      } catch (err) {
        // One broken listener must not starve the others.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}

function add(map: Map<string, Set<Listener>>, key: string, l: Listener): () => void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(l);
  return () => {
    const s = map.get(key);
    if (!s) return;
    s.delete(l);
    if (s.size === 0) map.delete(key);
  };
}
