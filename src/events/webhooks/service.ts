/**
 * Webhooks as their owners manage them: register, read, edit, delete, rotate the secret,
 * the deliveries log, replay and "Send test". Who sees what: an API token its own webhooks
 * (which hear of the messages it sent), a user theirs (every message: they need "View
 * messages"), a super admin every webhook. Anyone else's webhook answers 404, as if absent.
 */
import type { Kysely } from "kysely";
import { can, type Principal } from "../../auth/permissions.js";
import { type Actor, writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import { type FieldProblem, fieldError, MailroomError } from "../../kernel/errors.js";
import { iso, newId } from "../../kernel/ids.js";
import type { Database, WebhookDeliveriesTable, WebhooksTable } from "../../storage/schema.js";
import { generateSigningSecret } from "../signing.js";
import type { WebhookDispatcher } from "./dispatcher.js";
import { isWebhookEvent, testPayload, WEBHOOK_EVENTS } from "./payload.js";
import { webhookUrlProblem } from "./post.js";
import type { WebhookRegistry } from "./registry.js";
import { deliveryViews, type WebhookDeliveryView, type WebhookView, webhookViews } from "./views.js";

export type { WebhookDeliveryView, WebhookView } from "./views.js";

export const MAX_WEBHOOKS_PER_OWNER = 20;
export const MAX_URL_LENGTH = 2000;
export const MAX_DESCRIPTION_LENGTH = 500;
/** After a rotation the old secret signs beside the new one this long, so receivers can switch. */
export const ROTATION_OVERLAP_MS = 24 * 3600_000;

export interface WebhookInput {
  url?: string;
  events?: string[];
  enabled?: boolean;
  description?: string;
}

const LEASE_FOR_TEST_MS = 60_000;

export class WebhookService {
  constructor(
    private readonly ctx: AppContext,
    private readonly registry: WebhookRegistry,
    private readonly dispatcher: WebhookDispatcher,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** A user hears of every message, so needs "View messages"; a token hears only of its own. */
  private assertMayUse(principal: Principal): void {
    if (principal.kind === "user" && !can(principal, "messages.view")) {
      throw new MailroomError(
        "forbidden",
        "A user's webhook hears of every message, so it needs the permission 'messages.view' too; ask an administrator for it.",
        { permission: "messages.view" },
      );
    }
  }

  async list(principal: Principal): Promise<{ items: WebhookView[]; total: number }> {
    this.assertMayUse(principal);
    let query = this.db.selectFrom("webhooks").selectAll();
    if (!principal.superAdmin) query = query.where("owner_type", "=", principal.kind).where("owner_id", "=", principal.id);
    const rows = await query.orderBy("created_at").orderBy("id").execute();
    return { items: await webhookViews(this.db, this.ctx.clock(), rows), total: rows.length };
  }

  async get(id: string, principal: Principal): Promise<WebhookView> {
    return (await webhookViews(this.db, this.ctx.clock(), [await this.row(id, principal)]))[0];
  }

  async create(input: WebhookInput, principal: Principal, actor: Actor): Promise<WebhookView & { secret: string }> {
    this.assertMayUse(principal);
    const checked = this.check(input, true);
    const secret = generateSigningSecret();
    const now = this.ctx.clock();
    const row: WebhooksTable = {
      id: newId(),
      owner_type: principal.kind,
      owner_id: principal.id,
      owner_label: principal.label,
      url: checked.url as string,
      secret: this.ctx.secrets.encrypt(secret),
      previous_secret: null,
      previous_secret_until: null,
      events: JSON.stringify(checked.events),
      enabled: checked.enabled === false ? 0 : 1,
      description: checked.description ?? "",
      created_at: now,
      created_by: actor.label,
      updated_at: now,
    };
    await this.db.transaction().execute(async (trx) => {
      const { n } = await trx
        .selectFrom("webhooks")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("owner_type", "=", row.owner_type)
        .where("owner_id", "=", row.owner_id)
        .executeTakeFirstOrThrow();
      if (Number(n) >= MAX_WEBHOOKS_PER_OWNER) {
        throw new MailroomError(
          "webhook_limit_reached",
          `You have ${MAX_WEBHOOKS_PER_OWNER} webhooks already: delete one, or subscribe one URL to several event types.`,
        );
      }
      await trx.insertInto("webhooks").values(row).execute();
      await writeAudit(
        trx,
        actor,
        { action: "webhook.create", targetType: "webhook", targetId: row.id, after: auditable(row) },
        now,
      );
    });
    await this.changed();
    return { ...(await webhookViews(this.db, this.ctx.clock(), [row]))[0], secret };
  }

  async update(id: string, input: WebhookInput, principal: Principal, actor: Actor): Promise<WebhookView> {
    const before = await this.row(id, principal);
    const checked = this.check(input, false);
    const now = this.ctx.clock();
    const changes: Partial<WebhooksTable> = { updated_at: now };
    if (checked.url !== undefined) changes.url = checked.url;
    if (checked.events !== undefined) changes.events = JSON.stringify(checked.events);
    if (checked.enabled !== undefined) changes.enabled = checked.enabled ? 1 : 0;
    if (checked.description !== undefined) changes.description = checked.description;
    const after = { ...before, ...changes };
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable("webhooks").set(changes).where("id", "=", id).execute();
      await writeAudit(
        trx,
        actor,
        { action: "webhook.update", targetType: "webhook", targetId: id, before: auditable(before), after: auditable(after) },
        now,
      );
    });
    await this.changed();
    return (await webhookViews(this.db, this.ctx.clock(), [after]))[0];
  }

  async delete(id: string, principal: Principal, actor: Actor): Promise<void> {
    const row = await this.row(id, principal);
    await this.db.transaction().execute(async (trx) => {
      const deliveries = trx.selectFrom("webhook_deliveries").select("id").where("webhook_id", "=", id);
      await trx.deleteFrom("webhook_attempts").where("delivery_id", "in", deliveries).execute();
      await trx.deleteFrom("webhook_deliveries").where("webhook_id", "=", id).execute();
      await trx.deleteFrom("webhooks").where("id", "=", id).execute();
      await writeAudit(trx, actor, { action: "webhook.delete", targetType: "webhook", targetId: id, before: auditable(row) });
    });
    await this.changed();
  }

  /** A new secret, shown once; the old one keeps signing beside it for ROTATION_OVERLAP_MS. */
  async rotateSecret(id: string, principal: Principal, actor: Actor): Promise<WebhookView & { secret: string }> {
    const row = await this.row(id, principal);
    const secret = generateSigningSecret();
    const now = this.ctx.clock();
    const changes = {
      secret: this.ctx.secrets.encrypt(secret),
      previous_secret: row.secret,
      previous_secret_until: now + ROTATION_OVERLAP_MS,
      updated_at: now,
    };
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable("webhooks").set(changes).where("id", "=", id).execute();
      await writeAudit(
        trx,
        actor,
        {
          action: "webhook.rotate_secret",
          targetType: "webhook",
          targetId: id,
          after: { previousSecretUntil: iso(now + ROTATION_OVERLAP_MS) },
        },
        now,
      );
    });
    await this.changed();
    return { ...(await webhookViews(this.db, this.ctx.clock(), [{ ...row, ...changes }]))[0], secret };
  }

  async deliveries(
    id: string,
    principal: Principal,
    filter: { status?: "pending" | "delivered" | "failed"; limit?: number; offset?: number },
  ): Promise<{ items: WebhookDeliveryView[]; total: number }> {
    await this.row(id, principal);
    let query = this.db.selectFrom("webhook_deliveries").where("webhook_id", "=", id);
    if (filter.status) query = query.where("status", "=", filter.status);
    const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
    const rows = await query
      .selectAll()
      .orderBy("created_at", "desc")
      .orderBy("id")
      .limit(filter.limit ?? 50)
      .offset(filter.offset ?? 0)
      .execute();
    return { items: await deliveryViews(this.db, rows), total: Number(total) };
  }

  /**
   * Delivers a delivered or failed event again, as a new sequence of attempts on the same
   * schedule, with the same webhook-id and body: a receiver that de-duplicates by webhook-id
   * takes it at most once, one that lost it takes it now.
   */
  async replay(deliveryId: string, principal: Principal, actor: Actor): Promise<WebhookDeliveryView> {
    const delivery = await this.db.selectFrom("webhook_deliveries").selectAll().where("id", "=", deliveryId).executeTakeFirst();
    const hook = delivery ? await this.findRow(delivery.webhook_id, principal) : undefined;
    if (!delivery || !hook) {
      this.assertMayUse(principal);
      throw new MailroomError("webhook_delivery_not_found", `No delivery of a webhook of yours has the id '${deliveryId}'.`);
    }
    const now = this.ctx.clock();
    await this.db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable("webhook_deliveries")
        .set({
          status: "pending",
          attempts: 0,
          next_attempt_at: now,
          lease_owner: null,
          last_error: null,
          delivered_at: null,
          updated_at: now,
        })
        .where("id", "=", deliveryId)
        .where("status", "in", ["delivered", "failed"])
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) {
        throw new MailroomError(
          "webhook_delivery_pending",
          "This delivery is still pending: it is replayed only once delivered or failed.",
        );
      }
      await writeAudit(
        trx,
        actor,
        {
          action: "webhook.replay",
          targetType: "webhook_delivery",
          targetId: deliveryId,
          before: { webhookId: hook.id, status: delivery.status, attempts: delivery.attempts },
          after: { status: "pending" },
        },
        now,
      );
    });
    this.dispatcher.expect([deliveryId]);
    const row = await this.db.selectFrom("webhook_deliveries").selectAll().where("id", "=", deliveryId).executeTakeFirstOrThrow();
    return (await deliveryViews(this.db, [row]))[0];
  }

  /** Posts a `webhook.test` event now, once (even to a disabled webhook), and answers how it went. */
  async sendTest(id: string, principal: Principal): Promise<WebhookDeliveryView> {
    const hook = await this.row(id, principal);
    const now = this.ctx.clock();
    const delivery: WebhookDeliveriesTable = {
      id: newId(),
      webhook_id: hook.id,
      message_id: null,
      event_type: "test",
      payload: testPayload(hook.id, now),
      status: "pending",
      attempts: 1,
      next_attempt_at: now + LEASE_FOR_TEST_MS,
      // Held by this process's dispatcher from the start: no other process takes it meanwhile.
      lease_owner: this.dispatcher.owner,
      last_error: null,
      created_at: now,
      updated_at: now,
      delivered_at: null,
    };
    await this.db.insertInto("webhook_deliveries").values(delivery).execute();
    const [state] = (await this.dispatcher.webhooks([hook.id])).values();
    await this.dispatcher.attempt(delivery, state);
    const row = await this.db
      .selectFrom("webhook_deliveries")
      .selectAll()
      .where("id", "=", delivery.id)
      .executeTakeFirstOrThrow();
    return (await deliveryViews(this.db, [row]))[0];
  }

  /** The webhook if the principal may see it; webhook_not_found otherwise. */
  private async row(id: string, principal: Principal): Promise<WebhooksTable> {
    const row = await this.findRow(id, principal);
    if (!row) throw new MailroomError("webhook_not_found", `No webhook of yours has the id '${id}'.`);
    return row;
  }

  private async findRow(id: string, principal: Principal): Promise<WebhooksTable | undefined> {
    this.assertMayUse(principal);
    const row = await this.db.selectFrom("webhooks").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) return undefined;
    const mine = row.owner_type === principal.kind && row.owner_id === principal.id;
    return mine || principal.superAdmin ? row : undefined;
  }

  /** Checks what is given (all of url and events on create); throws validation errors naming each field. */
  private check(input: WebhookInput, creating: boolean): WebhookInput {
    const problems: FieldProblem[] = [];
    let urlRefusal: string | null = null;
    if (input.url !== undefined || creating) {
      const url = input.url ?? "";
      if (!url.trim()) problems.push({ field: "url", message: "is required: the http:// or https:// address to post events to" });
      else if (url.length > MAX_URL_LENGTH)
        problems.push({ field: "url", message: `must be at most ${MAX_URL_LENGTH} characters` });
      else {
        const problem = webhookUrlProblem(url, this.ctx.config.operator);
        if (problem?.code === "endpoint_not_allowed") urlRefusal = problem.message;
        else if (problem) problems.push({ field: "url", message: problem.message });
      }
    }
    if (input.events !== undefined || creating) {
      const events = input.events ?? [];
      const unknown = events.find((e) => !isWebhookEvent(e));
      if (events.length === 0) problems.push({ field: "events", message: `choose at least one of ${WEBHOOK_EVENTS.join(", ")}` });
      else if (unknown !== undefined) {
        problems.push({ field: "events", message: `'${unknown}' is not an event; use any of ${WEBHOOK_EVENTS.join(", ")}` });
      }
    }
    if (input.description !== undefined && input.description.length > MAX_DESCRIPTION_LENGTH) {
      problems.push({ field: "description", message: `must be at most ${MAX_DESCRIPTION_LENGTH} characters` });
    }
    if (problems.length) throw fieldError("validation_failed", problems);
    if (urlRefusal) throw new MailroomError("endpoint_not_allowed", `url: ${urlRefusal}`, { field: "url" });
    return {
      ...input,
      url: input.url?.trim(),
      // In the UI's order, each once.
      events: input.events && WEBHOOK_EVENTS.filter((e) => input.events?.includes(e)),
      description: input.description?.trim(),
    };
  }

  private async changed(): Promise<void> {
    await this.registry.refresh().catch((error) => this.ctx.log.warn({ err: error }, "webhooks: could not read them again"));
    this.dispatcher.wake();
  }
}

/** What the audit log keeps of a webhook: never its secret. */
function auditable(row: WebhooksTable) {
  return {
    url: row.url,
    events: JSON.parse(row.events) as string[],
    enabled: row.enabled === 1,
    description: row.description,
    owner: `${row.owner_type}:${row.owner_id}`,
  };
}
