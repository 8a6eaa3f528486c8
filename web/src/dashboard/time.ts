// Times as people read them: a date and time, and how long ago.

import { useSyncExternalStore } from "react";

/** "3 min ago", "just now", "2 d ago"; "in 12 s" for a time still to come. */
export function ago(iso: string | null | undefined, now: number): string {
  const t = iso ? Date.parse(iso) : NaN;
  if (Number.isNaN(t)) return "";
  const s = Math.round((now - t) / 1000);
  if (s < 0) return "in " + span(-s);
  return s < 5 ? "just now" : span(s) + " ago";
}

/**
 * "45 s", "3 min", "2 h": a span of whole seconds, cut to its largest unit
 * as "3 min ago" is, so a job's "running for" agrees with its "started … ago".
 */
export function span(s: number): string {
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
}

/** "2026-12-03 07:55:04": the date and time in the reader's time zone, sortable and unambiguous. */
export function dateTime(iso: string | null | undefined): string {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "2026-12-03 07:55:04 (3 min ago)". */
export function when(iso: string | null | undefined, now: number): string {
  const d = dateTime(iso);
  return d ? `${d} (${ago(iso, now)})` : "—";
}

/**
 * The time now, ticking every 5 s for relative times: one timer for the
 * whole page however many rows show a time.
 */
export function useNow(): number {
  return useSyncExternalStore(subscribeClock, () => clockNow);
}

let clockNow = Date.now();
const clockListeners = new Set<() => void>();
let clockTimer: ReturnType<typeof setInterval> | undefined;

function subscribeClock(l: () => void): () => void {
  clockListeners.add(l);
  if (!clockTimer) {
    clockNow = Date.now();
    clockTimer = setInterval(() => {
      clockNow = Date.now();
      for (const f of [...clockListeners]) f();
    }, 5000);
  }
  return () => {
    clockListeners.delete(l);
    if (clockListeners.size === 0 && clockTimer) {
      clearInterval(clockTimer);
      clockTimer = undefined;
    }
  };
}
