// The pack test (`npm run test:pack`, run by scripts/test.sh): packs
// @progressd/client and @progressd/react as `npm publish` would, installs
// both tarballs into a fresh app in a temporary folder (react, react-dom,
// @types/react from npm's cache: `npm ci` here put them there), then, as
// that app, imports them in Node, renders a component with react-dom/server,
// and type-checks a TSX file with tsc under both "bundler" and "nodenext"
// module resolution. It ends by printing each package's size as an app
// ships it: the entry bundled and minified (react external), then gzipped.
// Nothing here reaches a server: it proves the packages, not progressd.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "vite";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const tmp = mkdtempSync(join(tmpdir(), "progressd-pack-"));
const keep = process.env.PROGRESSD_KEEP_PACK === "1";
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function run(cmd, args, cwd) {
  execFileSync(cmd, args, { cwd, stdio: ["ignore", "inherit", "inherit"] });
}

/** The exact version web/package-lock.json installed, so npm's cache has it. */
function locked(name) {
  const lock = JSON.parse(readFileSync(join(web, "package-lock.json"), "utf8"));
  const v = lock.packages[`node_modules/${name}`]?.version;
  if (!v) throw new Error(`${name} is not in web/package-lock.json`);
  return v;
}

/** The size an app pays for `entry`: bundled from the installed package, minified, gzipped. */
async function gzippedSize(app, name, entry) {
  const file = join(app, `size-${name}.mjs`);
  writeFileSync(file, `export * from ${JSON.stringify(entry)};\n`);
  const res = await build({
    root: app,
    configFile: false,
    logLevel: "silent",
    build: {
      write: false,
      minify: true,
      lib: { entry: file, formats: ["es"], fileName: name },
      rollupOptions: { external: [/^react($|\/)/, /^react-dom($|\/)/, /^node:/, ...(name === "react" ? [/^@progressd\/client/] : [])] },
    },
  });
  const outputs = (Array.isArray(res) ? res : [res]).flatMap((r) => r.output);
  const bytes = outputs.filter((o) => o.type === "chunk").reduce((n, o) => n + gzipSync(o.code, { level: 9 }).length, 0);
  return (bytes / 1024).toFixed(1);
}

// What the tarballs must hold, as an app imports it.
const SIZED = [
  ["client", "@progressd/client"],
  ["client-node", "@progressd/client/node"],
  ["react", "@progressd/react"],
];

const CHECK_MJS = `
import assert from "node:assert/strict";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import * as client from "@progressd/client";
import * as react from "@progressd/react";

for (const name of ["ProgressClient", "getProgressClient", "JobStore", "LogStore", "Api", "ApiError", "CLOSE_CODES", "isTerminal"]) {
  assert.ok(client[name], "@progressd/client exports " + name);
}
for (const name of ["ProgressProvider", "useJob", "useProjectJobs", "useJobChildren", "useJobLogs", "useTaggedJobs", "InlineProgressBar", "useConnectionState"]) {
  assert.equal(typeof react[name], "function", "@progressd/react exports " + name);
}
// One @progressd/client in the app: the react package's is the app's.
const store = new client.JobStore();
store.accept({ job_id: "j1", project: "p", owner: "u", state: "running", progress: 0.5, seq: 1, created_at: "2026-01-01T00:00:00Z" });
assert.equal(store.get("j1").progress, 0.5);
const c = new client.ProgressClient({ server: "http://127.0.0.1:9" });
c.store.accept({ job_id: "j1", project: "p", owner: "u", state: "running", progress: 0.25, seq: 1, created_at: "2026-01-01T00:00:00Z" });
const html = renderToString(
  createElement(react.ProgressProvider, { client: c }, createElement(react.InlineProgressBar, { jobId: "j1", watch: false, showLabel: true, label: "Import" })),
);
assert.match(html, /Import/);
assert.match(html, /25%/);
await c.dispose();

// The Node entry: a client, its reporter, and a token the Python SDK would mint byte for byte.
const node = await import("@progressd/client/node");
for (const name of ["Client", "Reporter", "mintToken", "JobCanceledError", "ConnectionFailedError"]) {
  assert.ok(node[name], "@progressd/client/node exports " + name);
}
assert.equal(
  node.mintToken("0123456789abcdef0123", "alice", { now: 1 }),
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MSwiZXhwIjozNjAxfQ.FWhnncaPRe5idg0Sp7R1WrigsRYpXE5bvKwBax5QgeI",
);
const nc = new node.Client({ server: "http://127.0.0.1:9" });
assert.equal(nc.server, "http://127.0.0.1:9");
await nc.close();
console.log("pack: both packages import and render in Node; @progressd/client/node works");
`;

