// Starts real progressd servers for the network tests: builds the binary
// from this repo (go build ./cmd/progressd; PROGRESSD_TEST_BIN names a
// prebuilt one instead), then runs `progressd serve` on
// free loopback ports with a temporary data dir: one in single-user mode,
// one with --auth-secret. Nothing about the server is faked.
// Every endpoint is expected to be there: a test of /ws or SSE fails,
// never skips, when the server does not serve it.
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

  project.provide("bin", bin);
  project.provide("server", open.url);
  project.provide("authServer", authed.url);
  project.provide("authSecret", AUTH_SECRET);

  return async () => {
    await Promise.all([open.stop(), authed.stop()]);
    rmSync(tmp, { recursive: true, force: true });
  };
}
