/**
 * Delivers webhook events: claims due deliveries with a lease (FOR UPDATE SKIP LOCKED on
 * PostgreSQL, so processes sharing a database never take the same one), POSTs each signed
 * body, and records every attempt. A process that dies mid-attempt leaves its delivery to be
 * claimed again when the lease runs out: at least once, never twice otherwise.
 *
 * Policy (docs/events.md): 2xx is delivered. 410 Gone fails at once (the receiver says the
 * endpoint is gone). Anything else (another status, a timeout, a network failure, a refused
 * address) is retried on RETRY_SCHEDULE_MS, a 429 or 503 no sooner than its Retry-After, and
 * the delivery fails after the last step (about 27 hours, as Svix). A test ping is tried once.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { sql } from "kysely";
import type { AppContext } from "../../core/context.js";
import type { WebhookDeliveriesTable, WebhookDeliveryStatus, WebhooksTable } from "../../storage/schema.js";
import { signWithEach } from "../signing.js";
import { ownerKey, ownerStates } from "./owners.js";
import { postWebhook, WEBHOOK_TIMEOUT_MS } from "./post.js";
import { REFRESH_MS, type WebhookRegistry } from "./registry.js";

/** Waits after the first attempt, Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts, ~27.6 h). */
export const RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];
/** A claim lasts this long: longer than an attempt can take (WEBHOOK_TIMEOUT_MS). */
const LEASE_MS = 60_000;
/** The longest a Retry-After is honoured for; a longer one waits this long. */
const MAX_RETRY_AFTER_MS = 24 * 3600_000;
/** Finished deliveries (and their attempts) are kept this long, then purged hourly. */
export const KEEP_FINISHED_MS = 30 * 24 * 3600_000;
const PURGE_EVERY_MS = 3600_000;
/** How long a delivery recorded here (maybe not committed yet) is looked for at short intervals. */
const EXPECT_FOR_MS = 5000;

export interface DispatcherOptions {
  /** Deliveries posted at once by this process. */
  concurrency: number;
  /** How often an idle dispatcher looks for due deliveries (events recorded here wake it at once). */
  pollMs: number;
  timeoutMs?: number;
}

export interface AttemptOutcome {
  status: WebhookDeliveryStatus;
  httpStatus: number | null;
  error: string | null;
}

