import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built with `vite build web` (npm run build:web) into web/dist, which Mailroom serves at `/`.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline scripts: the server's Content-Security-Policy allows scripts from 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: "es2022",
  },
  server: {
    // `npx vite web` while developing, with Mailroom running on its default port.
    proxy: { "/api": "http://127.0.0.1:8025", "/oauth": "http://127.0.0.1:8025" },
  },
});
