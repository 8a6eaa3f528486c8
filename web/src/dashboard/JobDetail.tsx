import { useEffect, useState } from "react";
import { isTerminal, type JobSnapshot } from "@progressd/client";
import { InlineProgressBar, useJob, useJobChildren } from "@progressd/react";
import { ChildrenLine, Stages } from "./ProjectView";

/** "2026-12-03 07:55:04 (3 min ago)": the date and time, then how long ago. */
function when(iso: string | null | undefined, now: number): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const s = Math.round((now - d.getTime()) / 1000);
  const ago =
    s < 5 ? "just now" : s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`;
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString()} (${ago})`;
}

/** A clock that ticks every few seconds, for relative times. */
function useNow(ms = 5000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/**
 * One job on a page of its own (#/jobs/<id>): everything the snapshot
 * says, live, and its children with their own bars. Reloading the page
 * shows it again: the job comes from the server, not from the list.
 */
export function JobDetail({ id }: { id: string }) {
  const job = useJob(id);
  const children = useJobChildren(job?.children ? id : null);
  const now = useNow();
  const [copied, setCopied] = useState(false);
  if (!job) {
    return (
      <section className="detail" aria-busy="true">
        <p className="muted">
          Loading job <code>{id}</code>… (a job that does not exist, or is not yours, never loads)
        </p>
      </section>
    );
  }
  const title = job.name || job.pipeline || "reported job";
  const copy = () => {
    void navigator.clipboard?.writeText(job.job_id).then(() => setCopied(true));
  };
  return (
    <section className="detail" aria-labelledby="job-title" data-job-id={job.job_id} data-state={job.state}>
      <p className="small">
        <a className="link" href={"#/p/" + encodeURIComponent(job.project)}>
          ← {job.project}
        </a>
      </p>
      <h1 id="job-title">
        {title} <span className={"badge badge--" + job.state}>{job.state}</span>
      </h1>
      <p className="detail__id">
        <code>{job.job_id}</code>{" "}
        <button type="button" className="btn btn--small" onClick={copy} aria-label="Copy the job id">
          {copied ? "Copied" : "Copy"}
        </button>
      </p>
      {/* The bar's words carry a failed job's error: it is not said again below. */}
      <InlineProgressBar jobId={job.job_id} watch={false} label={title} />
      {job.stages && job.stages.length > 0 && <Stages stages={job.stages} current={job.stage} />}
      {job.message && job.state !== "failed" && <p className="job__message">{job.message}</p>}
      <dl className="facts">
        <dt>Owner</dt>
        <dd>{job.owner}</dd>
        {job.pipeline && (
          <>
            <dt>Pipeline</dt>
            <dd>
              {job.pipeline}
              {job.params && Object.keys(job.params).length > 0 && (
                <span className="muted">
                  {" "}
                  ({Object.entries(job.params).map(([k, v]) => `${k}=${v}`).join(", ")})
                </span>
              )}
            </dd>
          </>
        )}
        {job.tags && job.tags.length > 0 && (
          <>
            <dt>Tags</dt>
            <dd>{job.tags.join(", ")}</dd>
          </>
        )}
        <dt>Created</dt>
        <dd data-field="created">{when(job.created_at, now)}</dd>
        <dt>Started</dt>
        <dd data-field="started">{job.started_at ? when(job.started_at, now) : isTerminal(job.state) ? "never" : "not yet (queued)"}</dd>
        <dt>Finished</dt>
        <dd data-field="finished">{job.finished_at ? when(job.finished_at, now) : "—"}</dd>
      </dl>
      {job.children && (
        <>
          <h2 className="detail__sub">Children</h2>
          <ChildrenLine job={job} />
          <ol className="jobs">
            {children.map((c: JobSnapshot) => (
              <li key={c.job_id} className="child" data-job-id={c.job_id}>
                <a className="link" href={"#/jobs/" + encodeURIComponent(c.job_id)}>
                  {c.name || c.pipeline || c.job_id}
                </a>{" "}
                <span className={"badge badge--" + c.state}>{c.state}</span>
                <InlineProgressBar jobId={c.job_id} watch={false} label={c.name || c.job_id} />
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