export class WebhookDispatcher {
  readonly owner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly inFlight = new Map<string, Promise<void>>();
  private wakeUp: (() => void) | null = null;
  /** Deliveries recorded in this process that no claim has found yet: id -> when to stop looking (real time). */
  private readonly expected = new Map<string, number>();
  private quickWaitMs = 5;
  private purgeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ctx: AppContext,
    private readonly registry: WebhookRegistry,
    private readonly options: DispatcherOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
    this.purgeTimer = setInterval(() => void this.purge(), PURGE_EVERY_MS);
    this.purgeTimer.unref();
  }

  /** Stops claiming and waits for the attempts under way (each ends within its timeout). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.wake();
    await this.loopDone;
    await Promise.allSettled([...this.inFlight.values()]);
  }

  wake(): void {
    this.wakeUp?.();
  }

  /** Deliveries just recorded: looked for at once, and again shortly until their commit shows them. */
  expect(ids: string[]): void {
    const until = Date.now() + EXPECT_FOR_MS;
    for (const id of ids) this.expected.set(id, until);
    this.quickWaitMs = 5;
    this.wake();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const free = this.options.concurrency - this.inFlight.size;
      let full = false;
      if (free > 0) {
        try {
          const claimed = await this.claim(free);
          for (const row of claimed) this.expected.delete(row.id);
          await this.dispatch(claimed);
          full = claimed.length === free;
          failures = 0;
        } catch (error) {
          if (!this.ctx.storage.health.failed(error)) this.ctx.log.warn({ err: error }, "webhooks: could not claim deliveries");
          failures++;
        }
      }
      if (!full && this.running) await this.idle(failures);
    }
  }

  private idle(failures: number): Promise<void> {
    const now = Date.now();
    for (const [id, until] of this.expected) if (until < now) this.expected.delete(id);
    // Without any webhook nothing can be due: look less often (a webhook made here wakes it at once).
    let wait = this.registry.isEmpty() ? Math.max(this.options.pollMs, REFRESH_MS) : this.options.pollMs;
    if (failures) wait = Math.min(wait * 2 ** Math.min(failures, 10), 10_000);
    else if (this.expected.size) {
      wait = Math.min(this.quickWaitMs, wait);
      this.quickWaitMs = Math.min(this.quickWaitMs * 2, this.options.pollMs);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, wait);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  private async claim(limit: number): Promise<WebhookDeliveriesTable[]> {
    const now = this.ctx.clock();
    const lock = this.ctx.storage.dialect === "postgres" ? sql` for update skip locked` : sql``;
    const { rows } = await sql<WebhookDeliveriesTable>`
      update webhook_deliveries
         set lease_owner = ${this.owner}, next_attempt_at = ${now + LEASE_MS}, attempts = attempts + 1, updated_at = ${now}
       where id in (select id from webhook_deliveries
                     where status = 'pending' and next_attempt_at <= ${now}
                     order by next_attempt_at limit ${limit}${lock})
      returning *`.execute(this.ctx.db);
    return rows.map((r) => ({ ...r, attempts: Number(r.attempts) }));
  }

  /** Starts an attempt for each claimed delivery; the webhooks are read fresh, with their owners' state. */
  private async dispatch(claimed: WebhookDeliveriesTable[]): Promise<void> {
    if (!claimed.length) return;
    const hooks = await this.webhooks([...new Set(claimed.map((d) => d.webhook_id))]);
    for (const delivery of claimed) {
      const done = this.attempt(delivery, hooks.get(delivery.webhook_id))
        .then(() => {})
        .catch((error) => this.ctx.log.error({ err: error, delivery: delivery.id }, "webhooks: an attempt crashed"))
        .finally(() => {
          this.inFlight.delete(delivery.id);
          this.wake();
        });
      this.inFlight.set(delivery.id, done);
    }
  }

  async webhooks(ids: string[]): Promise<Map<string, { row: WebhooksTable; silencedBecause: string | null }>> {
    const rows = await this.ctx.db.selectFrom("webhooks").selectAll().where("id", "in", ids).execute();
    const owners = await ownerStates(this.ctx.db, rows, this.ctx.clock());
    return new Map(rows.map((row) => [row.id, { row, silencedBecause: owners.get(ownerKey(row)) ?? null }]));
  }

  /**
   * One attempt of a delivery this dispatcher holds (claimed, or created leased to it by "Send
   * test"), written with its outcome. Never throws for the receiver's sake.
   */
  async attempt(
    delivery: WebhookDeliveriesTable,
    hook: { row: WebhooksTable; silencedBecause: string | null } | undefined,
  ): Promise<AttemptOutcome> {
    const isTest = delivery.event_type === "test";
    const stopped = !hook
      ? "The webhook was deleted."
      : (hook.silencedBecause ??
        (hook.row.enabled !== 1 && !isTest ? "The webhook is disabled: enable it, then replay this delivery." : null));
    if (stopped || !hook) {
      const outcome: AttemptOutcome = { status: "failed", httpStatus: null, error: stopped };
      await this.settle(delivery, outcome, null);
      return outcome;
    }
    const now = this.ctx.clock();
    const secrets = [this.ctx.secrets.decrypt(hook.row.secret)];
    if (hook.row.previous_secret && Number(hook.row.previous_secret_until) > now) {
      secrets.push(this.ctx.secrets.decrypt(hook.row.previous_secret));
    }
    const timestamp = Math.floor(now / 1000);
    const startedAt = Date.now();
    let httpStatus: number | null = null;
    let retryAfterMs: number | undefined;
    let excerpt: string | null = null;
    let error: string | null = null;
    try {
      const answer = await postWebhook({
        url: hook.row.url,
        headers: { ...signWithEach(secrets, delivery.id, timestamp, delivery.payload) },
        body: delivery.payload,
        operator: this.ctx.config.operator,
        timeoutMs: this.options.timeoutMs ?? WEBHOOK_TIMEOUT_MS,
        redact: secrets.flatMap((s) => [s, s.replace(/^whsec_/, "")]),
      });
      httpStatus = answer.status;
      retryAfterMs = answer.retryAfterMs;
      excerpt = answer.excerpt || null;
      if (answer.status < 200 || answer.status > 299) error = `The receiver answered HTTP ${answer.status}.`;
    } catch (thrown) {
      const code = (thrown as { code?: unknown }).code;
      error = `${typeof code === "string" ? code : "network_error"}: ${(thrown as Error).message ?? String(thrown)}`;
    }
    const outcome = this.outcomeOf(delivery, httpStatus, error, retryAfterMs);
    await this.settle(delivery, outcome, {
      started_at: startedAt,
      duration_ms: Date.now() - startedAt,
      http_status: httpStatus,
      error,
      response_excerpt: excerpt,
    });
    return { status: outcome.status, httpStatus, error };
  }

  private outcomeOf(
    delivery: WebhookDeliveriesTable,
    httpStatus: number | null,
    error: string | null,
    retryAfterMs: number | undefined,
  ): AttemptOutcome & { nextAttemptAt?: number } {
    if (!error) return { status: "delivered", httpStatus, error: null };
    if (httpStatus === 410) return { status: "failed", httpStatus, error: `${error} (410 Gone: not retried)` };
    const schedule = RETRY_SCHEDULE_MS;
    if (delivery.event_type === "test" || delivery.attempts > schedule.length) {
      return { status: "failed", httpStatus, error };
    }
    let wait = schedule[delivery.attempts - 1] ?? schedule[schedule.length - 1];
    if ((httpStatus === 429 || httpStatus === 503) && retryAfterMs !== undefined) {
      wait = Math.min(Math.max(retryAfterMs, 1000), MAX_RETRY_AFTER_MS);
    }
    return { status: "pending", httpStatus, error, nextAttemptAt: this.ctx.clock() + wait };
  }

  /** Writes the outcome (only while the lease is ours) and the attempt (always: it happened). */
  private async settle(
    delivery: WebhookDeliveriesTable,
    outcome: AttemptOutcome & { nextAttemptAt?: number },
    attempt: {
      started_at: number;
      duration_ms: number;
      http_status: number | null;
      error: string | null;
      response_excerpt: string | null;
    } | null,
  ): Promise<void> {
    const now = this.ctx.clock();
    try {
      await this.ctx.db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable("webhook_deliveries")
          .set({
            status: outcome.status,
            lease_owner: null,
            next_attempt_at: outcome.nextAttemptAt ?? now,
            last_error: outcome.error,
            updated_at: now,
            ...(outcome.status === "delivered" ? { delivered_at: now } : {}),
          })
          .where("id", "=", delivery.id)
          .where("lease_owner", "=", this.owner)
          .where("status", "=", "pending")
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) === 0) {
          this.ctx.log.warn({ delivery: delivery.id }, "webhooks: lease lost before the outcome was recorded");
        }
        if (attempt)
          await trx
            .insertInto("webhook_attempts")
            .values({ delivery_id: delivery.id, ...attempt })
            .execute();
      });
    } catch (error) {
      // The lease runs out and the delivery is tried again: at least once, as after a crash.
      this.ctx.log.warn(
        { err: error, delivery: delivery.id },
        "webhooks: could not record an attempt; it is retried after its lease",
      );
    }
  }

  /** Removes deliveries finished more than KEEP_FINISHED_MS ago, with their attempts. Never throws. */
  async purge(): Promise<number> {
    const before = this.ctx.clock() - KEEP_FINISHED_MS;
    let removed = 0;
    try {
      for (;;) {
        const rows = await this.ctx.db
          .selectFrom("webhook_deliveries")
          .select("id")
          // A literal, so PostgreSQL sees it matches the partial index webhook_deliveries_finished.
          .where(sql<boolean>`status <> 'pending'`)
          .where("updated_at", "<", before)
          .limit(500)
          .execute();
        if (!rows.length) return removed;
        const ids = rows.map((r) => r.id);
        await this.ctx.db.transaction().execute(async (trx) => {
          await trx.deleteFrom("webhook_attempts").where("delivery_id", "in", ids).execute();
          await trx.deleteFrom("webhook_deliveries").where("id", "in", ids).where("status", "<>", "pending").execute();
        });
        removed += ids.length;
        if (rows.length < 500) return removed;
      }
    } catch (error) {
      this.ctx.log.warn({ err: error }, "webhooks: could not purge old deliveries; trying again in an hour");
      return removed;
    }
  }
}
