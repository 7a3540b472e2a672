import { type Kysely, sql } from "kysely";
import type { DialectName } from "../storage/dialect.js";
import { type Database, type EmailServersTable, type MessagesTable, SENT_STATUSES } from "../storage/schema.js";
import { type Settlement, settleCtes, settleOnSqlite } from "./settle.js";

export {
  type AttemptRecord,
  type Outcome,
  type Settlement,
  settleMessages,
} from "./settle.js";

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

export interface Claimed {
  messages: MessagesTable[];
  /** The claimed messages' servers, read with the claim. */
  servers: Map<string, ClaimedServer>;
  /** For each settlement carried, whether it applied (see settleOnSqlite). */
  settled: boolean[];
}

/**
 * Claims like claimDueMessages, for every server (the list is read by the claim itself, so a
 * server created a moment ago is never missed), and reads the claimed messages' servers and
 * breakers with it. On PostgreSQL the whole of it is one statement, one round trip, which
 * also writes `settlements` (results that finished meanwhile) when given: a claim usually
 * follows sends that just ended, so their results need no statement of their own.
 */
export async function claimWithServers(
  db: Kysely<Database>,
  dialect: DialectName,
  owner: string,
  plan: ClaimPlan,
  settlements: Settlement[] = [],
): Promise<Claimed> {
  if (dialect === "sqlite") return claimWithServersOnSqlite(db, owner, plan, settlements);
  const named = plan.quotas;
  const settling = settlements.map((s) => s.id);
  const result = await sql<MessagesTable & { claimed_servers: string | null; settled_ids: string[] | null }>`
    with ${settlements.length ? sql`${settleCtes(owner, settlements, plan.now)},` : sql``}
    quota as (
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
             -- A result written by this statement is not claimed by it (lease ran out meanwhile).
             and id <> all(${settling}::text[])
           order by next_attempt_at
           limit q.n
           for update skip locked) m
       where q.n > 0 and ${plan.limit}::int > 0),
    ranked as (
      select id, next_attempt_at, row_number() over (partition by server_id order by next_attempt_at) as turn from due),
    claimed as (
      update messages
         set status = 'sending', lease_owner = ${owner}, next_attempt_at = ${plan.now + plan.leaseMs},
             attempts = attempts + 1, updated_at = ${plan.now}
       where id in (select id from ranked order by turn, next_attempt_at limit ${plan.limit})
      returning *)
    select c.*,
           -- Once (on the first row): the claimed messages' servers as they are now, and the results that applied.
           case when row_number() over () = 1 then (
             select json_agg(json_build_object('row', to_jsonb(s), 'failures', coalesce(b.consecutive_failures, 0)))::text
               from email_servers s left join server_breakers b on b.server_id = s.id
              where s.id in (select server_id from claimed)) end as claimed_servers,
           case when row_number() over () = 1 then ${settlements.length ? sql`(select array_agg(id) from settled)` : sql`null::text[]`} end as settled_ids
      -- One row at least, so the results are reported when nothing is claimed.
      from (select 1) as one left join claimed c on true`.execute(db);
  const first = result.rows[0];
  const applied = new Set(first?.settled_ids ?? []);
  const rows = result.rows.filter((r) => r.id !== null);
  const servers = new Map<string, ClaimedServer>();
  const found = first?.claimed_servers;
  for (const s of found ? (JSON.parse(found) as { row: EmailServersTable; failures: number }[]) : []) {
    servers.set(s.row.id, { row: s.row, failuresInARow: Number(s.failures) });
  }
  const messages = rows.map(({ claimed_servers: _, settled_ids: __, ...r }) => ({
    ...r,
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
  }));
  for (const m of messages) if (!servers.has(m.server_id)) servers.set(m.server_id, { row: undefined, failuresInARow: 0 });
  return { messages, servers, settled: settlements.map((s) => applied.has(s.id)) };
}

/**
 * SQLite: the results, the server list, the claim and the servers' rows are in-process
 * statements, in one transaction (one commit instead of one for the results and one for the claim).
 */
function claimWithServersOnSqlite(
  db: Kysely<Database>,
  owner: string,
  plan: ClaimPlan,
  settlements: Settlement[],
): Promise<Claimed> {
  return db.transaction().execute(async (trx) => {
    // The claim first: a result that puts its message back in the queue (a move to the next
    // server of its route) must not be claimed again by this same claim, while it is in flight.
    const claimed = await claimOnSqlite(trx, owner, plan);
    const applied = await settleOnSqlite(trx, owner, settlements, plan.now);
    return { ...claimed, settled: settlements.map((s) => applied.has(s.id)) };
  });
}

async function claimOnSqlite(db: Kysely<Database>, owner: string, plan: ClaimPlan): Promise<Omit<Claimed, "settled">> {
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
    .where("status", "in", SENT_STATUSES)
    .where("sent_at", ">=", since)
    .executeTakeFirstOrThrow();
  return Number(n);
}
