import fs from "node:fs/promises";
import path from "node:path";
import { type Kysely, sql } from "kysely";
import { MailroomError } from "../kernel/errors.js";
import type { DialectName } from "./dialect.js";
import type { Database } from "./schema.js";

/**
 * What a database failure means for a caller: `busy` passes in a moment (a lock, no free
 * connection), `unavailable` lasts until the database is back (PostgreSQL restarting or
 * unreachable), `full` until someone frees disk space.
 */
export type StorageFault = "busy" | "unavailable" | "full";

/** An outage under way: what readiness reports and what was logged once. */
export interface StorageOutage {
  fault: "unavailable" | "full";
  since: number;
  /** The driver's own code (ECONNREFUSED, 57P01, SQLITE_FULL), never its full message. */
  reason: string;
  /** Failures seen since it started, the first included. */
  failures: number;
}

/** Free space a full disk must have again before writes count as possible: a megabyte. */
const WRITE_ROOM = 1 << 20;

/** Writes and removes a file of `bytes` in `dir`: fails with ENOSPC while the disk lacks the room. */
async function roomFor(dir: string, bytes: number): Promise<void> {
  const file = path.join(dir, `.write-probe-${process.pid}`);
  try {
    await fs.writeFile(file, Buffer.alloc(bytes), { mode: 0o600 });
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** Why the database is not ready, as /readyz tells anyone who asks: no path, no driver message. */
export interface NotReady {
  code: "storage_busy" | "storage_unavailable" | "storage_full";
  message: string;
}

const NOT_READY: Record<NotReady["code"], string> = {
  storage_busy: "The database is busy for a moment.",
  storage_unavailable: "The database cannot be reached; Mailroom reconnects on its own (its log says why).",
  storage_full:
    "The database's disk is full; ready again once it has room and a write succeeds (the log names where to free space).",
};

/** The part of a pino logger this needs. */
export interface HealthLog {
  error(details: object, message: string): void;
  info(details: object, message: string): void;
}

// PostgreSQL SQLSTATEs: 57P01-03 admin/crash shutdown and "starting up"; class 08 is
// "connection exception". 53300: too many connections, which passes.
const PG_UNAVAILABLE = /^(57P0[123]|08\d\d\d)$/;
const NETWORK = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);
// pg says these in words only, with no code.
const PG_LOST = /Connection terminated|timeout exceeded when trying to connect|not queryable|Connection ended unexpectedly/;

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" ? code : undefined;
}

/** The fault and the code that shows it, if `error` is the database's (or its disk's). */
export function classifyStorageError(error: unknown): { fault: StorageFault; reason: string } | null {
  const code = codeOf(error);
  if (code) {
    if (code === "SQLITE_FULL" || code === "53100" || code === "ENOSPC" || code === "EDQUOT")
      return { fault: "full", reason: code };
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED") || code === "53300")
      return { fault: "busy", reason: code };
    if (PG_UNAVAILABLE.test(code) || NETWORK.has(code) || code.startsWith("SQLITE_IOERR") || code === "SQLITE_CANTOPEN") {
      return { fault: "unavailable", reason: code };
    }
  }
  // Node reports a host with several addresses (localhost: ::1 and 127.0.0.1) as an AggregateError.
  const inner = (error as { errors?: unknown })?.errors;
  if (Array.isArray(inner) && inner.length) return classifyStorageError(inner[0]);
  const message = (error as { message?: unknown })?.message;
  if (typeof message === "string" && PG_LOST.test(message)) return { fault: "unavailable", reason: "connection lost" };
  return null;
}

/**
 * Keeps track of the database's availability: classifies failures into catalogue errors,
 * logs an outage once when it starts and once when it ends (not at every failed query
 * in between), and probes for readiness.
 */
export class StorageHealth {
  private outage: StorageOutage | null = null;

  constructor(
    private readonly where: { dialect: DialectName; dataDir: string },
    private readonly log?: HealthLog,
  ) {}

  /** The outage under way, if any. */
  get current(): StorageOutage | null {
    return this.outage;
  }

  /** The catalogue error for a database failure (null: not one), noting an outage it starts or continues. */
  failed(error: unknown): MailroomError | null {
    const found = classifyStorageError(error);
    if (!found) return null;
    if (found.fault !== "busy") {
      if (this.outage?.fault === found.fault) this.outage.failures++;
      else {
        this.outage = { fault: found.fault, since: Date.now(), reason: found.reason, failures: 1 };
        this.log?.error({ reason: found.reason, err: (error as Error)?.message }, this.describe(found.fault).log);
      }
    }
    return this.errorFor(found.fault, found.reason);
  }

  /**
   * A query started at `startedAt` answered (`read`) or a write landed (`write`). A full disk
   * ends only with a write: reads go on working while nothing can be stored. A query sent
   * before the outage began proves nothing: it may have been answered just before.
   */
  succeeded(kind: "read" | "write", startedAt: number): void {
    const outage = this.outage;
    if (!outage || startedAt <= outage.since || (outage.fault === "full" && kind !== "write")) return;
    this.outage = null;
    this.log?.info(
      { reason: outage.reason, seconds: Math.round((Date.now() - outage.since) / 1000), failures: outage.failures },
      outage.fault === "full" ? "the database can write again" : "the database answers again",
    );
  }

  /** Readiness: null when the database answers (and, after a full disk, takes a write again). */
  async probe(db: Kysely<Database>): Promise<NotReady | null> {
    const startedAt = Date.now();
    try {
      await sql`select 1`.execute(db);
      this.succeeded("read", startedAt);
      if (this.outage?.fault === "full") {
        // SQLite reuses its write-ahead log once checkpointed, so a small write can pass on
        // a full disk while a larger one fails: ask the disk itself for room first.
        if (this.where.dialect === "sqlite") await roomFor(this.where.dataDir, WRITE_ROOM);
        // A real write of a row nobody reads at run time (Kysely's record of a migration),
        // rewritten with its own value.
        await sql`update kysely_migration set "timestamp" = "timestamp" where name = (select min(name) from kysely_migration)`.execute(
          db,
        );
        this.succeeded("write", startedAt);
      }
      return null;
    } catch (error) {
      const code = (this.failed(error)?.code ?? "storage_unavailable") as NotReady["code"];
      return { code, message: NOT_READY[code] };
    }
  }

  private errorFor(fault: StorageFault, reason: string): MailroomError {
    if (fault === "busy") {
      return new MailroomError("storage_busy", "The database is busy for a moment; retry the request.");
    }
    return new MailroomError(
      fault === "full" ? "storage_full" : "storage_unavailable",
      `${this.describe(fault).api} (${reason})`,
    );
  }

  private describe(fault: "unavailable" | "full"): { api: string; log: string } {
    const postgres = this.where.dialect === "postgres";
    if (fault === "full") {
      const where = postgres ? "on the PostgreSQL server" : `in ${this.where.dataDir}`;
      return {
        api: `The database's disk is full: free disk space ${where}, then retry; nothing was stored.`,
        log: `the database's disk is full: free disk space ${where}; writes answer 507 storage_full until one succeeds`,
      };
    }
    return postgres
      ? {
          api: "The database cannot be reached: Mailroom reconnects on its own; retry in a few seconds, and check that PostgreSQL runs if this lasts.",
          log: "the database cannot be reached; requests answer 503 storage_unavailable and delivery waits until it answers again",
        }
      : {
          api: `The database file in ${this.where.dataDir} cannot be read or written; check the disk and its permissions, then retry.`,
          log: "the database file cannot be read or written; requests answer 503 storage_unavailable",
        };
  }
}
