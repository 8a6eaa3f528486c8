import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The dashboard (index.html → src/dashboard) builds into dist/, which the
// Go binary embeds; scripts/build.mjs adds dist/docs (Swagger UI).
export default defineConfig({
  plugins: [react()],
  base: "/",
  // `npm run dev`: the dashboard with hot reload, talking to a running
  // progressd (PROGRESSD_SERVER, default the CLI's default address). The
  // Host header is kept, so the browser's Origin matches it and the server's
  // same-origin WebSocket check passes.
  server: {
    proxy: Object.fromEntries(
      ["/api", "/ws", "/openapi.json", "/metrics", "/healthz", "/readyz"].map((p) => [
        p,
        { target: process.env.PROGRESSD_SERVER ?? "http://127.0.0.1:8000", ws: p === "/ws" },
      ]),
    ),
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.{ts,tsx}"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 20_000,
    hookTimeout: 120_000,
    restoreMocks: true,
  },
});
