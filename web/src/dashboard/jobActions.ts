// Cancel and delete, for one job (detail page) or many (the list's bulk
// actions), and the jobs this page deleted (hidden from every list: the
// server sends nothing when a job is deleted).

import { useSyncExternalStore } from "react";
import { ApiError, isTerminal, type JobSnapshot, type ProgressClient } from "@progressd/client";

const deleted = new Set<string>();
let deletedVersion = 0;
const listeners = new Set<() => void>();

function markDeleted(id: string): void {
  deleted.add(id);
  deletedVersion++;
  for (const l of [...listeners]) l();
}

/** Whether this page deleted any job. */
export function anyDeleted(): boolean {
  return deleted.size > 0;
}

/** Whether this page deleted the job. */
export function isDeleted(id: string): boolean {
  return deleted.has(id);
}

/** Re-renders when a job is deleted; returns a number that changes then. */
export function useDeletedVersion(): number {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => deletedVersion,
  );
}

export async function cancelJob(client: ProgressClient, id: string): Promise<void> {
  client.store.accept(await client.api.cancelJob(id));
}

/** DELETE /api/v1/jobs/{id}: a finished job and its log lines (SPEC "Lifecycle"). */
export async function deleteJob(client: ProgressClient, id: string): Promise<void> {
  try {
    await client.api.request("DELETE", "/api/v1/jobs/" + encodeURIComponent(id));
  } catch (e) {
    // Already gone (another tab, the retention sweep): what was asked is done.
    if (!(e instanceof ApiError && e.status === 404)) throw e;
  }
  markDeleted(id);
}

export interface BulkResult {
  done: number;
  failed: { id: string; message: string }[];
}

/**
 * Runs action on every job, a few at a time (a thousand selected jobs must
 * not open a thousand requests at once), and says which failed and why.
 */
export async function runBulk(ids: readonly string[], action: (id: string) => Promise<void>, parallel = 4): Promise<BulkResult> {
  const out: BulkResult = { done: 0, failed: [] };
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      try {
        await action(id);
        out.done++;
      } catch (e) {
        out.failed.push({ id, message: e instanceof Error ? e.message : String(e) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, ids.length) }, worker));
  return out;
}

/** The selected jobs an action applies to: cancel takes unfinished ones, delete finished ones. */
export function actionable(jobs: readonly JobSnapshot[], action: "cancel" | "delete"): string[] {
  return jobs.filter((j) => (action === "cancel") !== isTerminal(j.state)).map((j) => j.job_id);
}

/** The command that follows this job in a terminal, for this server. */
export function watchCommand(id: string, origin: string, withToken: boolean): string {
  let cmd = `progressd watch ${id}`;
  if (origin && origin !== "http://127.0.0.1:8000") cmd += ` --server ${origin}`;
  if (withToken) cmd += ` --token "$PROGRESSD_TOKEN"`;
  return cmd;
}
