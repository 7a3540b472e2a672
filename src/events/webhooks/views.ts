/** How webhooks and their deliveries read in the API: never a secret. */
import type { Kysely } from "kysely";
import type { MessageEventType } from "../../core/message-events.js";
import { iso } from "../../kernel/ids.js";
import type { Database, WebhookDeliveriesTable, WebhooksTable } from "../../storage/schema.js";
import { ownerKey, ownerStates } from "./owners.js";

export interface WebhookView {
  id: string;
  url: string;
  events: MessageEventType[];
  enabled: boolean;
  description: string;
  owner: { type: "token" | "user"; id: string; label: string };
  /** False when its owner may no longer hear of events (a revoked token…): `silencedBecause` says why. */
  active: boolean;
  silencedBecause: string | null;
  /** Until when the previous secret still signs too, after a rotation; null otherwise. */
  previousSecretUntil: string | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
}

export interface WebhookAttemptView {
  at: string;
  durationMs: number;
  httpStatus: number | null;
  error: string | null;
  response: string | null;
}

export interface WebhookDeliveryView {
  id: string;
  webhookId: string;
  messageId: string | null;
  type: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  /** The body as sent (and signed). */
  payload: unknown;
  attemptLog: WebhookAttemptView[];
}

export async function webhookViews(db: Kysely<Database>, now: number, rows: WebhooksTable[]): Promise<WebhookView[]> {
  const owners = await ownerStates(db, rows, now);
  return rows.map((row) => {
    const silencedBecause = owners.get(ownerKey(row)) ?? null;
    const overlap = row.previous_secret_until !== null && Number(row.previous_secret_until) > now;
    return {
      id: row.id,
      url: row.url,
      events: JSON.parse(row.events) as MessageEventType[],
      enabled: row.enabled === 1,
      description: row.description,
      owner: { type: row.owner_type, id: row.owner_id, label: row.owner_label },
      active: silencedBecause === null,
      silencedBecause,
      previousSecretUntil: overlap ? iso(Number(row.previous_secret_until)) : null,
      createdAt: iso(Number(row.created_at)) as string,
      createdBy: row.created_by,
      updatedAt: iso(Number(row.updated_at)) as string,
    };
  });
}

export async function deliveryViews(db: Kysely<Database>, rows: WebhookDeliveriesTable[]): Promise<WebhookDeliveryView[]> {
  const ids = rows.map((r) => r.id);
  const attempts = ids.length
    ? await db.selectFrom("webhook_attempts").selectAll().where("delivery_id", "in", ids).orderBy("id").execute()
    : [];
  return rows.map((r) => ({
    id: r.id,
    webhookId: r.webhook_id,
    messageId: r.message_id,
    type: r.event_type,
    status: r.status,
    attempts: Number(r.attempts),
    nextAttemptAt: r.status === "pending" ? iso(Number(r.next_attempt_at)) : null,
    lastError: r.last_error,
    createdAt: iso(Number(r.created_at)) as string,
    deliveredAt: r.delivered_at === null ? null : iso(Number(r.delivered_at)),
    payload: JSON.parse(r.payload),
    attemptLog: attempts
      .filter((a) => a.delivery_id === r.id)
      .map((a) => ({
        at: iso(Number(a.started_at)) as string,
        durationMs: Number(a.duration_ms),
        httpStatus: a.http_status === null ? null : Number(a.http_status),
        error: a.error,
        response: a.response_excerpt,
      })),
  }));
}
