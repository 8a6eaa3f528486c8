import { defaultClientConditions, defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The dashboard (index.html → src/dashboard) builds into dist/, which the
// Go binary embeds; scripts/build.mjs adds dist/docs (Swagger UI).
export default defineConfig({
  plugins: [react()],
  base: "/",
  // The dashboard imports @progressd/client and @progressd/react by name,
  // like any app; this condition of their exports maps points at their
  // TypeScript sources, so the dashboard and the tests need no package build
  // first and `npm run dev` reloads on a change in them.
  resolve: { conditions: ["progressd-source", ...defaultClientConditions] },
  ssr: { resolve: { conditions: ["progressd-source", ...defaultServerConditions] } },
  // `npm run dev`: the dashboard with hot reload, talking to a running
  // progressd (PROGRESSD_SERVER, default the CLI's default address) that
  // lists this page's origin: `progressd serve --allowed-origins
  // http://localhost:5173`. Host is rewritten to the server's (a server in
  // single-user mode serves only its own address: DNS rebinding), while the
  // browser's Origin and Sec-Fetch-Site go through unchanged, so a page on
  // another site still cannot write through this proxy.
  server: {
    proxy: Object.fromEntries(
      ["/api", "/ws", "/openapi.json", "/metrics", "/healthz", "/readyz"].map((p) => [
        p,
        { target: process.env.PROGRESSD_SERVER ?? "http://127.0.0.1:8000", ws: p === "/ws", changeOrigin: true },
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