const APP_TSX = `
import { ProgressClient, isTerminal, type JobSnapshot, type LogLine, type LogsWatch } from "@progressd/client";
import { Client, mintToken, type Job } from "@progressd/client/node";
import { InlineProgressBar, ProgressProvider, useJob, useJobChildren, useJobLogs, useProjectJobs, useTaggedJobs } from "@progressd/react";

function Jobs({ project }: { project: string }) {
  const jobs: readonly JobSnapshot[] = useProjectJobs(project);
  return <ul>{jobs.map((j) => <li key={j.job_id}><InlineProgressBar jobId={j.job_id} watch={false} /></li>)}</ul>;
}

function Detail({ id }: { id: string }) {
  const job = useJob(id);
  const children = useJobChildren(id);
  const tagged = useTaggedJobs("customer-42");
  const done: boolean = isTerminal(job?.state);
  const { lines, truncated } = useJobLogs(id, { limit: 200 });
  return (
    <div>
      <p>{job?.progress ?? 0} {children.length} {tagged.length} {String(done)}</p>
      <ol data-truncated={truncated}>{lines.map((l: LogLine) => <li key={l.n}>{l.stream}: {l.text}</li>)}</ol>
    </div>
  );
}

export function App({ token }: { token: string }) {
  return (
    <ProgressProvider server="https://progress.example.com" token={token}>
      <Jobs project="p1" />
      <Detail id="01JD" />
    </ProgressProvider>
  );
}

export async function worker(secret: string): Promise<void> {
  const client = new Client({ server: "http://127.0.0.1:8000", token: mintToken(secret, "worker", { scope: ["job:1"] }) });
  const job: Job = await client.createJob({ project: "imports", stages: [{ name: "load" }] });
  for (let i = 0; i < 10; i++) job.report({ stage: "load", current: i, total: 10 });
  job.log("done");
  await job.succeed({ rows: 10 });
  const browserToken: string = mintToken(secret, "alice", { scope: ["job:" + job.id, "logs:" + job.id], readOnly: true, ttl: 900 });
  await client.close();
  void browserToken;
}

export const standalone: ProgressClient = new ProgressClient({ server: "https://progress.example.com" });
const tail: LogsWatch = standalone.logs("01JD", { limit: 50 });
tail.subscribe(() => console.log(tail.get().lines.at(-1)?.text));
`;

async function main() {
  try {
    // `npm pack` runs each package's prepack: tsc writes its dist/.
    const out = execFileSync(npm, ["pack", "--json", "--loglevel=error", "--pack-destination", tmp, "-w", "@progressd/client", "-w", "@progressd/react"], {
      cwd: web,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const packed = JSON.parse(out.slice(out.indexOf("[")));
    const tarball = (name) => {
      const p = packed.find((x) => x.name === name);
      if (!p) throw new Error(`npm pack made no tarball for ${name}`);
      for (const f of ["package.json", "dist/index.js", "dist/index.d.ts", "README.md"]) {
        if (!p.files.some((x) => x.path === f)) throw new Error(`${p.filename} lacks ${f}`);
      }
      if (p.files.some((x) => x.path.startsWith("src/"))) throw new Error(`${p.filename} ships src/`);
      return join(tmp, p.filename);
    };

    const app = join(tmp, "app");
    mkdirSync(app);
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify(
        {
          name: "pack-test-app",
          private: true,
          type: "module",
          dependencies: {
            "@progressd/client": "file:" + tarball("@progressd/client"),
            "@progressd/react": "file:" + tarball("@progressd/react"),
            react: locked("react"),
            "react-dom": locked("react-dom"),
          },
          devDependencies: { "@types/react": locked("@types/react"), "@types/node": locked("@types/node") },
        },
        null,
        2,
      ),
    );
    run(npm, ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], app);

    writeFileSync(join(app, "check.mjs"), CHECK_MJS);
    run(process.execPath, ["check.mjs"], app);

    writeFileSync(join(app, "app.tsx"), APP_TSX);
    const tsc = join(web, "node_modules", "typescript", "bin", "tsc");
    for (const resolution of ["bundler", "nodenext"]) {
      const module = resolution === "bundler" ? "esnext" : "nodenext";
      run(process.execPath, [tsc, "--noEmit", "--strict", "--jsx", "react-jsx", "--target", "es2022", "--lib", "es2023,dom",
        "--module", module, "--moduleResolution", resolution, "--types", "node", "app.tsx"], app);
      console.log(`pack: app.tsx type-checks (moduleResolution ${resolution})`);
    }

    for (const [name, entry] of SIZED) {
      const kb = await gzippedSize(app, name, entry);
      console.log(`pack: ${entry}: ${kb} KiB minified + gzipped (react external)`);
    }
    console.log("pack: ok");
  } finally {
    if (keep) console.log("pack: kept", tmp);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
