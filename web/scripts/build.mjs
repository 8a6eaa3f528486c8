// Builds web/dist, the files the progressd binary embeds: the start page and
// the API docs page (Swagger UI from node_modules, no CDN). Run with `npm run build`; CI runs it
// and fails if the committed dist differs.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const swagger = join(root, "node_modules", "swagger-ui-dist");

rmSync(join(dist, "docs"), { recursive: true, force: true });
mkdirSync(join(dist, "docs"), { recursive: true });
cpSync(join(root, "src", "docs"), join(dist, "docs"), { recursive: true });
for (const f of ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]) {
  cpSync(join(swagger, f), join(dist, "docs", f === "LICENSE" ? "swagger-ui-LICENSE" : f));
}
cpSync(join(root, "src", "index.html"), join(dist, "index.html"));
console.log("built", dist);
