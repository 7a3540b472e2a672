import { SMTPServer } from "smtp-server";
import type { Config } from "../src/config.js";
import { freshConfig } from "../test/helpers/databases.js";

/** A sink that accepts every message and throws it away: the cheapest SMTP peer there is. */
export async function startSink(): Promise<{ port: number; count: () => number; close: () => Promise<void> }> {
  let received = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    size: 50 * 1024 * 1024,
    onData(stream, _session, done) {
      stream.on("data", () => {});
      stream.on("end", () => {
        received++;
        done();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.server.address() as { port: number }).port;
  return { port, count: () => received, close: () => new Promise((r) => server.close(() => r())) };
}

/** Runs the sink in a child process (see sink.ts). */
export async function startSinkProcess(): Promise<{ port: number; close: () => Promise<void> }> {
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, ["--import", "tsx", new URL("./sink.ts", import.meta.url).pathname], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const match = /port (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`sink exited ${code}`)));
  });
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        child.on("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Runs autocannon in a child process; resolves with its JSON result. */
export async function autocannon(args: string[]): Promise<{
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}> {
  const { spawn } = await import("node:child_process");
  const { createRequire } = await import("node:module");
  const bin = createRequire(import.meta.url).resolve("autocannon/autocannon.js");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "-j", ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    child.stdout.on("data", (d) => {
      text += d;
    });
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(text)) : reject(new Error(`autocannon exited ${code}`))));
  });
}

export type BenchDialect = "sqlite" | "postgres";

/** A config on a fresh database, SQLite in a temp folder or a new PostgreSQL database. */
export function benchConfig(
  dialect: BenchDialect,
  env: Record<string, string> = {},
): Promise<{ config: Config; drop: () => Promise<void> }> {
  return freshConfig(dialect, {
    MAILROOM_ADMIN_EMAIL: "bench@example.com",
    MAILROOM_ADMIN_PASSWORD: "bench-password-123",
    MAILROOM_POLL_MS: "20",
    ...env,
  });
}

/** One figure per line, `name value unit`, for scripts to read. */
export function report(name: string, value: number, unit: string): void {
  console.log(`${name} ${Number.isInteger(value) ? value : value.toFixed(2)} ${unit}`);
}

export function arg(name: string, fallback: string): string {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}
