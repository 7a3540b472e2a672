import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { type Config, loadConfig } from "../../src/config.js";

export type Dialect = "sqlite" | "postgres";

/** The server that test databases are created on; CI starts it (see .ci/run). */
export const PG_ADMIN_URL = process.env.MAILROOM_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

let pgCheck: Promise<string | null> | undefined;

/** null when PostgreSQL answers, otherwise why not. */
export function postgresUnavailableReason(): Promise<string | null> {
  pgCheck ??= (async () => {
    const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query("select 1");
      return null;
    } catch (error) {
      return `PostgreSQL at ${PG_ADMIN_URL} is not reachable (${(error as Error).message})`;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return pgCheck;
}

/**
 * The dialects a storage test runs on. In CI PostgreSQL is required: if it is missing the
 * test fails rather than skips. Locally its absence is printed, never silent.
 */
export async function availableDialects(): Promise<Dialect[]> {
  const reason = await postgresUnavailableReason();
  if (!reason) return ["sqlite", "postgres"];
  if (process.env.CI) throw new Error(`CI needs PostgreSQL: ${reason}`);
  console.warn(`[skip] PostgreSQL tests skipped: ${reason}. Start it to run them.`);
  return ["sqlite"];
}

export function tempDir(prefix = "mailroom-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A fresh, empty database of the dialect, and a config pointing at it. */
export async function freshConfig(
  dialect: Dialect,
  env: Record<string, string> = {},
): Promise<{ config: Config; drop(): Promise<void> }> {
  const dataDir = tempDir();
  let databaseUrl: string | undefined;
  let dbName: string | undefined;
  if (dialect === "postgres") {
    dbName = `mailroom_t_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();
  }
  const config = loadConfig({
    MAILROOM_DATA_DIR: dataDir,
    MAILROOM_PORT: "0",
    MAILROOM_SMTP_PORT: "0",
    MAILROOM_PUBLIC_URL: "http://localhost:8025",
    MAILROOM_LOG_LEVEL: "silent",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...env,
  });
  return {
    config,
    async drop() {
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (dbName) {
        const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
        await admin.connect();
        await admin.query(`drop database if exists ${dbName} with (force)`);
        await admin.end();
      }
    },
  };
}
