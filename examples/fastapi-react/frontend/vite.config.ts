import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The page calls its own backend at /api (same origin, through this proxy,
// so the session cookie just works) and progressd directly at the URL the
// backend's /api/session names: another origin, allowed by progressd's
// --allowed-origins.
const backend = `http://127.0.0.1:${process.env.API_PORT ?? "8001"}`;

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": backend } },
  preview: { proxy: { "/api": backend } },
});
