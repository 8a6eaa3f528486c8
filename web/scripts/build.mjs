// Builds web/dist, the files the progressd binary embeds: the dashboard
// (vite: index.html + hashed assets/) and the API docs page (Swagger UI
// from node_modules, no CDN) in dist/docs. Run with `npm run build`; CI runs
// it and fails if the committed dist differs, so the output must depend on
// the sources alone: vite's content hashes do, and nothing here adds a
// timestamp.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const swagger = join(root, "node_modules", "swagger-ui-dist");

// Start from nothing, so assets of an older build do not linger.
rmSync(dist, { recursive: true, force: true });
await build({ root, configFile: join(root, "vite.config.ts"), logLevel: "warn" });

mkdirSync(join(dist, "docs"), { recursive: true });
cpSync(join(root, "src", "docs"), join(dist, "docs"), { recursive: true });
for (const f of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]) {
  cpSync(join(swagger, f), join(dist, "docs", f === "LICENSE" ? "swagger-ui-LICENSE" : f));
}
console.log("built", dist);
