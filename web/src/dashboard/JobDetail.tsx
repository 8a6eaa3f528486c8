import { useEffect, useState } from "react";
import { isTerminal, type JobSnapshot } from "@progressd/client";
import { InlineProgressBar, useJob, useJobChildren, useProgressClient } from "@progressd/react";
import { Confirm } from "./Confirm";
import { cancelJob, deleteJob, isDeleted, useDeletedVersion, watchCommand } from "./jobActions";
import { ChildrenLine, Flags, Stages, jobTitle } from "./JobCard";
import { KeyValues } from "./KeyValues";
import { JobLogs } from "./LogPanel";
import { ago, span, when, useNow } from "./time";

/**
 * One job on a page of its own (#/jobs/<id>): everything the snapshot
 * says, live, its children with their own bars, and what can be done with
 * it. Reloading the page shows it again: the job comes from the server,
 * not from the list.
 */
export function JobDetail({ id }: { id: string }) {
  const job = useJob(id);
  const children = useJobChildren(job?.children ? id : null);
  const now = useNow();
  useDeletedVersion();
  if (isDeleted(id)) {
    return (
      <section className="detail">
        <p>
          Job <code>{id}</code> was deleted.
        </p>
      </section>
    );
  }
  if (!job) {
    return (
      <section className="detail" aria-busy="true">
        <p className="muted">
          Loading job <code>{id}</code>… (a job that does not exist, or is not yours, never loads)
        </p>
      </section>
    );
  }
  const title = jobTitle(job);
  return (
    <section className="detail" aria-labelledby="job-title" data-job-id={job.job_id} data-state={job.state}>
      <p className="small">
        <a className="link" href={"#/p/" + encodeURIComponent(job.project)}>
          ← {job.project}
        </a>
      </p>
      <h1 id="job-title">
        {title} <span className={"badge badge--" + job.state}>{job.state}</span> <Flags job={job} />
      </h1>
      <p className="detail__id">
        <code>{job.job_id}</code> <CopyButton text={job.job_id} label="Copy the job id" />
      </p>
      <Actions job={job} />
      {job.stalled && !isTerminal(job.state) && (
        <p className="warning" role="status">
          Stalled: no report since {when(job.updated_at, now)}. The worker may be stuck or gone.
        </p>
      )}
      <Attempts job={job} />
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
        {job.parent_id && (
          <>
            <dt>Parent</dt>
            <dd>
              <a className="link" href={"#/jobs/" + encodeURIComponent(job.parent_id)}>
                <code>{job.parent_id}</code>
              </a>
            </dd>
          </>
        )}
        <dt>Created</dt>
        <dd data-field="created">{when(job.created_at, now)}</dd>
        <dt>Started</dt>
        <dd data-field="started">{job.started_at ? when(job.started_at, now) : isTerminal(job.state) ? "never" : "not yet (queued)"}</dd>
        <dt>Finished</dt>
        <dd data-field="finished">{job.finished_at ? when(job.finished_at, now) : "—"}</dd>
        <Durations job={job} now={now} />
      </dl>
      {job.metadata && Object.keys(job.metadata).length > 0 && (
        <>
          <h2 className="detail__sub">Metadata</h2>
          <KeyValues value={job.metadata} label="Metadata" />
        </>
      )}
      {job.result && (
        <>
          <h2 className="detail__sub">Result</h2>
          <KeyValues value={job.result} label="Result" />
        </>
      )}
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
      <JobLogs id={job.job_id} finished={isTerminal(job.state)} />
    </section>
  );
}

/** Time spent waiting in the queue, then running. */
function Durations({ job, now }: { job: JobSnapshot; now: number }) {
  const created = Date.parse(job.created_at);
  const started = job.started_at ? Date.parse(job.started_at) : NaN;
  const end = job.finished_at ? Date.parse(job.finished_at) : now;
  const queued = (Number.isNaN(started) ? (isTerminal(job.state) ? end : now) : started) - created;
  const ran = Number.isNaN(started) ? NaN : end - started;
  return (
    <>
      <dt>Queued for</dt>
      <dd data-field="queued-for">{queued >= 0 ? span(Math.round(queued / 1000)) : "—"}</dd>
      <dt>{job.finished_at ? "Ran for" : "Running for"}</dt>
      <dd data-field="ran-for">{ran >= 0 ? span(Math.round(ran / 1000)) : "—"}</dd>
    </>
  );
}

/** "Attempt 2 of 3 · retrying in 12 s after: <error>" for pipeline jobs that retry. */
function Attempts({ job }: { job: JobSnapshot }) {
  const retrying = !!job.retry_at && !isTerminal(job.state);
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!retrying) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [retrying]);
  if (!job.attempt || !job.max_attempts || (job.max_attempts <= 1 && !retrying)) return null;
  return (
    <p className="attempts small" data-attempt={job.attempt}>
      Attempt {job.attempt} of {job.max_attempts}
      {retrying && (
        <>
          {" · "}
          <span title={job.retry_at ?? undefined}>retrying {ago(job.retry_at, now)}</span>
          {job.error && <span className="muted"> after: {job.error}</span>}
        </>
      )}
    </p>
  );
}

function CopyButton({ text, label, children }: { text: string; label: string; children?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(text).then(
      () => setCopied(true),
      () => setCopied(false),
    );
  };
  return (
    <button type="button" className="btn btn--small" onClick={copy} aria-label={label}>
      {copied ? "Copied" : (children ?? "Copy")}
    </button>
  );
}

/** Cancel a job that runs, delete one that finished (after a confirmation), copy the terminal command that follows it. */
function Actions({ job }: { job: JobSnapshot }) {
  const client = useProgressClient();
  const [busy, setBusy] = useState(false);
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const terminal = isTerminal(job.state);
  const act = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  const cmd = watchCommand(job.job_id, location.origin, !!client.getToken());
  return (
    <div className="actions">
      {!terminal && (
        <button type="button" className="btn btn--small" disabled={busy} onClick={() => void act(() => cancelJob(client, job.job_id))}>
          Cancel job
        </button>
      )}
      {terminal && (
        <button type="button" className="btn btn--small btn--danger" disabled={busy} onClick={() => setAsking(true)}>
          Delete job
        </button>
      )}
      <span className="actions__cmd">
        <code title="Follow this job in a terminal">{cmd}</code>
        <CopyButton text={cmd} label="Copy command to watch this job in a terminal">
          Copy command
        </CopyButton>
      </span>
      {error && (
        <p className="alert" role="alert">
          {error}
        </p>
      )}
      {asking && (
        <Confirm
          title="Delete this job?"
          confirm="Delete job"
          onCancel={() => setAsking(false)}
          onConfirm={() => {
            setAsking(false);
            void act(async () => {
              await deleteJob(client, job.job_id);
              location.hash = "#/p/" + encodeURIComponent(job.project);
            });
          }}
        >
          <p className="small">Its snapshot and log lines are removed from the server. This cannot be undone.</p>
        </Confirm>
      )}
    </div>
  );
}
