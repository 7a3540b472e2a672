import { sql } from "kysely";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AppContext } from "./core/context.js";
import type { Retention, RetentionStatus } from "./core/retention.js";

/**
 * Prometheus metrics of one Mailroom. Counters are counted by this process; gauges about
 * the queue are read from the database at scrape time, so every process shows the whole
 * shared queue.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly attempts = new Counter({
    name: "mailroom_delivery_attempts_total",
    help: "Delivery attempts by server and outcome (sent, transient, recipient, server, reauthorization)",
    labelNames: ["server", "outcome"],
    registers: [this.registry],
  });
  readonly deliveryLatency = new Histogram({
    name: "mailroom_delivery_latency_seconds",
    help: "From a message's acceptance to its delivery",
    labelNames: ["server"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800, 7200],
    registers: [this.registry],
  });
  readonly tokenRefreshes = new Counter({
    name: "mailroom_oauth_token_refreshes_total",
    help: "OAuth access token refreshes by server id and result (ok, failed, invalid_grant)",
    labelNames: ["server_id", "result"],
    registers: [this.registry],
  });
  readonly smtpSessions = new Counter({
    name: "mailroom_smtp_sessions_total",
    help: "SMTP submission sessions opened, by listener (smtp: STARTTLS port, smtps: implicit TLS)",
    labelNames: ["listener"],
    registers: [this.registry],
  });
  readonly smtpAuthFailures = new Counter({
    name: "mailroom_smtp_auth_failures_total",
    help: "Refused SMTP logins by reason (invalid_token, forbidden, rate_limited)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly smtpMessages = new Counter({
    name: "mailroom_smtp_messages_total",
    help: "Messages submitted over SMTP by result (accepted, replayed, rejected, deferred, too_big)",
    labelNames: ["result"],
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: "mailroom_http_requests_total",
    help: "HTTP requests by route and status",
    labelNames: ["method", "route", "status"],
    registers: [this.registry],
  });

  constructor(ctx: AppContext, retention: Retention) {
    const db = ctx.db;
    // One read of the status serves the retention gauges of one scrape.
    let pending: Promise<RetentionStatus> | null = null;
    const status = () => {
      pending ??= retention.status().finally(() => setImmediate(() => (pending = null)));
      return pending;
    };
    new Gauge({
      name: "mailroom_database_size_bytes",
      help: "Size of the database (SQLite: the file's pages; PostgreSQL: pg_database_size)",
      registers: [this.registry],
      async collect() {
        this.set((await status()).databaseBytes);
      },
    });
    new Gauge({
      name: "mailroom_messages_by_tier",
      help: "Messages in the log by retention tier: full (with their body) or metadata_only (body removed by retention)",
      labelNames: ["tier"],
      registers: [this.registry],
      async collect() {
        const { messages } = await status();
        this.set({ tier: "full" }, messages.full);
        this.set({ tier: "metadata_only" }, messages.metadataOnly);
      },
    });
    new Gauge({
      name: "mailroom_retention_last_purge_timestamp_seconds",
      help: "When the last retention purge finished (0: none yet)",
      registers: [this.registry],
      async collect() {
        const last = (await status()).lastPurge;
        this.set(last?.finishedAt ? Date.parse(last.finishedAt) / 1000 : 0);
      },
    });
    new Gauge({
      name: "mailroom_retention_last_purge_removed",
      help: "What the last retention purge removed: bodies, messages (whole, with their attempts), audit entries",
      labelNames: ["kind"],
      registers: [this.registry],
      async collect() {
        const last = (await status()).lastPurge;
        this.set({ kind: "bodies" }, last?.bodies ?? 0);
        this.set({ kind: "messages" }, last?.messages ?? 0);
        this.set({ kind: "audit" }, last?.audit ?? 0);
      },
    });
    new Gauge({
      name: "mailroom_messages",
      help: "Messages in the log by server and status",
      labelNames: ["server", "status"],
      registers: [this.registry],
      async collect() {
        this.reset();
        const rows = await db
          .selectFrom("messages")
          .select(["server_name", "status", (eb) => eb.fn.countAll<number>().as("n")])
          .groupBy(["server_name", "status"])
          .execute();
        for (const r of rows) this.set({ server: r.server_name, status: r.status }, Number(r.n));
      },
    });
    new Gauge({
      name: "mailroom_queue_depth",
      help: "Messages waiting to be sent (queued or being sent)",
      registers: [this.registry],
      async collect() {
        const { n } = await db
          .selectFrom("messages")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("status", "in", ["queued", "sending"])
          .executeTakeFirstOrThrow();
        this.set(Number(n));
      },
    });
    new Gauge({
      name: "mailroom_queue_oldest_age_seconds",
      help: "Age of the oldest message still waiting to be sent",
      registers: [this.registry],
      async collect() {
        const row = await db
          .selectFrom("messages")
          .select(sql<number | null>`min(created_at)`.as("oldest"))
          .where("status", "in", ["queued", "sending"])
          .executeTakeFirst();
        this.set(row?.oldest ? (Date.now() - Number(row.oldest)) / 1000 : 0);
      },
    });
  }
}
