// Starts real progressd servers for the network tests: builds the binary
// from this repo (go build ./cmd/progressd; PROGRESSD_TEST_BIN names a
// prebuilt one instead), then runs `progressd serve` on
// free loopback ports with a temporary data dir: one in single-user mode,
// one with --auth-secret. Nothing about the server is faked.
//
// The WebSocket endpoint (/ws) and the SSE endpoints are probed: tests that
// need one that is not wired yet are skipped with a note, unless
// PROGRESSD_REQUIRE_WS=1 or CI=true, where they fail instead.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const JSDOM_ORIGIN = "http://localhost:3000"; // vitest's jsdom page URL
export const AUTH_SECRET = "web-test-secret-0123456789";

declare module "vitest" {
  export interface ProvidedContext {
    bin: string;
    server: string;
    authServer: string;
    authSecret: string;
    wsWired: boolean;
    sseWired: boolean;
    demoPipeline: boolean;
    requireWs: boolean;
  }
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? res(a.port) : rej(new Error("no port"))));
    });
  });
}

export interface RunningServer {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startServer(bin: string, dataDir: string, extra: string[] = [], port?: number): Promise<RunningServer> {
  port ??= await freePort();
  const addr = `127.0.0.1:${port}`;
  const proc = spawn(bin, ["serve", "--addr", addr, "--data-dir", dataDir, "--log-level", "warn", "--allowed-origins", JSDOM_ORIGIN, ...extra], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const url = `http://${addr}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`progressd serve exited with ${proc.exitCode}`);
    try {
      const r = await fetch(url + "/healthz");
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error("progressd serve did not answer /healthz within 30 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    stop: () =>
      new Promise<void>((res) => {
        if (proc.exitCode !== null) return res();
        const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
        proc.once("exit", () => {
          clearTimeout(t);
          res();
        });
        proc.kill("SIGTERM");
      }),
  };
}

async function probe(url: string, init?: RequestInit): Promise<number> {
  const ctrl = new AbortController();
  try {
    const r = await fetch(url, { ...init, signal: ctrl.signal });
    return r.status;
  } catch {
    return 0;
  } finally {
    ctrl.abort();
  }
}

export default async function setup(project: TestProject) {
  const tmp = mkdtempSync(join(tmpdir(), "progressd-web-test-"));
  // PROGRESSD_TEST_BIN: a binary built already (CI cache, or another branch's server).
  let bin = process.env.PROGRESSD_TEST_BIN ?? "";
  if (!bin) {
    bin = join(tmp, "progressd");
    execFileSync("go", ["build", "-o", bin, "./cmd/progressd"], { cwd: repo, stdio: "inherit" });
  }
  const open = await startServer(bin, join(tmp, "open"));
  const authed = await startServer(bin, join(tmp, "auth"), ["--auth-secret", AUTH_SECRET]);

  // A plain GET of /ws is refused by a WebSocket handler (400/426), and 404 while none is mounted.
  const wsStatus = await probe(open.url + "/ws");
  const sseStatus = await probe(open.url + "/api/v1/events?channel=project:probe");
  const demo = await probe(open.url + "/api/v1/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ project: "probe", pipeline: "demo" }),
  });
  const requireWs = process.env.PROGRESSD_REQUIRE_WS === "1" || process.env.CI === "true";
  const wsWired = wsStatus !== 404 && wsStatus !== 0 && wsStatus !== 405;
  const sseWired = sseStatus === 200;
  if (!wsWired || !sseWired || demo !== 201) {
    console.warn(
      `\n[progressd web tests] server endpoints: /ws ${wsWired ? "wired" : `NOT wired (GET /ws → ${wsStatus})`}, ` +
        `SSE ${sseWired ? "wired" : `NOT wired (→ ${sseStatus})`}, demo pipeline ${demo === 201 ? "present" : `missing (→ ${demo})`}. ` +
        (requireWs ? "Tests that need them will FAIL (CI or PROGRESSD_REQUIRE_WS=1)." : "Tests that need them are skipped.") +
        "\n",
    );
  }
  project.provide("bin", bin);
  project.provide("server", open.url);
  project.provide("authServer", authed.url);
  project.provide("authSecret", AUTH_SECRET);
  project.provide("wsWired", wsWired);
  project.provide("sseWired", sseWired);
  project.provide("demoPipeline", demo === 201);
  project.provide("requireWs", requireWs);

  return async () => {
    await Promise.all([open.stop(), authed.stop()]);
    rmSync(tmp, { recursive: true, force: true });
  };
}
