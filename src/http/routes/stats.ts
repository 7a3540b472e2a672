import type { FastifyInstance } from "fastify";
import { type Kysely, sql } from "kysely";
import type { Mailroom } from "../../app.js";
import type { EmailServerView } from "../../core/email-servers.js";
import { iso } from "../../kernel/ids.js";
import { countSentSince } from "../../queue/outbox.js";
import { type Database, FINISHED_STATUSES, SENT_STATUSES } from "../../storage/schema.js";
import { requirePrincipal } from "../auth.js";
import { ref, replies } from "../schemas.js";

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

/** Sent and failed messages of one server, one number per bucket, oldest first. */
export interface ServerSeries {
  serverId: string;
  serverName: string;
  sent: number[];
  failed: number[];
}

export interface StatsRange {
  /** Start of the first bucket (ISO time) and each bucket's length. */
  start: string;
  bucketMs: number;
  buckets: number;
  series: ServerSeries[];
  totals: { sent: number; failed: number };
}

export interface StatsView {
  generatedAt: string;
  ranges: { "24h": StatsRange; "30d": StatsRange };
  queue: { queued: number; sending: number; held: number; oldestQueuedAt: string | null };
  /** Servers whose status is not ready, with the reason. */
  attention: Pick<EmailServerView, "id" | "name" | "driver" | "status" | "statusDetail" | "missingSettings">[];
  /** When each server last delivered a message. */
  lastSent: { serverId: string; at: string }[];
  /** Servers that sent their messages-per-day limit in the last 24 hours: routing skips them. */
  dailyLimitReached: { id: string; name: string; sent: number; limit: number }[];
  /** Bounce and complaint rates per server over `days` days, by the messages' sent time. */
  deliverability: { days: number; servers: ServerDeliverability[] };
}

/**
 * When a message ended: its sent time (a later delivery report or bounce does not move it),
 * or its last update for a failure. Plain integer arithmetic on the epoch-ms columns works
 * the same on SQLite and PostgreSQL.
 */
const endedAt = sql<number>`case when status = 'failed' then updated_at else sent_at end`;

/** The window of the bounce and complaint rates. */
export const DELIVERABILITY_DAYS = 30;

/** What providers reported of one server's messages sent in the last DELIVERABILITY_DAYS days. */
export interface ServerDeliverability {
  serverId: string;
  serverName: string;
  sent: number;
  /** Messages whose status is a provider's report: delivered, bounced or complained. */
  reported: number;
  delivered: number;
  bounced: number;
  complained: number;
  /** bounced / sent and complained / sent; null when nothing was sent. */
  bounceRate: number | null;
  complaintRate: number | null;
}

/** The servers a caller may see: null for every server (see Principal.serverIds). */
type Scope = readonly string[] | null;

async function range(db: Kysely<Database>, scope: Scope, now: number, bucketMs: number, buckets: number): Promise<StatsRange> {
  // Buckets end at the next whole bucket after now, so the last bar is the current hour or day.
  const end = Math.floor(now / bucketMs) * bucketMs + bucketMs;
  const start = end - buckets * bucketMs;
  // Literals, not parameters: SQLite would bind a JS number as REAL and divide without truncating.
  const bucket = sql<number>`(${endedAt} - ${sql.lit(start)}) / ${sql.lit(bucketMs)}`;
  const rows = await db
    .selectFrom("messages")
    .select([
      "server_id",
      sql<string>`max(server_name)`.as("server_name"),
      "status",
      bucket.as("bucket"),
      sql<number>`count(*)`.as("n"),
    ])
    .where("status", "in", FINISHED_STATUSES)
    .where(endedAt, ">=", sql.lit(start))
    .where(inScope(scope))
    .groupBy(["server_id", "status", bucket])
    .execute();

  const byServer = new Map<string, ServerSeries>();
  const totals = { sent: 0, failed: 0 };
  for (const row of rows) {
    const index = Number(row.bucket);
    if (index < 0 || index >= buckets) continue;
    let series = byServer.get(row.server_id);
    if (!series) {
      series = {
        serverId: row.server_id,
        serverName: row.server_name,
        sent: Array(buckets).fill(0),
        failed: Array(buckets).fill(0),
      };
      byServer.set(row.server_id, series);
    }
    const kind = row.status === "failed" ? "failed" : "sent";
    series[kind][index] += Number(row.n);
    totals[kind] += Number(row.n);
  }
  const series = [...byServer.values()].sort((a, b) => a.serverName.localeCompare(b.serverName));
  return { start: iso(start) as string, bucketMs, buckets, series, totals };
}

