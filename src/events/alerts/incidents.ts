/**
 * Incidents: a condition from the moment it starts to the moment it ends, each announced once
 * to every enabled channel when it opens and once when it resolves. However many processes
 * evaluate at once, only one opens an incident (the unique open_key: the insert of the others
 * does nothing) and only one resolves it (a conditional update), and only that one queues the
 * notifications, in the same transaction: an alert is neither lost nor sent twice.
 */
import type { Kysely } from "kysely";
import type { AppContext } from "../../core/context.js";
import { iso, newId } from "../../kernel/ids.js";
import type { AlertIncidentsTable, AlertNotificationsTable, Database } from "../../storage/schema.js";
import type { AlertChannels, ChannelRow } from "./channels.js";
import { type Condition, currentConditions } from "./conditions.js";
import type { AlertThresholds } from "./thresholds.js";

export type IncidentRow = AlertIncidentsTable;
export type NotificationRow = AlertNotificationsTable;

export interface EvaluationResult {
  opened: string[];
  resolved: string[];
}

/** The pending notification rows of one event to every enabled channel. */
export function notificationsFor(
  incidentId: string,
  event: NotificationRow["event"],
  channels: ChannelRow[],
  now: number,
): NotificationRow[] {
  return channels.map((c) => ({
    id: newId(),
    incident_id: incidentId,
    channel_id: c.id,
    channel_name: c.name,
    channel_type: c.type,
    event,
    status: "pending",
    attempts: 0,
    next_attempt_at: now,
    lease_owner: null,
    lease_until: null,
    error_code: null,
    error: null,
    response_status: null,
    message_id: null,
    server_name: null,
    created_at: now,
    updated_at: now,
    finished_at: null,
  }));
}

