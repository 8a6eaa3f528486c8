// Words and numbers for progress, shared by the bar and the dashboard.

import type { JobSnapshot, JobState } from "@progressd/client";

/** Whole percent, rounded down while running (99.6% is not done), 100 once succeeded. */
export function percent(job: Pick<JobSnapshot, "progress" | "state">): number {
  if (job.state === "succeeded") return 100;
  const p = Number.isFinite(job.progress) ? job.progress : 0;
  return Math.max(0, Math.min(100, Math.floor(p * 100)));
}

/** "12 s", "4 min", "1 h 5 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  const rm = m % 60;
  return rm ? `${h} h ${rm} min` : `${h} h`;
}

/** Spoken form: "about 12 seconds", "about 4 minutes". */
export function spokenDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 1) return "less than a second";
  if (s < 60) return `about ${s} second${s === 1 ? "" : "s"}`;
  const m = Math.round(s / 60);
  if (m < 60) return `about ${m} minute${m === 1 ? "" : "s"}`;
  const h = Math.round(m / 6) / 10;
  return `about ${h} hour${h === 1 ? "" : "s"}`;
}

export function hasEta(job: JobSnapshot): job is JobSnapshot & { eta_seconds: number } {
  return job.state === "running" && typeof job.eta_seconds === "number" && Number.isFinite(job.eta_seconds);
}

export const STATE_LABEL: Record<JobState, string> = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  canceled: "canceled",
};

/** What the bar says in words: "encode · 42% · 12 s left", "succeeded", "failed: …". */
export function progressText(job: JobSnapshot): string {
  const pct = percent(job);
  switch (job.state) {
    case "succeeded":
      return "succeeded";
    case "failed":
      return job.error ? `failed at ${pct}%: ${job.error}` : `failed at ${pct}%`;
    case "canceled":
      return `canceled at ${pct}%`;
    case "queued":
      return "queued";
    default: {
      const parts: string[] = [];
      if (job.stage) parts.push(job.stage);
      parts.push(`${pct}%`);
      if (hasEta(job)) parts.push(`${formatDuration(job.eta_seconds)} left`);
      return parts.join(" · ");
    }
  }
}

/** aria-valuetext: the same, said in full. */
export function progressSpoken(job: JobSnapshot): string {
  const pct = percent(job);
  switch (job.state) {
    case "succeeded":
      return "Succeeded, 100 percent";
    case "failed":
      return `Failed at ${pct} percent${job.error ? ": " + job.error : ""}`;
    case "canceled":
      return `Canceled at ${pct} percent`;
    case "queued":
      return "Queued, not started";
    default: {
      let s = `${pct} percent`;
      if (job.stage) s += `, stage ${job.stage}`;
      if (hasEta(job)) s += `, ${spokenDuration(job.eta_seconds)} left`;
      return s;
    }
  }
}
