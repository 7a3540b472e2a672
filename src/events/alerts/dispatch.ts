/**
 * The alerts' outbox: each notification row is claimed with a lease (so one process sends
 * it, even with several on one PostgreSQL), sent, and settled; a failed try waits its backoff
 * step and is tried again, up to a few times, so a receiver down for a few minutes still
 * gets the alert.
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import type { Kysely } from "kysely";
import type { AppContext } from "../../core/context.js";
import type { Database } from "../../storage/schema.js";
import { alertOf } from "./format.js";
import type { NotificationRow } from "./incidents.js";
import type { AlertSender, SendOutcome } from "./senders.js";

/** Waits before each retry: 6 tries over about 18 minutes, then the alert is recorded as failed. */
export const ALERT_BACKOFF_MS = [30_000, 60_000, 2 * 60_000, 5 * 60_000, 10 * 60_000];
/** How long a claimed notification is this process's: longer than a receiver's timeout. */
const LEASE_MS = 60_000;
const BATCH = 20;

export class AlertOutbox {
  readonly owner = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  constructor(
    private readonly ctx: AppContext,
    private readonly sender: AlertSender,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** Sends what is due; answers how many notifications this process handled. */
  async dispatchDue(): Promise<number> {
    const now = this.ctx.clock();
    const due = await this.db
      .selectFrom("alert_notifications")
      .select("id")
      .where("status", "=", "pending")
      .where("next_attempt_at", "<=", now)
      .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<=", now)]))
      .orderBy("next_attempt_at")
      .limit(BATCH)
      .execute();
    const claimed: NotificationRow[] = [];
    for (const { id } of due) {
      // A conditional write: of two processes that read the same row, one claims it.
      const row = await this.db
        .updateTable("alert_notifications")
        .set({ lease_owner: this.owner, lease_until: now + LEASE_MS, updated_at: now })
        .where("id", "=", id)
        .where("status", "=", "pending")
        .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<=", now)]))
        .returningAll()
        .executeTakeFirst();
      if (row) claimed.push(row);
    }
    await Promise.all(claimed.map((row) => this.deliver(row)));
    return claimed.length;
  }

  private async deliver(row: NotificationRow): Promise<void> {
    const [incident, channel] = await Promise.all([
      this.db.selectFrom("alert_incidents").selectAll().where("id", "=", row.incident_id).executeTakeFirstOrThrow(),
      row.channel_id
        ? this.db.selectFrom("alert_channels").selectAll().where("id", "=", row.channel_id).executeTakeFirst()
        : undefined,
    ]);
    let outcome: SendOutcome;
    if (channel?.enabled !== 1) {
      const why = channel ? "was turned off" : "was deleted";
      outcome = {
        status: "not_sent",
        retry: false,
        ms: 0,
        error: { code: "alert_channel_not_found", message: `The channel ${why} before the alert was sent.`, hint: "" },
      };
    } else {
      const alert = alertOf(row.id, row.event, incident, this.ctx.config.publicUrl);
      outcome = await this.sender.send(channel, alert, incident.subject === "" ? null : incident.subject);
    }
    await this.settle(row, outcome);
  }

  private async settle(row: NotificationRow, outcome: SendOutcome): Promise<void> {
    const now = this.ctx.clock();
    const attempts = Number(row.attempts) + 1;
    const again = outcome.retry && attempts <= ALERT_BACKOFF_MS.length;
    const status: NotificationRow["status"] = again ? "pending" : outcome.status;
    await this.db
      .updateTable("alert_notifications")
      .set({
        status,
        attempts,
        next_attempt_at: again ? now + ALERT_BACKOFF_MS[attempts - 1] : row.next_attempt_at,
        lease_owner: null,
        lease_until: null,
        error_code: outcome.error?.code ?? null,
        error: outcome.error?.message.slice(0, 2000) ?? null,
        response_status: outcome.responseStatus ?? null,
        message_id: outcome.messageId ?? null,
        server_name: outcome.serverName ?? null,
        updated_at: now,
        finished_at: again ? null : now,
      })
      .where("id", "=", row.id)
      .where("lease_owner", "=", this.owner)
      .execute();
    const log = { notification: row.id, channel: row.channel_name, event: row.event, status, attempts };
    if (outcome.error)
      this.ctx.log.warn({ ...log, code: outcome.error.code, error: outcome.error.message }, "alert not delivered");
    else this.ctx.log.info(log, "alert sent");
  }
}
