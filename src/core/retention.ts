import { randomBytes } from "node:crypto";
import os from "node:os";
import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Clock } from "../kernel/clock.js";
import { iso } from "../kernel/ids.js";
import { type Database, FINISHED_STATUSES } from "../storage/schema.js";
import { databaseBytes, freePages, reclaimSpace } from "../storage/space.js";
import { systemActor, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";
import { purgeKeptCopies } from "./retention-copies.js";
import type { RetentionPolicy } from "./retention-policy.js";

const DAY = 24 * 60 * 60 * 1000;
/** What a purged message's payload becomes: still a valid payload, with nothing in it. */
const EMPTY_PAYLOAD = JSON.stringify({ headers: {}, attachments: [] });
// Literals, not parameters: a database uses a partial index only for a condition it can see
// matches the index's own (messages_body_retention, messages_retention in migration 014).
const FINISHED = sql<boolean>`status in (${sql.raw(FINISHED_STATUSES.map((s) => `'${s}'`).join(", "))})`;
const HOLDS_BODY = sql<boolean>`body_purged_at is null`;

export interface PurgeCounts {
  /** Messages whose body (text, html, attachments, raw MIME) was removed; their metadata stays. */
  bodies: number;
  /** Messages removed whole, with their attempts and the providers' reports of them. */
  messages: number;
  audit: number;
  /** Captured copies trimmed to their headers or removed with their messages (retention-copies.ts). */
  copies: number;
}

/** What the overview shows of the last purge (the copies are in its audit entry and log line). */
export interface LastPurge extends Omit<PurgeCounts, "copies"> {
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
}

function removedAny(counts: PurgeCounts): boolean {
  return counts.bodies + counts.messages + counts.audit + counts.copies > 0;
}

export interface RetentionStatus {
  databaseBytes: number;
  /** SQLite: whether purges give space back to the file system (see storage/space.ts). */
  autoVacuum: "incremental" | "off";
  /** Messages with their body, and messages whose body retention removed. */
  messages: { full: number; metadataOnly: number };
  lastPurge: LastPurge | null;
}

export interface RetentionOptions {
  intervalMs: number;
  batchSize: number;
  clock?: Clock;
  /** How long a purge may go without renewing its lease before another process takes over. */
  leaseMs?: number;
}

/**
 * Purges by the retention periods, in small batches each in its own short transaction, so
 * delivery (which never touches finished messages) waits at most one batch. Only finished
 * messages (sent, failed, and the provider's later word: delivered, bounced, complained) are purged: queued, sending and held mail never. Processes sharing
 * a database take turns through a lease on the one row of retention_runs, so no two do the
 * same work; a process that dies mid-purge leaves the rest to the next after its lease.
 */
export class Retention {
  /** This process, as the lease names it. */
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  private readonly clock: Clock;
  private readonly leaseMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<PurgeCounts | null> | null = null;
  /** Set by stop(): no new purge is scheduled, and one under way ends after its batch. */
  private stopped = false;

  constructor(
    private readonly ctx: AppContext,
    readonly policy: RetentionPolicy,
    private readonly options: RetentionOptions,
  ) {
    this.clock = options.clock ?? Date.now;
    this.leaseMs = options.leaseMs ?? 5 * 60 * 1000;
  }

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** Purges now, then every interval. */
  start(): void {
    this.stopped = false;
    if (!this.timer) this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.purge().finally(() => this.schedule(this.options.intervalMs));
    }, delayMs);
    this.timer.unref();
  }

  /** One purge; null when another process holds the lease (it is doing this work). Never throws. */
  purge(): Promise<PurgeCounts | null> {
    this.running ??= this.purgeOnce().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async purgeOnce(): Promise<PurgeCounts | null> {
    const now = this.clock();
    try {
      if (!(await this.takeLease(now))) return null;
    } catch (error) {
      this.ctx.log.warn({ err: error }, "retention: could not take the purge lease; trying again at the next interval");
      return null;
    }
    const counts: PurgeCounts = { bodies: 0, messages: 0, audit: 0, copies: 0 };
    try {
      const { bodyDays, metadataDays, auditDays } = (await this.policy.read()).effective;
      // Whole messages first: their bodies would go with them anyway.
      if (metadataDays !== null) counts.messages = await this.inBatches(() => this.purgeMessages(now - metadataDays * DAY));
      if (bodyDays !== null) counts.bodies = await this.inBatches(() => this.purgeBodies(now - bodyDays * DAY, now));
      if (auditDays !== null) counts.audit = await this.inBatches(() => this.purgeAudit(now - auditDays * DAY));
      // After the messages: a copy follows what its message became.
      counts.copies = await purgeKeptCopies(this.ctx, {
        bodyBefore: bodyDays === null ? null : now - bodyDays * DAY,
        metadataBefore: metadataDays === null ? null : now - metadataDays * DAY,
        now,
        batchSize: this.options.batchSize,
        between: () => this.betweenBatches(),
        stopped: () => this.stopped,
      });
      if (counts.bodies + counts.messages + counts.audit > 0) await this.giveSpaceBack();
      await this.finish(now, counts, null);
      return counts;
    } catch (error) {
      const message = (error as Error).message;
      this.ctx.log.error({ err: error, ...counts }, "retention: the purge stopped; it continues at the next interval");
      await this.finish(now, counts, message).catch(() => {});
      return counts;
    }
  }

  /** Takes the lease if it is free, expired or already ours. */
  private async takeLease(now: number): Promise<boolean> {
    const result = await this.db
      .updateTable("retention_runs")
      .set({ lease_owner: this.owner, lease_until: now + this.leaseMs })
      .where("id", "=", 1)
      .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now), eb("lease_owner", "=", this.owner)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Runs `batch` until it finds less than a full batch, renewing the lease between batches. */
  private async inBatches(batch: () => Promise<{ found: number; removed: number }>): Promise<number> {
    let total = 0;
    for (;;) {
      const { found, removed } = await batch();
      total += removed;
      if (found < this.options.batchSize || this.stopped) return total;
      await this.betweenBatches();
    }
  }

  /** Keeps the lease (or stops the purge when it was lost) and lets the queue's queries in. */
  private async betweenBatches(): Promise<void> {
    if (!(await this.renewLease())) throw new Error("the purge lease was lost (the purge took longer than its lease)");
    await new Promise((resolve) => setImmediate(resolve));
  }

  private async renewLease(): Promise<boolean> {
    const result = await this.db
      .updateTable("retention_runs")
      .set({ lease_until: this.clock() + this.leaseMs })
      .where("id", "=", 1)
      .where("lease_owner", "=", this.owner)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * The finished-and-holding-a-body test for statements that already name their rows by id. On
   * SQLite the status term is hidden from the planner (a unary +): without statistics it would
   * otherwise walk messages_status through every finished message for each batch, O(table) a
   * batch (1–2 ms a row at a million messages; docs/benchmarks.md, Retention soak).
   */
  private finishedById(): RawBuilder<boolean> {
    return this.ctx.storage.dialect === "sqlite" ? sql<boolean>`+${FINISHED}` : FINISHED;
  }

  private async purgeBodies(before: number, now: number): Promise<{ found: number; removed: number }> {
    const ids = await this.oldestFinished(before, true);
    if (!ids.length) return { found: 0, removed: 0 };
    const removed = await this.db.transaction().execute(async (trx) => {
      // Checked again inside the transaction: a message retried meanwhile keeps its body.
      const removed =
        this.ctx.storage.dialect === "sqlite"
          ? await this.rewriteWithoutBody(trx, ids, now)
          : Number(
              (
                await trx
                  .updateTable("messages")
                  .set({ payload: EMPTY_PAYLOAD, body_purged_at: now })
                  .where("id", "in", ids)
                  .where(FINISHED)
                  .where(HOLDS_BODY)
                  .executeTakeFirst()
              ).numUpdatedRows,
            );
      await trx
        .deleteFrom("message_raw")
        .where("message_id", "in", ids)
        .where("message_id", "in", (eb) =>
          eb.selectFrom("messages").select("id").where("id", "in", ids).where("body_purged_at", "=", now),
        )
        .execute();
      return removed;
    });
    return { found: ids.length, removed };
  }

  /**
   * SQLite: the rows are deleted and written again without their body, not updated. An update
   * that shrinks a row leaves it alone on its page (SQLite rebalances pages after a delete, not
   * after an update), so a 2 KB body's page stayed 90% empty until the message went; written
   * again, the slim rows pack together at the end of the table and the old pages are freed.
   */
  private async rewriteWithoutBody(trx: Kysely<Database>, ids: string[], now: number): Promise<number> {
    // Deleted first, read back by RETURNING: the transaction writes from its first statement,
    // so another process's write in between makes it wait (busy_timeout), never fail with
    // SQLITE_BUSY_SNAPSHOT as a read-then-write transaction would.
    const rows = await trx
      .deleteFrom("messages")
      .where("id", "in", ids)
      .where(this.finishedById())
      .where(HOLDS_BODY)
      .returningAll()
      .execute();
    if (!rows.length) return 0;
    // A row has about 30 columns: 25 rows a statement stay within SQLite's 999 parameters.
    for (let i = 0; i < rows.length; i += 25) {
      await trx
        .insertInto("messages")
        .values(rows.slice(i, i + 25).map((r) => ({ ...r, payload: EMPTY_PAYLOAD, body_purged_at: now })))
        .execute();
    }
    return rows.length;
  }

  private async purgeMessages(before: number): Promise<{ found: number; removed: number }> {
    const ids = await this.oldestFinished(before, false);
    if (!ids.length) return { found: 0, removed: 0 };
    const removed = await this.db.transaction().execute(async (trx) => {
      const result = await trx.deleteFrom("messages").where("id", "in", ids).where(this.finishedById()).executeTakeFirst();
      // Only what belonged to the messages really deleted (not to one retried meanwhile).
      const kept = trx.selectFrom("messages").select("id").where("id", "in", ids);
      await trx.deleteFrom("message_attempts").where("message_id", "in", ids).where("message_id", "not in", kept).execute();
      await trx.deleteFrom("message_raw").where("message_id", "in", ids).where("message_id", "not in", kept).execute();
      await trx.deleteFrom("message_events").where("message_id", "in", ids).where("message_id", "not in", kept).execute();
      return Number(result.numDeletedRows);
    });
    return { found: ids.length, removed };
  }

  /** Ids of the messages that finished longest ago, before `before` (holding a body, if asked). */
  private async oldestFinished(before: number, holdingBody: boolean): Promise<string[]> {
    const index = holdingBody ? "messages_body_retention" : "messages_retention";
    // SQLite's planner, without statistics, prefers messages_status (status, created_at) and
    // sorts every finished message; INDEXED BY holds it to the partial index made for this.
    const indexedBy = this.ctx.storage.dialect === "sqlite" ? sql` indexed by ${sql.raw(index)}` : sql``;
    const { rows } = await sql<{ id: string }>`select id from messages${indexedBy}
      where ${FINISHED} and updated_at < ${before}${holdingBody ? sql` and ${HOLDS_BODY}` : sql``}
      order by updated_at limit ${this.options.batchSize}`.execute(this.db);
    return rows.map((r) => r.id);
  }

  private async purgeAudit(before: number): Promise<{ found: number; removed: number }> {
    const rows = await this.db
      .selectFrom("audit_log")
      .select("id")
      .where("at", "<", before)
      .orderBy("at")
      .limit(this.options.batchSize)
      .execute();
    if (!rows.length) return { found: 0, removed: 0 };
    const result = await this.db
      .deleteFrom("audit_log")
      .where(
        "id",
        "in",
        rows.map((r) => r.id),
      )
      .executeTakeFirst();
    return { found: rows.length, removed: Number(result.numDeletedRows) };
  }

  /**
   * SQLite: hands freed pages back to the file system in steps of 500 pages, each holding the
   * write lock briefly. Only when more than a tenth of the file is free: moving pages costs
   * (2 ms a row in bench/retention.ts), and free pages are reused by tomorrow's mail anyway.
   */
  private async giveSpaceBack(): Promise<void> {
    const { dialect, autoVacuum } = this.ctx.storage;
    if (dialect !== "sqlite") return;
    const pages = await freePages(this.db);
    let free = pages.free;
    if (free * 10 < pages.total) return;
    if (autoVacuum !== "incremental") {
      this.ctx.log.warn(
        { freePages: free },
        "retention: the SQLite file does not shrink (auto_vacuum is off; freed pages are reused): see docs/operations.md#retention",
      );
      return;
    }
    while (free > 0 && !this.stopped) {
      const left = await reclaimSpace(this.db, dialect);
      if (left >= free) break;
      free = left;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private async finish(startedAt: number, counts: PurgeCounts, error: string | null): Promise<void> {
    const finishedAt = this.clock();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable("retention_runs")
        .set({
          lease_owner: null,
          lease_until: null,
          last_started_at: startedAt,
          last_finished_at: finishedAt,
          last_bodies: counts.bodies,
          last_messages: counts.messages,
          last_audit: counts.audit,
          last_error: error,
        })
        .where("id", "=", 1)
        .where("lease_owner", "=", this.owner)
        .execute();
      if (removedAny(counts) || error) {
        await writeAudit(
          trx,
          systemActor,
          {
            action: "retention.purge",
            targetType: "messages",
            targetId: null,
            after: { ...counts, ...(error ? { error } : {}) },
          },
          finishedAt,
        );
      }
    });
    if (removedAny(counts)) this.ctx.log.info({ ...counts }, "retention: purged");
  }

  /** What the overview and /metrics show: the database's size, messages by tier, the last purge. */
  async status(): Promise<RetentionStatus> {
    // Counted on the retention indexes (only purged messages lack a body, and only finished ones
    // are purged) rather than by reading every row: /metrics asks for this at each scrape.
    const bodyIndex = this.ctx.storage.dialect === "sqlite" ? sql` indexed by messages_body_retention` : sql``;
    const { rows } = await sql<{ total: number; finished: number; finishedFull: number }>`select
      (select count(*) from messages) as total,
      (select count(*) from messages where ${FINISHED}) as finished,
      (select count(*) from messages${bodyIndex} where ${FINISHED} and ${HOLDS_BODY}) as "finishedFull"`.execute(this.db);
    const tiers = { total: Number(rows[0].total), purged: Number(rows[0].finished) - Number(rows[0].finishedFull) };
    const run = await this.db.selectFrom("retention_runs").selectAll().where("id", "=", 1).executeTakeFirst();
    const lastPurge: LastPurge | null =
      run?.last_started_at == null
        ? null
        : {
            startedAt: iso(Number(run.last_started_at)) as string,
            finishedAt: iso(run.last_finished_at === null ? null : Number(run.last_finished_at)),
            bodies: Number(run.last_bodies),
            messages: Number(run.last_messages),
            audit: Number(run.last_audit),
            error: run.last_error,
          };
    return {
      databaseBytes: await databaseBytes(this.db, this.ctx.storage.dialect),
      autoVacuum: this.ctx.storage.autoVacuum,
      messages: { full: tiers.total - tiers.purged, metadataOnly: tiers.purged },
      lastPurge,
    };
  }
}
