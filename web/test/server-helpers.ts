// Helpers for tests against the real progressd servers of global-setup.ts.
import { execFileSync } from "node:child_process";
import { inject } from "vitest";

export const server = () => inject("server");
export const authServer = () => inject("authServer");

/** A token minted by the server's own `progressd token` command. */
export function mintToken(sub: string, opts: { admin?: boolean; ttl?: string } = {}): string {
  const args = ["token", "--auth-secret", inject("authSecret"), "--sub", sub, "--ttl", opts.ttl ?? "1h"];
  if (opts.admin) args.push("--admin");
  return execFileSync(inject("bin"), args, { encoding: "utf8" }).split("\n")[0]!.trim();
}

/** The value of a Prometheus series, e.g. progressd_gateway_connections{transport="ws"}. */
export async function metric(base: string, series: string): Promise<number> {
  const text = await (await fetch(base + "/metrics")).text();
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  throw new Error(`metric ${series} not found`);
}

export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ": " + String(last) : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function post<T = Record<string, unknown>>(base: string, path: string, body: unknown, token?: string): Promise<T> {
  const r = await fetch(base + path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: "Bearer " + token } : {}) },
    body: JSON.stringify(body),
  });
  const data = (await r.json()) as T;
  if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(data)}`);
  return data;
}

let n = 0;
/** A project name no other test uses. */
export function uniqueProject(prefix = "web"): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++n}`;
}
