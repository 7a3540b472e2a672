/**
 * What a receiver gets: `{type, timestamp, data}` as Standard Webhooks suggests. The body is
 * built once, when the event is recorded, and sent byte for byte on every attempt and replay
 * (so one webhook-id always signs the same body). It names the message and its delivery facts,
 * never its recipients, subject or content: the application has those, by the message id.
 */
import type { MessageEvent, MessageEventType } from "../../core/message-events.js";
import type { MessagesTable } from "../../storage/schema.js";

/** Every event a webhook may subscribe to, in the order the UI lists them. */
export const WEBHOOK_EVENTS = [
  "queued",
  "sent",
  "failed",
  "held",
  "delivered",
  "bounced",
  "complained",
] as const satisfies readonly MessageEventType[];

// A type added to MessageEventType but not here fails to compile.
type Missing = Exclude<MessageEventType, (typeof WEBHOOK_EVENTS)[number]>;
const everyEventListed: Missing extends never ? true : never = true;
void everyEventListed;

export function isWebhookEvent(value: unknown): value is MessageEventType {
  return typeof value === "string" && (WEBHOOK_EVENTS as readonly string[]).includes(value);
}

/** The message columns a payload reads (and the owner check). */
export type PayloadRow = Pick<
  MessagesTable,
  | "id"
  | "server_id"
  | "server_name"
  | "message_id"
  | "tag"
  | "attempts"
  | "last_error_code"
  | "last_error"
  | "provider_message_id"
  | "created_by"
  | "created_by_type"
  | "is_test"
>;

export const PAYLOAD_COLUMNS = [
  "id",
  "server_id",
  "server_name",
  "message_id",
  "tag",
  "attempts",
  "last_error_code",
  "last_error",
  "provider_message_id",
  "created_by",
  "created_by_type",
  "is_test",
] as const;

/** Errors belong to the events that end or stop a message. */
const WITH_ERROR = new Set<MessageEventType>(["failed", "held", "bounced"]);

export function messagePayload(event: MessageEvent, row: PayloadRow): string {
  const error =
    WITH_ERROR.has(event.type) && row.last_error_code ? { code: row.last_error_code, message: row.last_error ?? "" } : null;
  return JSON.stringify({
    type: `message.${event.type}`,
    timestamp: new Date(event.at).toISOString(),
    data: {
      id: row.id,
      status: event.type,
      messageId: row.message_id,
      server: { id: row.server_id, name: row.server_name },
      tag: row.tag ?? null,
      attempts: Number(row.attempts),
      error,
      providerMessageId: row.provider_message_id,
      ...(event.detail ? { detail: event.detail } : {}),
    },
  });
}

/** The body of "Send test": nothing about any message. */
export function testPayload(webhookId: string, at: number): string {
  return JSON.stringify({
    type: "webhook.test",
    timestamp: new Date(at).toISOString(),
    data: { webhookId, message: "A test from Mailroom: your endpoint received and can verify this signed request." },
  });
}
