import { type Kysely, type RawBuilder, sql } from "kysely";
import { listensTo, type MessageEvent, type MessageEventSink } from "../core/message-events.js";
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
  /** The message's server when it was claimed (for the event it makes). */
  serverId?: string;
}

/**
 * What a result writes on its message, the same on both databases: `r` is the result (one row
 * of the group: sets_error and uncount are 0 or 1), `m` the message.
 */
function resultColumns(now: number): RawBuilder<unknown> {
  return sql`status = r.status, lease_owner = null, next_attempt_at = r.next_attempt_at, updated_at = ${now},
    last_error_code = case when r.sets_error = 1 then r.error_code else m.last_error_code end,
    last_error = case when r.sets_error = 1 then r.error else m.last_error end,
    provider_message_id = coalesce(r.provider_message_id, m.provider_message_id),
    sent_at = case when r.status = 'sent' then ${now} else m.sent_at end,
    server_id = coalesce(r.move_server_id, m.server_id),
    server_name = coalesce(r.move_server_name, m.server_name),
    -- Failover: the next server of the route starts with a fresh set of attempts.
    attempts = case when r.move_server_id is not null then 0 else m.attempts - r.uncount end`;
}

/**
 * SQLite: records how a group of claimed messages ended, each only if this worker still holds
 * its lease (if the lease ran out and another worker took the message, that worker's result
 * counts). Returns the ids that applied. Two statements whatever the group's size (the
 * results and the attempts, each passed as one JSON array), so their text never changes and
 * their prepared form is reused: building two statements per message with the query builder
 * was a tenth of the process's CPU in the delivery benchmark. Runs inside the caller's transaction.
 */
export async function settleOnSqlite(
  trx: Kysely<Database>,
  owner: string,
  settlements: Settlement[],
  now: number,
): Promise<Set<string>> {
  if (settlements.length === 0) return new Set();
  const results = settlements.map(({ id, outcome: o }) => [
    id,
    o.status,
    o.nextAttemptAt ?? now,
    o.errorCode !== undefined ? 1 : 0,
    o.errorCode ?? null,
    o.error ?? null,
    o.providerMessageId || null,
    o.uncountAttempt ? 1 : 0,
    o.moveTo?.serverId ?? null,
    o.moveTo?.serverName ?? null,
  ]);
  const { rows } = await sql<{ id: string }>`
    update messages as m
       set ${resultColumns(now)}
      from (select value ->> 0 as id, value ->> 1 as status, value ->> 2 as next_attempt_at, value ->> 3 as sets_error,
                   value ->> 4 as error_code, value ->> 5 as error, value ->> 6 as provider_message_id,
                   value ->> 7 as uncount, value ->> 8 as move_server_id, value ->> 9 as move_server_name
              from json_each(${JSON.stringify(results)})) as r
     -- "+": without statistics SQLite would walk messages_status through every message being
     -- sent and read the group for each; the group comes first, each message by its id.
     where m.id = r.id and +m.lease_owner = ${owner} and +m.status = 'sending'
    returning id`.execute(trx);
  const applied = new Set(rows.map((r) => r.id));
  const attempts = settlements.flatMap(({ attempt: a }) =>
    a && applied.has(a.messageId)
      ? [
          [
            a.messageId,
            a.serverId,
            a.serverName,
            a.startedAt,
            a.durationMs,
            a.outcome,
            a.errorCode ?? null,
            a.remote?.code ?? null,
            a.remote?.command ?? null,
            a.remote?.response?.slice(0, 2000) ?? null,
            a.providerMessageId ?? null,
          ],
        ]
      : [],
  );
  if (attempts.length) {
    await sql`
      insert into message_attempts (message_id, server_id, server_name, started_at, duration_ms, outcome, error_code,
                                    remote_code, remote_command, remote_response, provider_message_id)
      select value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6,
             value ->> 7, value ->> 8, value ->> 9, value ->> 10
        from json_each(${JSON.stringify(attempts)})`.execute(trx);
  }
  return applied;
}

/**
 * Records how a group of claimed messages ended; returns, in order, whether each applied (see
 * settleOnSqlite). On PostgreSQL one statement writes the whole group, results and attempts
 * (each write there is a round trip, and a statement is atomic by itself); on SQLite two
 * statements in one transaction.
 */
export async function settleMessages(
  db: Kysely<Database>,
  dialect: DialectName,
  owner: string,
  settlements: Settlement[],
  now = Date.now(),
  /** Told of the status changes that applied, in the same commit (ctx.messageEvents). */
  events?: MessageEventSink,
): Promise<boolean[]> {
  if (settlements.length === 0) return [];
  const told = (applied: (s: Settlement) => boolean) =>
    settlements.flatMap((s) => {
      const event = applied(s) ? eventOf(s, now) : null;
      return event ? [event] : [];
    });
  if (dialect === "sqlite") {
    return db.transaction().execute(async (trx) => {
      const applied = await settleOnSqlite(trx, owner, settlements, now);
      if (events) {
        const changes = told((s) => applied.has(s.id));
        if (changes.length) await events.record(trx, changes);
      }
      return settlements.map((s) => applied.has(s.id));
    });
  }
  // The events' rows go in the same transaction as the statement; without a listener there
  // is no transaction, only the one statement (which is atomic by itself).
  const listened =
    events &&
    settlements.some((s) => {
      const event = eventOf(s, now);
      return event !== null && listensTo(events, event.type);
    });
  const settle = async (handle: Kysely<Database>) => {
    const result = await sql<{ id: string }>`with ${settleCtes(owner, settlements, now)} select id from settled`.execute(handle);
    return new Set(result.rows.map((r) => r.id));
  };
  const applied = listened
    ? await db.transaction().execute(async (trx) => {
        const ids = await settle(trx);
        const changes = told((s) => ids.has(s.id));
        if (changes.length) await events.record(trx, changes);
        return ids;
      })
    : await settle(db);
  return settlements.map((s) => applied.has(s.id));
}

/**
 * What a settled outcome tells applications: a message that ended (sent, failed) or stopped
 * (held). Back in the queue (a retry after a temporary failure, a rate limit, failover) is no
 * event: the message is still on its way.
 */
function eventOf({ id, outcome, attempt, serverId }: Settlement, now: number): MessageEvent | null {
  const { status } = outcome;
  if (status !== "sent" && status !== "failed" && status !== "held") return null;
  return { type: status, messageId: id, serverId: outcome.moveTo?.serverId ?? attempt?.serverId ?? serverId ?? "", at: now };
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
        ${outcomes.map((o) => (o.errorCode !== undefined ? 1 : 0))}::int4[],
        ${outcomes.map((o) => o.errorCode ?? null)}::text[],
        ${outcomes.map((o) => o.error ?? null)}::text[],
        ${outcomes.map((o) => o.providerMessageId || null)}::text[],
        ${outcomes.map((o) => (o.uncountAttempt ? 1 : 0))}::int4[],
        ${outcomes.map((o) => o.moveTo?.serverId ?? null)}::text[],
        ${outcomes.map((o) => o.moveTo?.serverName ?? null)}::text[]
      ) as r(id, status, next_attempt_at, sets_error, error_code, error, provider_message_id, uncount,
             move_server_id, move_server_name)
    ),
    settled as (
      update messages m
         set ${resultColumns(now)}
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
