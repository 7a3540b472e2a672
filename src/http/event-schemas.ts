import { type TSchema, Type } from "typebox";

/*
 * Response shapes of provider events and the suppression list, registered beside those of
 * schemas.ts (server.ts adds both), so the OpenAPI document and web/src/api-types.ts name them.
 */
const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
/** One of these strings (or null): an enum, as schemas.ts's oneOf, so a value added later never fails a reply. */
const oneOf = <T extends string>(values: readonly T[]) => Type.Unsafe<T>({ type: "string", enum: [...values] });
const oneOfOrNull = <T extends string>(values: readonly T[]) =>
  Type.Unsafe<T | null>({ type: "string", enum: [...values, null], nullable: true });

const ProviderName = oneOf(["mailgun", "postmark", "ses"]);

/** On a message's detail: what the provider reported after sending. */
const ProviderEvent = Type.Object(
  {
    type: oneOf(["delivered", "bounced", "complained"]),
    provider: Type.String(),
    bounceKind: oneOfOrNull(["hard", "soft"]),
    recipient: nullable(Type.String()),
    diagnostic: nullable(Type.String()),
    at: Type.String(),
    receivedAt: Type.String(),
  },
  { $id: "ProviderEvent" },
);

/** What a provider's webhook request did. */
const ProviderEventReceipt = Type.Object(
  {
    accepted: Type.Integer(),
    duplicates: Type.Integer(),
    unmatched: Type.Integer(),
    ignored: Type.Integer(),
    subscription: oneOfOrNull(["confirmed", "unsubscribed"]),
  },
  { $id: "ProviderEventReceipt" },
);

const EventSource = Type.Object(
  {
    provider: ProviderName,
    label: Type.String(),
    url: Type.String(),
    setUp: Type.Boolean(),
    signingKey: nullable(Type.Object({ set: Type.Boolean() })),
    username: nullable(Type.String()),
    topicArn: nullable(Type.String()),
    accepted: Type.Integer(),
    unmatched: Type.Integer(),
    refused: Type.Integer(),
    lastEventAt: nullable(Type.String()),
    lastRefusedAt: nullable(Type.String()),
    updatedAt: nullable(Type.String()),
    updatedBy: nullable(Type.String()),
  },
  { $id: "EventSource" },
);

/** A source set up: generated credentials appear here once, in the URL to paste. */
const EventSourceSetup = Type.Object(
  {
    source: Type.Unsafe({ $ref: "EventSource#" }),
    credentials: nullable(Type.Object({ username: Type.String(), password: Type.String(), url: Type.String() })),
  },
  { $id: "EventSourceSetup" },
);

const Suppression = Type.Object(
  {
    id: Type.String(),
    address: Type.String(),
    server: nullable(Type.Object({ id: Type.String(), name: nullable(Type.String()) })),
    reason: oneOf(["hard_bounce", "complaint", "manual"]),
    detail: nullable(Type.String()),
    messageId: nullable(Type.String()),
    createdAt: Type.String(),
    createdBy: Type.String(),
  },
  { $id: "Suppression" },
);

const SuppressionSettings = Type.Object(
  {
    scope: oneOf(["server", "everywhere"]),
    updatedAt: nullable(Type.String()),
    updatedBy: nullable(Type.String()),
  },
  { $id: "SuppressionSettings" },
);

export const eventResponseSchemas = [
  ProviderEvent,
  ProviderEventReceipt,
  EventSource,
  EventSourceSetup,
  Suppression,
  SuppressionSettings,
];
