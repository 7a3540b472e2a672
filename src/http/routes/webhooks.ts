import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH, type WebhookInput } from "../../events/webhooks/service.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { IdParams, listOf, listQueryProperties, ref, replies } from "../schemas.js";

// Strings here, checked by the service, whose messages name the valid events and the URL's problem.
const fields = {
  url: Type.String({ maxLength: MAX_URL_LENGTH, description: "http:// or https://, without user or password" }),
  events: Type.Array(Type.String({ maxLength: 32 }), {
    maxItems: 20,
    description: "Any of queued, sent, failed, held, delivered, bounced, complained",
  }),
  enabled: Type.Boolean(),
  description: Type.String({ maxLength: MAX_DESCRIPTION_LENGTH }),
};

const CreateBody = Type.Object(
  {
    url: fields.url,
    events: fields.events,
    enabled: Type.Optional(fields.enabled),
    description: Type.Optional(fields.description),
  },
  { additionalProperties: false },
);

const UpdateBody = Type.Object(
  {
    url: Type.Optional(fields.url),
    events: Type.Optional(fields.events),
    enabled: Type.Optional(fields.enabled),
    description: Type.Optional(fields.description),
  },
  { additionalProperties: false },
);

const DeliveryQuery = Type.Object(
  { ...listQueryProperties, status: Type.Optional(Type.Union(["pending", "delivered", "failed"].map((s) => Type.Literal(s)))) },
  { additionalProperties: false },
);

const tags = ["webhooks"];

/**
 * Application webhooks (docs/events.md). Every route needs webhooks.manage (the route table);
 * the service narrows to the caller's own webhooks and asks a user for messages.view.
 */
export function webhookRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { service } = mailroom.webhooks;
  const id = (request: { params: unknown }) => (request.params as { id: string }).id;

  app.get(
    "/api/webhooks",
    {
      schema: {
        tags,
        summary: "Your webhooks (a super admin: every webhook); never their secrets",
        response: replies(200, listOf("Webhook")),
      },
    },
    (request) => service.list(requirePrincipal(request)),
  );

  app.post(
    "/api/webhooks",
    {
      schema: {
        tags,
        summary:
          "Register a URL for message events: a token hears of the messages it sent, a user (with messages.view) of every message. The signing secret is in this reply only",
        body: CreateBody,
        response: replies(201, ref("WebhookWithSecret")),
      },
    },
    async (request, reply) => {
      const created = await service.create(request.body as WebhookInput, requirePrincipal(request), actorOf(request));
      return reply.status(201).send(created);
    },
  );

  app.get(
    "/api/webhooks/:id",
    { schema: { tags, summary: "One webhook (never its secret)", params: IdParams, response: replies(200, ref("Webhook")) } },
    (request) => service.get(id(request), requirePrincipal(request)),
  );

  app.patch(
    "/api/webhooks/:id",
    {
      schema: {
        tags,
        summary: "Change a webhook's URL, events, description or enabled; audited",
        params: IdParams,
        body: UpdateBody,
        response: replies(200, ref("Webhook")),
      },
    },
    (request) => service.update(id(request), request.body as WebhookInput, requirePrincipal(request), actorOf(request)),
  );

  app.delete(
    "/api/webhooks/:id",
    { schema: { tags, summary: "Delete a webhook with its deliveries; audited", params: IdParams } },
    async (request, reply) => {
      await service.delete(id(request), requirePrincipal(request), actorOf(request));
      return reply.status(204).send();
    },
  );

  app.post(
    "/api/webhooks/:id/rotate-secret",
    {
      schema: {
        tags,
        summary: "A new signing secret, in this reply only; the old one also signs for 24 hours",
        params: IdParams,
        response: replies(200, ref("WebhookWithSecret")),
      },
    },
    (request) => service.rotateSecret(id(request), requirePrincipal(request), actorOf(request)),
  );

  app.get(
    "/api/webhooks/:id/deliveries",
    {
      schema: {
        tags,
        summary: "The webhook's deliveries, newest first, each with its attempts",
        params: IdParams,
        querystring: DeliveryQuery,
        response: replies(200, listOf("WebhookDelivery")),
      },
    },
    (request) =>
      service.deliveries(
        id(request),
        requirePrincipal(request),
        request.query as { status?: "pending" | "delivered" | "failed"; limit?: number; offset?: number },
      ),
  );

  app.post(
    "/api/webhooks/:id/test",
    {
      schema: {
        tags,
        summary: "Post a signed webhook.test event now, once, and answer how it went",
        params: IdParams,
        response: replies(200, ref("WebhookDelivery")),
      },
    },
    (request) => service.sendTest(id(request), requirePrincipal(request)),
  );

  app.post(
    "/api/webhook-deliveries/:id/replay",
    {
      schema: {
        tags,
        summary: "Deliver a delivered or failed event again (same webhook-id and body, a new series of attempts); audited",
        params: IdParams,
        response: replies(200, ref("WebhookDelivery")),
      },
    },
    (request) => service.replay(id(request), requirePrincipal(request), actorOf(request)),
  );
}
