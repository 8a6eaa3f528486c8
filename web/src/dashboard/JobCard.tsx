import { memo, useState } from "react";
import { isTerminal, type JobSnapshot, type StageSnapshot } from "@progressd/client";
import { InlineProgressBar, formatDuration, percent, useProgressClient } from "@progressd/react";
import { cancelJob } from "./jobActions";
import { ago, dateTime, useNow } from "./time";

/** The job's title: its name, else its pipeline. */
export function jobTitle(job: JobSnapshot): string {
  return job.name || job.pipeline || "reported job";
}

/** The last 8 characters of an id: enough to tell rows apart, and searchable. */
export function shortId(id: string): string {
  return id.slice(-8);
}

function took(job: JobSnapshot): string | null {
  if (!job.finished_at) return null;
  const from = job.started_at ?? job.created_at;
  const ms = Date.parse(job.finished_at) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? formatDuration(ms / 1000) : null;
}

/** "queued 3 s ago" or "started 2 min ago", the full date and time on hover. */
export function JobTime({ job }: { job: JobSnapshot }) {
  const now = useNow();
  const at = job.started_at ?? job.created_at;
  const verb = job.started_at ? "started" : isTerminal(job.state) ? "created" : "queued";
  return (
    <time dateTime={at} title={dateTime(at)}>
      {verb} {ago(at, now)}
    </time>
  );
}

export interface Selectable {
  selected: boolean;
  onSelect: (id: string, on: boolean) => void;
}

/** The checkbox that selects a job for the bulk actions. */
export function SelectBox({ job, selected, onSelect }: Selectable & { job: JobSnapshot }) {
  return (
    <input
      type="checkbox"
      className="select"
      checked={selected}
      onChange={(e) => onSelect(job.job_id, e.target.checked)}
      aria-label={`Select ${jobTitle(job)} ${shortId(job.job_id)}`}
    />
  );
}

/** A job as a card: the list under 100 jobs. */
export const JobCard = memo(function JobCard({ job, selected, onSelect }: { job: JobSnapshot } & Selectable) {
  const client = useProgressClient();
  const [canceling, setCanceling] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const terminal = isTerminal(job.state);
  const cancel = async () => {
    setCanceling(true);
    setError(null);
    try {
      await cancelJob(client, job.job_id);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setCanceling(false);
    }
  };
  const duration = took(job);
  const title = jobTitle(job);
  // A failed job's error is in the bar's words; the line below says it only when the bar does not.
  const line = error ?? (job.state === "failed" ? null : job.message);
  return (
    <article className="job" data-state={job.state} data-job-id={job.job_id} aria-label={`${title} ${job.job_id}`}>
      <header className="job__head">
        <div className="job__title">
          <SelectBox job={job} selected={selected} onSelect={onSelect} />
          <a className="job__pipeline job__open" href={"#/jobs/" + encodeURIComponent(job.job_id)}>
            {title}
          </a>
          <code className="job__id" title={job.job_id}>
            {shortId(job.job_id)}
          </code>
          <span className={"badge badge--" + job.state}>{job.state}</span>
          <Flags job={job} />
        </div>
        <div className="job__meta small muted">
          <JobTime job={job} />
          {duration && <span>took {duration}</span>}
          {!terminal && (
            <button type="button" className="btn btn--small" onClick={() => void cancel()} disabled={canceling}>
              {canceling ? "Canceling…" : "Cancel"}
            </button>
          )}
        </div>
      </header>
      <InlineProgressBar jobId={job.job_id} watch={false} label={`${title} ${shortId(job.job_id)}`} />
      {job.children && <ChildrenLine job={job} />}
      {job.stages && job.stages.length > 0 && <Stages stages={job.stages} current={job.stage} />}
      {line && (
        <p className={"job__message small" + (error ? " job__message--error" : "")}>
          {line}
          {job.total && !(job.message ?? "").includes(`${job.current ?? 0}/${job.total}`) ? (
            <span className="muted">
              {" "}
              ({job.current ?? 0}/{job.total})
            </span>
          ) : null}
        </p>
      )}
    </article>
  );
});

/** Badges for what needs a look: stalled, retrying. */
export function Flags({ job: l }: { job: JobSnapshot }) {
  return (
    <>
      {l.stalled && !isTerminal(l.state) && (
        <span className="badge badge--stalled" title="No report for longer than the job's stall_after_seconds">
          stalled
        </span>
      )}
      {l.retry_at && !isTerminal(l.state) && <span className="badge badge--retry">retrying</span>}
    </>
  );
}

/** A parent's children by state: "182/200 done · 3 failed · 15 running". */
export function ChildrenLine({ job }: { job: JobSnapshot }) {
  const c = job.children!;
  const done = c.succeeded + c.failed + c.canceled;
  const of = Math.max(c.total, job.expected_children ?? 0);
  const parts = [`${done}/${of} children done`];
  if (c.failed > 0) parts.push(`${c.failed} failed`);
  if (c.canceled > 0) parts.push(`${c.canceled} canceled`);
  if (c.running > 0) parts.push(`${c.running} running`);
  if (c.queued > 0) parts.push(`${c.queued} queued`);
  return (
    <p className="job__children small muted" data-children-total={c.total}>
      {parts.join(" · ")}
    </p>
  );
}

export function Stages({ stages, current }: { stages: StageSnapshot[]; current?: string | null }) {
  return (
    <ol className="stages" aria-label="Stages">
      {stages.map((s) => {
        const pct = percent(s);
        return (
          <li
            key={s.name}
            className={"stage stage--" + s.state + (s.name === current ? " stage--current" : "")}
            style={{ flex: `${s.weight > 0 ? s.weight : 1} 1 0%` }}
            title={`${s.name}: ${s.state}, ${pct}% (weight ${s.weight})`}
          >
            <span className="stage__bar" aria-hidden="true">
              <span className="stage__fill" style={{ transform: `scaleX(${pct / 100})` }} />
            </span>
            <span className="stage__name">
              {s.name} <span className="muted">{s.state === "running" ? pct + "%" : s.state === "succeeded" ? "✓" : s.state === "queued" ? "" : s.state}</span>
            </span>
          </li>
        );
      })}
    </ol>
  );
}
