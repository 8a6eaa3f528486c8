import { memo, useState } from "react";
import { isTerminal, type JobSnapshot, type PipelineInfo, type StageSnapshot } from "@progressd/client";
import { InlineProgressBar, formatDuration, percent, useProgressClient, useProjectJobs } from "@progressd/react";
import { StartJob } from "./StartJob";

export const ProjectView = memo(function ProjectView({
  project,
  pipelines,
  onAuthError,
}: {
  project: string;
  pipelines: PipelineInfo[] | undefined;
  onAuthError: () => void;
}) {
  const jobs = useProjectJobs(project);
  const [error, setError] = useState<string | null>(null);

  const active = jobs.filter((j) => !isTerminal(j.state)).length;
  return (
    <section className="project-view" aria-labelledby="project-title">
      <div className="project-view__head">
        <div>
          <h1 id="project-title">{project}</h1>
          <p className="muted small">
            {jobs.length === 0 ? "No jobs yet" : `${jobs.length} job${jobs.length === 1 ? "" : "s"}, ${active} active`}
          </p>
        </div>
        <StartJob project={project} pipelines={pipelines} onError={setError} onAuthError={onAuthError} />
      </div>
      {error && (
        <p className="alert" role="alert">
          Could not start the job: {error}
          <button type="button" className="btn btn--ghost btn--small" onClick={() => setError(null)}>
            Dismiss
          </button>
        </p>
      )}
      {jobs.length === 0 ? (
        <div className="empty">
          <p>
            Nothing has run in <strong>{project}</strong> yet.
          </p>
          <p className="muted small">
            {pipelines && pipelines.length > 0 ? "Start a pipeline above to watch it move, or report" : "Report"} from any language:{" "}
            <code>POST /api/v1/jobs/&#123;id&#125;/progress</code>.
          </p>
        </div>
      ) : (
        <ol className="jobs">
          {jobs.map((j) => (
            <li key={j.job_id}>
              <JobCard job={j} />
            </li>
          ))}
        </ol>
      )}
    </section>
  );
});

function time(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function took(job: JobSnapshot): string | null {
  if (!job.finished_at) return null;
  const from = job.started_at ?? job.created_at;
  const ms = Date.parse(job.finished_at) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? formatDuration(ms / 1000) : null;
}

const JobCard = memo(function JobCard({ job }: { job: JobSnapshot }) {
  const client = useProgressClient();
  const [canceling, setCanceling] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const terminal = isTerminal(job.state);
  const cancel = async () => {
    setCanceling(true);
    setError(null);
    try {
      client.store.accept(await client.api.cancelJob(job.job_id));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setCanceling(false);
    }
  };
  const duration = took(job);
  const title = job.name || job.pipeline || "reported job";
  return (
    <article className="job" data-state={job.state} data-job-id={job.job_id} aria-label={`${title} ${job.job_id}`}>
      <header className="job__head">
        <div className="job__title">
          <a className="job__pipeline job__open" href={"#/jobs/" + encodeURIComponent(job.job_id)}>
            {title}
          </a>
          <code className="job__id" title={job.job_id}>
            {job.job_id.slice(-8)}
          </code>
          <span className={"badge badge--" + job.state}>{job.state}</span>
        </div>
        <div className="job__meta small muted">
          <span title={job.created_at}>started {time(job.started_at ?? job.created_at)}</span>
          {duration && <span>took {duration}</span>}
          {!terminal && (
            <button type="button" className="btn btn--small" onClick={() => void cancel()} disabled={canceling}>
              {canceling ? "Canceling…" : "Cancel"}
            </button>
          )}
        </div>
      </header>
      <InlineProgressBar jobId={job.job_id} watch={false} label={`${title} ${job.job_id.slice(-8)}`} />
      {job.children && <ChildrenLine job={job} />}
      {job.stages && job.stages.length > 0 && <Stages stages={job.stages} current={job.stage} />}
      {(job.message || job.error || error) && (
        <p className={"job__message small" + ((job.error && job.state === "failed") || error ? " job__message--error" : "")}>
          {job.error ?? error ?? job.message}
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
