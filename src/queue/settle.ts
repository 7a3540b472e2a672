import { type Kysely, type RawBuilder, sql } from "kysely";
import type { DialectName } from "../storage/dialect.js";
import type { Database, MessageStatus } from "../storage/schema.js";

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
 * Returns whether it applied. Runs inside the caller's transaction (settleMessages on SQLite).
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

/**
 * Records how a group of claimed messages ended; returns, in order, whether each applied (see
 * settleMessage). On PostgreSQL one statement writes the whole group, results and attempts
 * (each write there is a round trip, and a statement is atomic by itself); on SQLite, where a
 * statement costs microseconds, one transaction of prepared per-message statements.
 */
export async function settleMessages(
  db: Kysely<Database>,
  dialect: DialectName,
  owner: string,
  settlements: Settlement[],
  now = Date.now(),
): Promise<boolean[]> {
  if (settlements.length === 0) return [];
  if (dialect === "sqlite") {
    return db.transaction().execute(async (trx) => {
      const applied: boolean[] = [];
      for (const s of settlements) applied.push(await settleMessage(trx, owner, s, now));
      return applied;
    });
  }
  const result = await sql<{ id: string }>`with ${settleCtes(owner, settlements, now)} select id from settled`.execute(db);
  const applied = new Set(result.rows.map((r) => r.id));
  return settlements.map((s) => applied.has(s.id));
}

/**
 * PostgreSQL: the common table expressions that write a group of results and their attempts
 * (`result`, `settled`: the ids that applied, `recorded`), for a statement of their own or
 * for a claim that carries them (claimWithServers).
 */
export function settleCtes(owner: string, settlements: Settlement[], now: number): RawBuilder<unknown> {
  const outcomes = settlements.map((s) => s.outcome);
  const attempts = settlements.flatMap((s) => (s.attempt ? [s.attempt] : []));
  return sql`
    result as (
      select * from unnest(
        ${settlements.map((s) => s.id)}::text[],
        ${outcomes.map((o) => o.status)}::text[],
        ${outcomes.map((o) => o.nextAttemptAt ?? now)}::int8[],
        ${outcomes.map((o) => o.errorCode !== undefined)}::bool[],
        ${outcomes.map((o) => o.errorCode ?? null)}::text[],
        ${outcomes.map((o) => o.error ?? null)}::text[],
        ${outcomes.map((o) => o.providerMessageId || null)}::text[],
        ${outcomes.map((o) => o.uncountAttempt === true)}::bool[],
        ${outcomes.map((o) => o.moveTo?.serverId ?? null)}::text[],
        ${outcomes.map((o) => o.moveTo?.serverName ?? null)}::text[]
      ) as r(id, status, next_attempt_at, sets_error, error_code, error, provider_message_id, uncount,
             move_server_id, move_server_name)
    ),
    settled as (
      update messages m
         set status = r.status, lease_owner = null, next_attempt_at = r.next_attempt_at, updated_at = ${now},
             last_error_code = case when r.sets_error then r.error_code else m.last_error_code end,
             last_error = case when r.sets_error then r.error else m.last_error end,
             provider_message_id = coalesce(r.provider_message_id, m.provider_message_id),
             sent_at = case when r.status = 'sent' then ${now} else m.sent_at end,
             server_id = coalesce(r.move_server_id, m.server_id),
             server_name = coalesce(r.move_server_name, m.server_name),
             -- Failover: the next server of the route starts with a fresh set of attempts.
             attempts = case when r.move_server_id is not null then 0
                             else m.attempts - case when r.uncount then 1 else 0 end end
        from result r
       where m.id = r.id and m.lease_owner = ${owner} and m.status = 'sending'
      returning m.id
    ),
    recorded as (
      insert into message_attempts (message_id, server_id, server_name, started_at, duration_ms, outcome, error_code,
                                    remote_code, remote_command, remote_response, provider_message_id)
      select a.* from unnest(
        ${attempts.map((a) => a.messageId)}::text[],
        ${attempts.map((a) => a.serverId)}::text[],
        ${attempts.map((a) => a.serverName)}::text[],
        ${attempts.map((a) => a.startedAt)}::int8[],
        ${attempts.map((a) => a.durationMs)}::int4[],
        ${attempts.map((a) => a.outcome)}::text[],
        ${attempts.map((a) => a.errorCode ?? null)}::text[],
        ${attempts.map((a) => a.remote?.code ?? null)}::int4[],
        ${attempts.map((a) => a.remote?.command ?? null)}::text[],
        ${attempts.map((a) => a.remote?.response?.slice(0, 2000) ?? null)}::text[],
        ${attempts.map((a) => a.providerMessageId ?? null)}::text[]
      ) as a(message_id, server_id, server_name, started_at, duration_ms, outcome, error_code,
             remote_code, remote_command, remote_response, provider_message_id)
      where a.message_id in (select id from settled)
    )`;
}
