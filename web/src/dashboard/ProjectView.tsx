import { memo, useState } from "react";
import type { PipelineInfo, ProjectSummary } from "@progressd/client";
import { JobList } from "./JobList";
import { StartJob } from "./StartJob";

export const ProjectView = memo(function ProjectView({
  project,
  summary,
  pipelines,
  onAuthError,
}: {
  project: string;
  /** The project's counts from GET /api/v1/projects, when it has jobs. */
  summary?: ProjectSummary;
  pipelines: PipelineInfo[] | undefined;
  onAuthError: () => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const c = summary?.jobs;
  const total = c ? c.queued + c.running + c.succeeded + c.failed + c.canceled : 0;
  const active = c ? c.queued + c.running : 0;
  return (
    <section className="project-view" aria-labelledby="project-title">
      <div className="project-view__head">
        <div>
          <h1 id="project-title">{project}</h1>
          <p className="muted small">
            {total === 0 ? "No jobs yet" : `${total.toLocaleString()} job${total === 1 ? "" : "s"}, ${active.toLocaleString()} active`}
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
      <JobList project={project} counts={c} onAuthError={onAuthError} />
    </section>
  );
});
