// What the dashboard remembers in localStorage: the token, the projects a
// person added by hand and the colour theme. All are shared by the tabs of
// this origin.

import { useCallback, useSyncExternalStore } from "react";

const TOKEN_KEY = "progressd.token";
const PROJECTS_KEY = "progressd.projects";
const THEME_KEY = "progressd.theme";

function read(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function write(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* private mode: kept for this page only */
  }
  memory.set(key, value);
  for (const l of [...listeners]) l();
}

const memory = new Map<string, string | null>();
const listeners = new Set<() => void>();
if (typeof window !== "undefined") {
  // Another tab changed it.
  window.addEventListener("storage", (e) => {
    if (e.key === TOKEN_KEY || e.key === PROJECTS_KEY || e.key === THEME_KEY || e.key === null) {
      memory.delete(e.key ?? TOKEN_KEY);
      if (e.key === null) memory.clear();
      for (const l of [...listeners]) l();
    }
  });
}

function get(key: string): string | null {
  return memory.has(key) ? memory.get(key)! : read(key);
}

function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/** ?token=… in the address: remember it and take it out of the address bar (and history). */
export function takeTokenFromUrl(): void {
  const url = new URL(location.href);
  const t = url.searchParams.get("token");
  if (t === null) return;
  write(TOKEN_KEY, t.trim() || null);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

/** The token remembered, outside React (the script's first requests). */
export function readToken(): string | null {
  return get(TOKEN_KEY);
}

export function useToken(): [string | null, (t: string | null) => void] {
  const token = useSyncExternalStore(subscribe, () => get(TOKEN_KEY));
  const set = useCallback((t: string | null) => write(TOKEN_KEY, t && t.trim() ? t.trim() : null), []);
  return [token, set];
}

let projectsCache: { raw: string | null; list: string[] } = { raw: null, list: [] };
function projects(): string[] {
  const raw = get(PROJECTS_KEY);
  if (raw !== projectsCache.raw) {
    let list: string[] = [];
    try {
      const v = JSON.parse(raw ?? "[]") as unknown;
      if (Array.isArray(v)) list = v.filter((x): x is string => typeof x === "string");
    } catch {
      /* ignore */
    }
    projectsCache = { raw, list };
  }
  return projectsCache.list;
}

export function useSavedProjects(): [string[], (list: string[]) => void] {
  const list = useSyncExternalStore(subscribe, projects);
  const set = useCallback((l: string[]) => write(PROJECTS_KEY, JSON.stringify([...new Set(l)])), []);
  return [list, set];
}

/**
 * The selected project lives in the address (#/p/<name>), so it can be
 * shared and bookmarked; the list's filters follow it (#/p/<name>?state=…).
 */
export function projectFromHash(): string | null {
  const m = /^#\/p\/([^?]+)/.exec(location.hash);
  if (m) {
    try {
      return decodeURIComponent(m[1]!);
    } catch {
      return null;
    }
  }
  return new URL(location.href).searchParams.get("project");
}

export function useHashProject(): [string | null, (p: string) => void] {
  const sub = useCallback((l: () => void) => {
    window.addEventListener("hashchange", l);
    return () => window.removeEventListener("hashchange", l);
  }, []);
  const p = useSyncExternalStore(sub, projectFromHash);
  const set = useCallback((name: string) => {
    location.hash = "#/p/" + encodeURIComponent(name);
  }, []);
  return [p, set];
}

/** The job open in the detail view (#/jobs/<id>), so it can be shared and reloaded. */
export function jobFromHash(): string | null {
  const m = /^#\/jobs\/(.+)$/.exec(location.hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]!);
  } catch {
    return null;
  }
}

export function useHashJob(): string | null {
  const sub = useCallback((l: () => void) => {
    window.addEventListener("hashchange", l);
    return () => window.removeEventListener("hashchange", l);
  }, []);
  return useSyncExternalStore(sub, jobFromHash);
}

/** auto follows the system's prefers-color-scheme; light and dark are a person's choice. */
export type ThemeChoice = "auto" | "light" | "dark";

export function themeChoice(): ThemeChoice {
  const v = get(THEME_KEY);
  return v === "light" || v === "dark" ? v : "auto";
}

export function useThemeChoice(): [ThemeChoice, (t: ThemeChoice) => void] {
  const t = useSyncExternalStore(subscribe, themeChoice);
  const set = useCallback((c: ThemeChoice) => write(THEME_KEY, c === "auto" ? null : c), []);
  return [t, set];
}

/** Called on every change of a setting (the theme follows it). */
export const onSettingsChange = subscribe;
