import { type Kysely, sql } from "kysely";
import type { DialectName } from "../storage/dialect.js";
import type { Database, MessageStatus, MessagesTable } from "../storage/schema.js";

/**
 * Claims up to `limit` messages that are due, for `owner`, until `leaseMs` from now.
 * A message being sent keeps next_attempt_at = its lease's end, so one whose worker
 * died is due again when the lease runs out, through the same index.
 */
export async function claimDueMessages(
  db: Kysely<Database>,
  dialect: DialectName,
  owner: string,
  limit: number,
  leaseMs: number,
  now = Date.now(),
): Promise<MessagesTable[]> {
  // PostgreSQL: SKIP LOCKED lets several processes claim side by side without waiting.
  // SQLite: one writer at a time, so the subquery and update are already atomic.
  const lock = dialect === "postgres" ? sql`for update skip locked` : sql``;
  // SQLite's planner would rather use messages_status and sort every waiting message; the
  // partial index keeps the claim time flat however long the queue grows (bench/backlog.ts).
  const index = dialect === "sqlite" ? sql`indexed by messages_claim` : sql``;
  const result = await sql<MessagesTable>`
    update messages
       set status = 'sending', lease_owner = ${owner}, next_attempt_at = ${now + leaseMs},
           attempts = attempts + 1, updated_at = ${now}
     where id in (
       select id from messages ${index}
        where status in ('queued', 'sending') and next_attempt_at <= ${now}
        order by next_attempt_at
        limit ${limit}
        ${lock})
    returning *`.execute(db);
  return result.rows.map((r) => ({
    ...r,
    // pg returns bigint as number through the parser set in storage/db.ts; SQLite as number.
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
  }));
}

export interface AttemptRecord {
  messageId: string;
  serverId: string;
  serverName: string;
  startedAt: number;
  durationMs: number;
  outcome: string;
  errorCode?: string;
  remote?: { code?: number; command?: string; response?: string };
  providerMessageId?: string;
}

export interface Outcome {
  status: MessageStatus;
  nextAttemptAt?: number;
  errorCode?: string | null;
  error?: string | null;
  providerMessageId?: string;
  /** Give back the attempt counted at claim (a rate-limit wait is not an attempt). */
  uncountAttempt?: boolean;
}

export interface Settlement {
  id: string;
  outcome: Outcome;
  attempt?: AttemptRecord;
}

/**
 * Records how a claimed message ended, only if this worker still holds its lease (if the
 * lease ran out and another worker took the message, that worker's result counts).
 * Returns whether it applied. Runs inside the caller's transaction (a group commit).
 */
export async function settleMessage(
  trx: Kysely<Database>,
  owner: string,
  { id, outcome, attempt }: Settlement,
): Promise<boolean> {
  const now = Date.now();
  const result = await trx
    .updateTable("messages")
    .set((eb) => ({
      status: outcome.status,
      lease_owner: null,
      next_attempt_at: outcome.nextAttemptAt ?? now,
      updated_at: now,
      ...(outcome.errorCode !== undefined ? { last_error_code: outcome.errorCode, last_error: outcome.error ?? null } : {}),
      ...(outcome.providerMessageId ? { provider_message_id: outcome.providerMessageId } : {}),
      ...(outcome.status === "sent" ? { sent_at: now } : {}),
      ...(outcome.uncountAttempt ? { attempts: eb("attempts", "-", 1) } : {}),
    }))
    .where("id", "=", id)
    .where("lease_owner", "=", owner)
    .where("status", "=", "sending")
    .executeTakeFirst();
  const applied = Number(result.numUpdatedRows) === 1;
  if (applied && attempt) {
    await trx
      .insertInto("message_attempts")
      .values({
        message_id: attempt.messageId,
        server_id: attempt.serverId,
        server_name: attempt.serverName,
        started_at: attempt.startedAt,
        duration_ms: attempt.durationMs,
        outcome: attempt.outcome,
        error_code: attempt.errorCode ?? null,
        remote_code: attempt.remote?.code ?? null,
        remote_command: attempt.remote?.command ?? null,
        remote_response: attempt.remote?.response?.slice(0, 2000) ?? null,
        provider_message_id: attempt.providerMessageId ?? null,
      })
      .execute();
  }
  return applied;
}

/** On shutdown: gives back what this worker holds, untouched, for another to send. */
export async function releaseLeases(db: Kysely<Database>, owner: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const now = Date.now();
  await db
    .updateTable("messages")
    .set((eb) => ({
      status: "queued",
      lease_owner: null,
      next_attempt_at: now,
      updated_at: now,
      attempts: eb("attempts", "-", 1),
    }))
    .where("lease_owner", "=", owner)
    .where("status", "=", "sending")
    .where("id", "in", ids)
    .execute();
}

/** Messages sent through a server since `since`: for the daily limit. */
export async function countSentSince(db: Kysely<Database>, serverId: string, since: number): Promise<number> {
  const { n } = await db
    .selectFrom("messages")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("server_id", "=", serverId)
    .where("status", "=", "sent")
    .where("sent_at", ">=", since)
    .executeTakeFirstOrThrow();
  return Number(n);
}
