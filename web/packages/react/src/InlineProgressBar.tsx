import { useInsertionEffect, type CSSProperties } from "react";
import { isTerminal, type JobSnapshot } from "@progressd/client";
import { useChannelError, useJob } from "./hooks.js";
import { percent, progressSpoken, progressText } from "./format.js";

export interface InlineProgressBarProps {
  jobId: string;
  /** Accessible name; default "Job <id>". Shown above the bar when showLabel. */
  label?: string;
  showLabel?: boolean;
  /** Subscribe to the job (default true); false when a project subscription already brings it. */
  watch?: boolean;
  className?: string;
  style?: CSSProperties;
}

/** The bar's stylesheet, injected once. Its colours are --pd-* variables set at zero specificity (:where), so any rule of the page overrides them. */
export const INLINE_PROGRESS_BAR_CSS = `
:where(.pd-bar){--pd-track:#e5e9f0;--pd-fill:#3b82f6;--pd-done:#16a34a;--pd-failed:#dc2626;--pd-canceled:#8a94a6;--pd-text:#52606d}
.pd-bar{display:grid;gap:4px;font:inherit;min-width:8rem}
.pd-bar__head{display:flex;justify-content:space-between;gap:.75rem;font-size:.8125rem;line-height:1.3;color:var(--pd-text)}
.pd-bar__label{font-weight:600;color:inherit;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.pd-bar__text{font-variant-numeric:tabular-nums;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;min-width:0}
.pd-bar__track{position:relative;height:8px;border-radius:999px;background:var(--pd-track);overflow:hidden}
.pd-bar__fill{position:absolute;inset:0;transform-origin:left center;background:var(--pd-fill);border-radius:inherit;transition:transform .25s linear}
.pd-bar[data-state=succeeded] .pd-bar__fill{background:var(--pd-done)}
.pd-bar[data-state=failed] .pd-bar__fill{background:var(--pd-failed)}
.pd-bar[data-state=canceled] .pd-bar__fill{background:var(--pd-canceled)}
.pd-bar[data-state=failed] .pd-bar__text{color:var(--pd-failed)}
.pd-bar[data-state=succeeded] .pd-bar__text{color:var(--pd-done)}
.pd-bar[data-state=unknown] .pd-bar__fill,.pd-bar[data-state=queued] .pd-bar__fill{
  width:30%;opacity:.35;animation:pd-bar-wait 1.4s ease-in-out infinite}
@keyframes pd-bar-wait{0%{transform:translateX(-100%)}100%{transform:translateX(334%)}}
.pd-sr{position:absolute!important;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
@media (prefers-reduced-motion:reduce){.pd-bar__fill{transition:none;animation:none!important}}
`;

const STYLE_ID = "progressd-inline-progress-bar";

function useBarStyles(): void {
  useInsertionEffect(() => {
    if (typeof document === "undefined" || document.getElementById(STYLE_ID)) return;
    const el = document.createElement("style");
    el.id = STYLE_ID;
    el.textContent = INLINE_PROGRESS_BAR_CSS;
    document.head.appendChild(el);
  }, []);
}

/**
 * A live, accessible progress bar for one job: stage, percent and ETA
 * while it runs, and a clear terminal state (succeeded; failed with its
 * error; canceled).
 */
export function InlineProgressBar({ jobId, label, showLabel = false, watch = true, className, style }: InlineProgressBarProps) {
  useBarStyles();
  const job = useJob(jobId, { watch });
  const error = useChannelError(watch ? "job:" + jobId : null);
  const name = label ?? `Job ${jobId}`;
  return <Bar job={job} name={name} showLabel={showLabel} missing={error ? error.message : undefined} className={className} style={style} />;
}

interface BarProps {
  job: JobSnapshot | undefined;
  name: string;
  showLabel: boolean;
  missing?: string;
  className?: string;
  style?: CSSProperties;
}

function Bar({ job, name, showLabel, missing, className, style }: BarProps) {
  const state = job?.state ?? "unknown";
  const pct = job ? percent(job) : 0;
  const text = job ? progressText(job) : missing ? "unavailable" : "waiting…";
  const spoken = job ? progressSpoken(job) : missing ? `Unavailable: ${missing}` : "Waiting for progress";
  // An unknown or queued job has no value yet: an indeterminate bar (no aria-valuenow).
  const determinate = !!job && job.state !== "queued";
  return (
    <div className={"pd-bar" + (className ? " " + className : "")} style={style} data-state={state} data-job-id={job?.job_id}>
      <div className="pd-bar__head">
        {showLabel && <span className="pd-bar__label">{name}</span>}
        <span className="pd-bar__text" title={job?.error ?? missing ?? undefined} aria-hidden="true">
          {text}
        </span>
      </div>
      <div
        className="pd-bar__track"
        role="progressbar"
        aria-label={name}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={determinate ? pct : undefined}
        aria-valuetext={spoken}
        aria-busy={job ? !isTerminal(job.state) : true}
      >
        <div className="pd-bar__fill" style={{ transform: `scaleX(${determinate ? pct / 100 : 1})` }} />
      </div>
      {/* Announce state changes, not every percent. */}
      <span className="pd-sr" aria-live="polite">
        {job && isTerminal(job.state) ? spoken : ""}
      </span>
    </div>
  );
}

export { Bar as ProgressBarView };