export class Incidents {
  constructor(
    private readonly ctx: AppContext,
    private readonly channels: AlertChannels,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /**
   * Compares what is wrong now with the open incidents: opens the new ones, resolves the
   * ended ones, refreshes the values of the rest. The open incidents are read before the
   * conditions, so a stale reading can never reopen what another process just resolved.
   */
  async evaluate(thresholds: AlertThresholds, now: number): Promise<EvaluationResult> {
    const open = await this.db.selectFrom("alert_incidents").selectAll().where("open_key", "is not", null).execute();
    const conditions = await currentConditions(this.db, thresholds, now);
    const byKey = new Map(conditions.map((c) => [c.key, c]));
    const openKeys = new Set(open.map((i) => i.open_key));
    const result: EvaluationResult = { opened: [], resolved: [] };

    for (const condition of conditions) {
      if (!condition.opens || openKeys.has(condition.key)) continue;
      const id = await this.open(condition, now);
      if (id) result.opened.push(id);
    }
    for (const incident of open) {
      const condition = byKey.get(incident.key);
      if (condition?.holds) {
        const values = JSON.stringify(condition.values);
        if (values !== incident.last_values) {
          await this.db
            .updateTable("alert_incidents")
            .set({ last_values: values, updated_at: now })
            .where("id", "=", incident.id)
            .where("resolved_at", "is", null)
            .execute();
        }
        continue;
      }
      const gone = incident.subject !== "" && !(await this.serverExists(incident.subject));
      const resolution = gone ? "The server was deleted." : "The condition ended.";
      if (await this.resolve(incident, resolution, now)) result.resolved.push(incident.id);
    }
    return result;
  }

  private async serverExists(id: string): Promise<boolean> {
    return (await this.db.selectFrom("email_servers").select("id").where("id", "=", id).executeTakeFirst()) !== undefined;
  }

  /** Opens an incident unless another process already has: answers its id, or null. */
  private async open(c: Condition, now: number): Promise<string | null> {
    return this.db.transaction().execute(async (trx) => {
      const id = newId();
      const inserted = await trx
        .insertInto("alert_incidents")
        .values({
          id,
          kind: c.kind,
          subject: c.subject,
          subject_label: c.subjectLabel,
          key: c.key,
          open_key: c.key,
          title: c.title,
          detail: c.detail,
          last_values: JSON.stringify(c.values),
          opened_at: now,
          resolved_at: null,
          resolution: null,
          updated_at: now,
        })
        .onConflict((oc) => oc.column("open_key").doNothing())
        .returning("id")
        .executeTakeFirst();
      if (!inserted) return null;
      const rows = notificationsFor(id, "opened", await this.channels.enabledRows(trx), now);
      if (rows.length) await trx.insertInto("alert_notifications").values(rows).execute();
      this.ctx.log.warn({ incident: id, kind: c.kind, subject: c.subjectLabel }, `Alert: ${c.title}`);
      return id;
    });
  }

  /** Resolves an open incident unless another process already has: answers whether this one did. */
  private async resolve(incident: IncidentRow, resolution: string, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const done = await trx
        .updateTable("alert_incidents")
        .set({ open_key: null, resolved_at: now, resolution, updated_at: now })
        .where("id", "=", incident.id)
        .where("resolved_at", "is", null)
        .executeTakeFirst();
      if (Number(done.numUpdatedRows) !== 1) return false;
      const rows = notificationsFor(incident.id, "resolved", await this.channels.enabledRows(trx), now);
      if (rows.length) await trx.insertInto("alert_notifications").values(rows).execute();
      this.ctx.log.info({ incident: incident.id, kind: incident.kind, subject: incident.subject_label }, "Alert resolved");
      return true;
    });
  }

  /** The history, newest first, each incident with its notifications (and an email's message status). */
  async list(
    options: { limit?: number; offset?: number; open?: boolean } = {},
  ): Promise<{ items: IncidentView[]; total: number }> {
    let query = this.db.selectFrom("alert_incidents");
    if (options.open === true) query = query.where("open_key", "is not", null);
    if (options.open === false) query = query.where("open_key", "is", null);
    const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
    const rows = await query
      .selectAll()
      .orderBy("opened_at", "desc")
      .orderBy("id")
      .limit(options.limit ?? 50)
      .offset(options.offset ?? 0)
      .execute();
    const ids = rows.map((r) => r.id);
    const notes = ids.length
      ? await this.db
          .selectFrom("alert_notifications as n")
          .leftJoin("messages as m", "m.id", "n.message_id")
          .selectAll("n")
          .select(["m.status as message_status", "m.last_error as message_error"])
          .where("n.incident_id", "in", ids)
          .orderBy("n.created_at")
          .orderBy("n.channel_name")
          .execute()
      : [];
    return {
      total: Number(total),
      items: rows.map((r) => ({
        id: r.id,
        kind: r.kind,
        subject: r.subject === "" ? null : { id: r.subject, name: r.subject_label },
        title: r.title,
        detail: r.detail,
        values: JSON.parse(r.last_values) as Record<string, unknown>,
        open: r.resolved_at === null,
        openedAt: iso(Number(r.opened_at)) as string,
        resolvedAt: iso(r.resolved_at === null ? null : Number(r.resolved_at)),
        resolution: r.resolution,
        notifications: notes
          .filter((n) => n.incident_id === r.id)
          .map((n) => ({
            id: n.id,
            event: n.event,
            channel: { id: n.channel_id, name: n.channel_name, type: n.channel_type },
            status: n.status,
            attempts: Number(n.attempts),
            nextAttemptAt: n.status === "pending" ? iso(Number(n.next_attempt_at)) : null,
            error: n.error_code ? { code: n.error_code, message: n.error ?? "" } : null,
            responseStatus: n.response_status === null ? null : Number(n.response_status),
            message: n.message_id
              ? { id: n.message_id, status: n.message_status ?? null, error: n.message_error ?? null, server: n.server_name }
              : null,
            at: iso(Number(n.finished_at ?? n.updated_at)) as string,
          })),
      })),
    };
  }
}

export interface NotificationView {
  id: string;
  event: string;
  channel: { id: string | null; name: string; type: string };
  status: string;
  attempts: number;
  nextAttemptAt: string | null;
  error: { code: string; message: string } | null;
  responseStatus: number | null;
  message: { id: string; status: string | null; error: string | null; server: string | null } | null;
  at: string;
}

export interface IncidentView {
  id: string;
  kind: string;
  subject: { id: string; name: string } | null;
  title: string;
  detail: string;
  values: Record<string, unknown>;
  open: boolean;
  openedAt: string;
  resolvedAt: string | null;
  resolution: string | null;
  notifications: NotificationView[];
}
