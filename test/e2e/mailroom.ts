/** A real Mailroom process for the browser tests: its own port, data folder and SQLite database. */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { type MailroomProcess, spawnMailroom } from "../helpers/process.js";

export const ADMIN_EMAIL = "admin@example.com";
export const ADMIN_PASSWORD = "correct horse battery staple";

/** A port the OS says is free now (Mailroom's public URL must name it before it starts). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface E2eMailroom {
  url: string;
  process: MailroomProcess;
  dataDir: string;
  /** Calls the API with an API token. */
  api(method: string, route: string, token: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  stop(): Promise<void>;
}

export async function startMailroom(env: Record<string, string> = {}): Promise<E2eMailroom> {
  if (!existsSync(path.resolve("web/dist/index.html"))) {
    throw new Error("The admin UI is not built (web/dist/index.html is missing): run 'npm run build:web'.");
  }
  const dataDir = mkdtempSync(path.join(tmpdir(), "mailroom-e2e-"));
  // A caller that needs the port first (for a public URL on a host name) passes MAILROOM_PORT.
  const port = env.MAILROOM_PORT ? Number(env.MAILROOM_PORT) : await freePort();
  // 127.0.0.1 as in a browser's address bar; the OAuth issuer listens there too.
  const url = `http://127.0.0.1:${port}`;
  const child = await spawnMailroom({
    MAILROOM_PORT: String(port),
    MAILROOM_PUBLIC_URL: url,
    MAILROOM_DATA_DIR: dataDir,
    MAILROOM_ADMIN_EMAIL: ADMIN_EMAIL,
    MAILROOM_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MAILROOM_POLL_MS: "100",
    DATABASE_URL: "",
    MAILROOM_SECRET_KEY: "",
    ...env,
  });
  return {
    url,
    process: child,
    dataDir,
    async api(method, route, token, body) {
      const response = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, json: text ? JSON.parse(text) : null };
    },
    async stop() {
      child.child.kill("SIGTERM");
      await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.child.exitCode === null) child.child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
