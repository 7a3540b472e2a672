import { type TSchema, Type } from "typebox";
import { WEBHOOK_EVENTS } from "../events/webhooks/payload.js";

/** The webhooks' reply shapes (registered with the others in schemas.ts). */
const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const oneOf = <T extends string>(values: readonly T[]) => Type.Unsafe<T>({ type: "string", enum: [...values] });
const ref = (id: string) => Type.Unsafe({ $ref: `${id}#` });

const webhookProperties = {
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(oneOf(WEBHOOK_EVENTS)),
  enabled: Type.Boolean(),
  description: Type.String(),
  owner: Type.Object({ type: oneOf(["token", "user"]), id: Type.String(), label: Type.String() }),
  active: Type.Boolean(),
  silencedBecause: nullable(Type.String()),
  previousSecretUntil: nullable(Type.String()),
  createdAt: Type.String(),
  createdBy: Type.String(),
  updatedAt: Type.String(),
};

const Webhook = Type.Object(webhookProperties, { $id: "Webhook" });
/** At creation and rotation only: the signing secret, shown once. */
const WebhookWithSecret = Type.Object({ ...webhookProperties, secret: Type.String() }, { $id: "WebhookWithSecret" });

const WebhookAttempt = Type.Object(
  {
    at: Type.String(),
    durationMs: Type.Integer(),
    httpStatus: nullable(Type.Integer()),
    error: nullable(Type.String()),
    response: nullable(Type.String()),
  },
  { $id: "WebhookAttempt" },
);

const WebhookDelivery = Type.Object(
  {
    id: Type.String(),
    webhookId: Type.String(),
    messageId: nullable(Type.String()),
    type: Type.String(),
    status: oneOf(["pending", "delivered", "failed"]),
    attempts: Type.Integer(),
    nextAttemptAt: nullable(Type.String()),
    lastError: nullable(Type.String()),
    createdAt: Type.String(),
    deliveredAt: nullable(Type.String()),
    // The body as sent and signed: {type, timestamp, data}.
    payload: Type.Unknown(),
    attemptLog: Type.Array(ref("WebhookAttempt")),
  },
  { $id: "WebhookDelivery" },
);

export const webhookSchemas = [Webhook, WebhookWithSecret, WebhookAttempt, WebhookDelivery];
