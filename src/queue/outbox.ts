import { type Kysely, sql } from "kysely";
import type { DialectName } from "../storage/dialect.js";
import type { Database, MessageStatus, MessagesTable } from "../storage/schema.js";

export interface ServerQuota {
  serverId: string;
  /** The most of this server's messages to claim now (its free sending slots). */
  limit: number;
}

/** Servers per claim statement: SQLite allows 500 terms in a compound SELECT. */
const SERVERS_PER_CLAIM = 100;

/**
 * Claims due messages for `owner`, until `leaseMs` from now: at most each server's quota,
 * at most `limit` in all, taking servers in turn (every server's first due message, then
 * every server's second, …) so a server with a long or slow queue cannot crowd out the
 * others. A message being sent keeps next_attempt_at = its lease's end, so one whose worker
 * died is due again when the lease runs out, through the same index.
 */
export async function claimDueMessages(
  db: Kysely<Database>,
  dialect: DialectName,
  owner: string,
  quotas: ServerQuota[],
  limit: number,
  leaseMs: number,
  now = Date.now(),
): Promise<MessagesTable[]> {
  const wanted = quotas.filter((q) => q.limit > 0).slice(0, SERVERS_PER_CLAIM);
  if (wanted.length === 0 || limit <= 0) return [];
  const due = dialect === "postgres" ? dueOnPostgres(wanted, now) : dueOnSqlite(wanted, now);
  const result = await sql<MessagesTable>`
    with due as (${due}),
    ranked as (
      select id, next_attempt_at, row_number() over (partition by server_id order by next_attempt_at) as turn from due)
    update messages
       set status = 'sending', lease_owner = ${owner}, next_attempt_at = ${now + leaseMs},
           attempts = attempts + 1, updated_at = ${now}
     where id in (select id from ranked order by turn, next_attempt_at limit ${limit})
    returning *`.execute(db);
  return result.rows.map((r) => ({
    ...r,
    // pg returns bigint as number through the parser set in storage/db.ts; SQLite as number.
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
  }));
}

/**
 * PostgreSQL: per server, a lateral read of its due messages through messages_server_due,
 * SKIP LOCKED so several processes claim side by side without waiting.
 */
function dueOnPostgres(quotas: ServerQuota[], now: number) {
  const ids = quotas.map((q) => q.serverId);
  const limits = quotas.map((q) => q.limit);
  return sql`
    select m.id, m.server_id, m.next_attempt_at
      from unnest(${ids}::text[], ${limits}::int[]) as q(server_id, n)
      cross join lateral (
        select id, server_id, next_attempt_at from messages
         where server_id = q.server_id and status in ('queued', 'sending') and next_attempt_at <= ${now}
         order by next_attempt_at
         limit q.n
         for update skip locked) m`;
}

/**
 * SQLite: one term per server. SQLite has one writer at a time, so the read and the update
 * are already atomic. The index is named: its planner would rather use messages_status and
 * sort every waiting message (bench/backlog.ts).
 */
function dueOnSqlite(quotas: ServerQuota[], now: number) {
  const terms = quotas.map(
    (q) => sql`select * from (
      select id, server_id, next_attempt_at from messages indexed by messages_server_due
       where server_id = ${q.serverId} and status in ('queued', 'sending') and next_attempt_at <= ${now}
       order by next_attempt_at
       limit ${q.limit})`,
  );
  return sql.join(terms, sql` union all `);
}

/** Pushes the leases of messages still being sent (or whose result is still being written) further out. */
export async function renewLeases(
  db: Kysely<Database>,
  owner: string,
  ids: string[],
  leaseMs: number,
  now = Date.now(),
): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db
    .updateTable("messages")
    .set({ next_attempt_at: now + leaseMs })
    .where("lease_owner", "=", owner)
    .where("status", "=", "sending")
    .where("id", "in", ids)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
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
  /** Failover: the message goes on through this server of its route, with a fresh set of attempts. */
  moveTo?: { serverId: string; serverName: string };
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
  now = Date.now(),
): Promise<boolean> {
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
      ...(outcome.moveTo ? { server_id: outcome.moveTo.serverId, server_name: outcome.moveTo.serverName, attempts: 0 } : {}),
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