/** Per server, its messages sent in the window by their status now (a bounce reported later counts). */
async function deliverability(db: Kysely<Database>, scope: Scope, now: number): Promise<ServerDeliverability[]> {
  const rows = await db
    .selectFrom("messages")
    .select(["server_id", sql<string>`max(server_name)`.as("server_name"), "status", sql<number>`count(*)`.as("n")])
    .where("status", "in", SENT_STATUSES)
    .where("sent_at", ">=", now - DELIVERABILITY_DAYS * DAY)
    .where(inScope(scope))
    .groupBy(["server_id", "status"])
    .execute();
  const byServer = new Map<string, ServerDeliverability>();
  for (const row of rows) {
    let entry = byServer.get(row.server_id);
    if (!entry) {
      entry = {
        serverId: row.server_id,
        serverName: row.server_name,
        sent: 0,
        reported: 0,
        delivered: 0,
        bounced: 0,
        complained: 0,
        bounceRate: null,
        complaintRate: null,
      };
      byServer.set(row.server_id, entry);
    }
    const n = Number(row.n);
    entry.sent += n;
    if (row.status !== "sent") {
      entry.reported += n;
      entry[row.status as "delivered" | "bounced" | "complained"] += n;
    }
  }
  const servers = [...byServer.values()].sort((a, b) => a.serverName.localeCompare(b.serverName));
  for (const s of servers) {
    s.bounceRate = s.sent ? s.bounced / s.sent : null;
    s.complaintRate = s.sent ? s.complained / s.sent : null;
  }
  return servers;
}

/** A where-clause keeping only the rows of servers in scope. */
function inScope(scope: Scope) {
  if (scope === null) return sql<boolean>`1 = 1`;
  return scope.length ? sql<boolean>`server_id in (${sql.join(scope)})` : sql<boolean>`1 = 0`;
}

/** The overview: delivery per server over 24 hours and 30 days, the queue, and servers needing attention. */
export function statsRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.get(
    "/api/stats",
    {
      schema: {
        tags: ["messages"],
        summary:
          "Messages sent and failed per server (24 hours, 30 days), queue depth, servers needing attention, bounce and complaint rates (30 days)",
        response: replies(200, ref("Stats")),
      },
    },
    async (request): Promise<StatsView> => {
      const db = mailroom.ctx.db;
      const scope = requirePrincipal(request).serverIds;
      const now = Date.now();
      const [day, month] = [await range(db, scope, now, HOUR, 24), await range(db, scope, now, DAY, 30)];

      const counts = await db
        .selectFrom("messages")
        .select(["status", sql<number>`count(*)`.as("n"), sql<number | null>`min(created_at)`.as("oldest")])
        .where("status", "in", ["queued", "sending", "held"])
        .where(inScope(scope))
        .groupBy("status")
        .execute();
      const queue = { queued: 0, sending: 0, held: 0, oldestQueuedAt: null as string | null };
      for (const row of counts) {
        queue[row.status as "queued" | "sending" | "held"] = Number(row.n);
        if (row.status === "queued" && row.oldest !== null) queue.oldestQueuedAt = iso(Number(row.oldest));
      }

      const serverRows = (await db.selectFrom("email_servers").selectAll().orderBy("name").execute()).filter(
        (row) => scope === null || scope.includes(row.id),
      );
      const attention = serverRows
        .filter((row) => row.status !== "ready")
        .map((row) => {
          const view = mailroom.servers.toView(row);
          return {
            id: view.id,
            name: view.name,
            driver: view.driver,
            status: view.status,
            statusDetail: view.statusDetail,
            missingSettings: view.missingSettings,
          };
        });

      // One indexed look-up per server (messages_server: server_id, created_at) instead of a scan of the log.
      const lastSent: StatsView["lastSent"] = [];
      for (const row of serverRows) {
        const last = await db
          .selectFrom("messages")
          .select("sent_at")
          .where("server_id", "=", row.id)
          .where("status", "in", SENT_STATUSES)
          .orderBy("created_at", "desc")
          .limit(1)
          .executeTakeFirst();
        if (last?.sent_at != null) lastSent.push({ serverId: row.id, at: iso(Number(last.sent_at)) as string });
      }

      const dailyLimitReached: StatsView["dailyLimitReached"] = [];
      for (const row of serverRows) {
        const { messagesPerDay } = JSON.parse(row.settings) as { messagesPerDay?: number };
        if (!messagesPerDay) continue;
        const sent = await countSentSince(db, row.id, now - DAY);
        if (sent >= messagesPerDay) dailyLimitReached.push({ id: row.id, name: row.name, sent, limit: messagesPerDay });
      }

      return {
        generatedAt: iso(now) as string,
        ranges: { "24h": day, "30d": month },
        queue,
        attention,
        lastSent,
        dailyLimitReached,
        deliverability: { days: DELIVERABILITY_DAYS, servers: await deliverability(db, scope, now) },
      };
    },
  );
}
