import { type Kysely, sql } from "kysely";
import type { DialectName } from "../storage/dialect.js";
import type { Database, EmailServersTable, MessageStatus, MessagesTable } from "../storage/schema.js";

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

/** A server's row (undefined: deleted) and its breaker's count, as read with a claim. */
export interface ClaimedServer {
  row: EmailServersTable | undefined;
  /** Server problems in a row so far (another process's count too). */
  failuresInARow: number;
}

export interface ClaimPlan {
  /** The limits of the servers named (0 leaves one out). */
  quotas: ServerQuota[];
  /** The limit of every other server: those the caller has nothing in flight for. */
  others: number;
  /** The most messages in all. */
  limit: number;
  leaseMs: number;
  now: number;
}

/**
 * Claims like claimDueMessages, for every server (the list is read by the claim itself, so a
 * server created a moment ago is never missed), and reads the claimed messages' servers and
 * breakers with it: on PostgreSQL the whole of it is one statement, one round trip.
 */
export async function claimWithServers(
  db: Kysely<Database>,
  dialect: DialectName,
  owner: string,
  plan: ClaimPlan,
): Promise<{ messages: MessagesTable[]; servers: Map<string, ClaimedServer> }> {
  if (plan.limit <= 0) return { messages: [], servers: new Map() };
  if (dialect === "sqlite") return claimWithServersOnSqlite(db, owner, plan);
  const named = plan.quotas;
  const result = await sql<MessagesTable & { claimed_servers: string | null }>`
    with quota as (
      select s.id as server_id, coalesce(l.n, ${plan.others}::int) as n
        from email_servers s
        left join unnest(${named.map((q) => q.serverId)}::text[], ${named.map((q) => q.limit)}::int[]) as l(server_id, n)
          on l.server_id = s.id),
    due as (
      select m.id, m.server_id, m.next_attempt_at
        from quota q
        cross join lateral (
          select id, server_id, next_attempt_at from messages
           where server_id = q.server_id and status in ('queued', 'sending') and next_attempt_at <= ${plan.now}
           order by next_attempt_at
           limit q.n
           for update skip locked) m
       where q.n > 0),
    ranked as (
      select id, next_attempt_at, row_number() over (partition by server_id order by next_attempt_at) as turn from due),
    claimed as (
      update messages
         set status = 'sending', lease_owner = ${owner}, next_attempt_at = ${plan.now + plan.leaseMs},
             attempts = attempts + 1, updated_at = ${plan.now}
       where id in (select id from ranked order by turn, next_attempt_at limit ${plan.limit})
      returning *)
    select c.*,
           -- The claimed messages' servers, once (on the first row), as they are now.
           case when row_number() over () = 1 then (
             select json_agg(json_build_object('row', to_jsonb(s), 'failures', coalesce(b.consecutive_failures, 0)))::text
               from email_servers s left join server_breakers b on b.server_id = s.id
              where s.id in (select server_id from claimed)) end as claimed_servers
      from claimed c`.execute(db);
  const servers = new Map<string, ClaimedServer>();
  const found = result.rows[0]?.claimed_servers;
  for (const s of found ? (JSON.parse(found) as { row: EmailServersTable; failures: number }[]) : []) {
    servers.set(s.row.id, { row: s.row, failuresInARow: Number(s.failures) });
  }
  const messages = result.rows.map(({ claimed_servers: _, ...r }) => ({
    ...r,
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
  }));
  for (const m of messages) if (!servers.has(m.server_id)) servers.set(m.server_id, { row: undefined, failuresInARow: 0 });
  return { messages, servers };
}

/** SQLite: the server list, the claim and the servers' rows are three in-process statements. */
async function claimWithServersOnSqlite(
  db: Kysely<Database>,
  owner: string,
  plan: ClaimPlan,
): Promise<{ messages: MessagesTable[]; servers: Map<string, ClaimedServer> }> {
  const limits = new Map(plan.quotas.map((q) => [q.serverId, q.limit]));
  const ids = await db.selectFrom("email_servers").select("id").orderBy("id").execute();
  // Start from a different server each time, in case there are more than one claim takes.
  const start = ids.length ? Math.floor(Math.random() * ids.length) : 0;
  const quotas = [...ids.slice(start), ...ids.slice(0, start)].map(({ id }) => ({
    serverId: id,
    limit: limits.get(id) ?? plan.others,
  }));
  const messages = await claimDueMessages(db, "sqlite", owner, quotas, plan.limit, plan.leaseMs, plan.now);
  const servers = new Map<string, ClaimedServer>();
  const serverIds = [...new Set(messages.map((m) => m.server_id))];
  if (serverIds.length) {
    const [rows, breakers] = await Promise.all([
      db.selectFrom("email_servers").selectAll().where("id", "in", serverIds).execute(),
      db
        .selectFrom("server_breakers")
        .select(["server_id", "consecutive_failures"])
        .where("server_id", "in", serverIds)
        .execute(),
    ]);
    for (const id of serverIds) {
      const failures = breakers.find((b) => b.server_id === id)?.consecutive_failures ?? 0;
      servers.set(id, { row: rows.find((r) => r.id === id), failuresInARow: Number(failures) });
    }
  }
  return { messages, servers };
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
  const outcomes = settlements.map((s) => s.outcome);
  const attempts = settlements.flatMap((s) => (s.attempt ? [s.attempt] : []));
  const result = await sql<{ id: string }>`
    with result as (
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
    )
    select id from settled`.execute(db);
  const applied = new Set(result.rows.map((r) => r.id));
  return settlements.map((s) => applied.has(s.id));
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
