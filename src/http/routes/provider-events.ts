import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { EVENT_PROVIDERS, isEventProvider } from "../../events/provider-events/sources.js";
import { MailroomError } from "../../kernel/errors.js";
import type { EventProvider } from "../../storage/schema.js";
import { actorOf } from "../auth.js";
import { IdParams, listOf, ref, replies } from "../schemas.js";

/** A provider's event batch is small; 256 KB leaves room for Postmark's bounce content. */
export const PROVIDER_EVENT_BODY_LIMIT = 256 * 1024;

const ServerParams = Type.Object({ serverId: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
const SourceParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 200 }), provider: Type.String({ minLength: 1, maxLength: 20 }) },
  { additionalProperties: false },
);
const SetupBody = Type.Object(
  {
    signingKey: Type.Optional(
      Type.String({ maxLength: 200, description: "Mailgun only: the domain's HTTP webhook signing key (write-only)" }),
    ),
  },
  { additionalProperties: false },
);

const SUMMARIES: Record<EventProvider, string> = {
  mailgun: "Mailgun's webhook (JSON, signed with the domain's webhook signing key; 15-minute window, each token once)",
  postmark: "Postmark's Delivery, Bounce and SpamComplaint webhooks (HTTP basic auth with the credentials Mailroom generated)",
  ses: "Amazon SES notifications through SNS (basic auth, SNS signature verified; subscriptions confirmed)",
};

function providerOf(value: string): EventProvider {
  if (!isEventProvider(value)) {
    throw new MailroomError("validation_failed", `provider: must be one of ${EVENT_PROVIDERS.join(", ")}`, [
      { field: "provider", message: `must be one of ${EVENT_PROVIDERS.join(", ")}` },
    ]);
  }
  return value;
}

/**
 * The providers' webhook endpoints (public: each authenticates by the provider's own
 * mechanism, never a session or token), and the server page's "Bounces and deliveries".
 */
export function providerEventRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const receiver = mailroom.providerEvents;

  for (const provider of EVENT_PROVIDERS) {
    app.post(
      `/api/provider-events/:serverId/${provider}`,
      {
        bodyLimit: PROVIDER_EVENT_BODY_LIMIT,
        config: { providerWebhook: true },
        schema: {
          tags: ["provider events"],
          summary: SUMMARIES[provider],
          security: [],
          params: ServerParams,
          response: replies(200, ref("ProviderEventReceipt")),
        },
      },
      async (request, reply) => {
        try {
          return await receiver.receive((request.params as { serverId: string }).serverId, provider, {
            body: request.body,
            authorization: request.headers.authorization,
            ip: request.ip,
          });
        } catch (error) {
          // Basic auth: a 401 says how to authenticate (SNS sends credentials only when asked so).
          if (provider !== "mailgun" && error instanceof MailroomError && error.status === 401) {
            reply.header("www-authenticate", 'Basic realm="Mailroom provider events"');
          }
          throw error;
        }
      },
    );
  }

  app.get(
    "/api/email-servers/:id/event-sources",
    {
      schema: {
        tags: ["provider events"],
        summary:
          "The server's sources of provider events (Mailgun, Postmark, SES): URL to give the provider, whether set up, counts",
        params: IdParams,
        response: replies(200, listOf("EventSource")),
      },
    },
    async (request) => {
      const server = await mailroom.servers.getRow((request.params as { id: string }).id);
      const items = await receiver.sources.list(server.id);
      return { items, total: items.length };
    },
  );

  app.put(
    "/api/email-servers/:id/event-sources/:provider",
    {
      schema: {
        tags: ["provider events"],
        summary:
          "Set up (or again) a source of provider events: Mailgun with its signing key; Postmark and SES get new basic-auth credentials, shown once in the URL to paste",
        params: SourceParams,
        body: SetupBody,
        response: replies(200, ref("EventSourceSetup")),
      },
    },
    async (request) => {
      const { id, provider } = request.params as { id: string; provider: string };
      const checked = providerOf(provider);
      const server = await mailroom.servers.getRow(id);
      return receiver.sources.setUp(server.id, checked, (request.body ?? {}) as { signingKey?: string }, actorOf(request));
    },
  );

  app.delete(
    "/api/email-servers/:id/event-sources/:provider",
    {
      schema: {
        tags: ["provider events"],
        summary: "Remove a source of provider events: its URL is refused from now on",
        params: SourceParams,
      },
    },
    async (request, reply) => {
      const { id, provider } = request.params as { id: string; provider: string };
      const checked = providerOf(provider);
      const server = await mailroom.servers.getRow(id);
      await receiver.sources.remove(server.id, checked, actorOf(request));
      return reply.status(204).send();
    },
  );
}
