import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";

/** web/dist, built by `npm run build:web`; the same two levels up from src/http and dist/http. */
export const WEB_DIST = fileURLToPath(new URL("../../web/dist", import.meta.url));

function filesUnder(dir: string, prefix = ""): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(path.join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`],
  );
}

/**
 * Serves the admin UI at `/`: its built files, and index.html for every other page path so
 * the browser's router can take over (a reload of /servers/abc works). /api and /oauth keep
 * their own 404s. Only files found in the folder are served, so no path can reach outside.
 */
export async function registerWebUi(app: FastifyInstance, dir = WEB_DIST): Promise<void> {
  if (!existsSync(path.join(dir, "index.html"))) {
    app.get("/", { schema: { hide: true } }, async (_request, reply) =>
      reply
        .status(503)
        .type("text/plain; charset=utf-8")
        .send("The admin UI is not built: run 'npm run build' (or 'npm run build:web'), then restart Mailroom."),
    );
    return;
  }
  let files = new Set(filesUnder(dir));
  let scannedAt = Date.now();
  // A rebuild while running changes the hashed names: look again, at most once a second.
  const known = (relative: string): boolean => {
    if (!files.has(relative) && Date.now() - scannedAt > 1000 && existsSync(dir)) {
      files = new Set(filesUnder(dir));
      scannedAt = Date.now();
    }
    return files.has(relative);
  };
  await app.register(fastifyStatic, { root: dir, serve: false });

  // The UI's pages are no part of the API: hidden from the OpenAPI document, which must not
  // depend on whether the UI was built (npm run check:api compares it with web/src/api-types.ts).
  app.get("/*", { schema: { hide: true } }, async (request, reply) => {
    const pathname = request.url.split("?")[0];
    if (pathname === "/api" || pathname.startsWith("/api/") || pathname.startsWith("/oauth/")) return reply.callNotFound();
    let relative: string;
    try {
      relative = decodeURIComponent(pathname).replace(/^\/+/, "");
    } catch {
      return reply.callNotFound();
    }
    if (relative !== "index.html" && known(relative)) {
      // Vite puts a content hash in every name under assets/: safe to keep for a year.
      const immutable = relative.startsWith("assets/");
      return reply.sendFile(relative, { maxAge: immutable ? 365 * 24 * 3600 * 1000 : 0, immutable, cacheControl: true });
    }
    // A missing asset is a 404; any other path is a page of the single-page app.
    if (/\.[a-z0-9]+$/i.test(relative)) return reply.callNotFound();
    reply.header("cache-control", "no-cache");
    return reply.sendFile("index.html", { cacheControl: false });
  });
}
