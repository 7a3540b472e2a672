import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Mailroom } from "../../app.js";
import { SESSION_COOKIE } from "../../auth/sessions.js";
import type { Requester } from "../../oauth/flow.js";
import { providers } from "../../oauth/providers/index.js";
import { actorOf } from "../auth.js";
import { IdParams } from "../schemas.js";

const tags = ["email servers"];

function requesterOf(request: FastifyRequest): Requester {
  const cookie = request.authVia === "session" ? request.cookies[SESSION_COOKIE] : undefined;
  return { principal: request.principal, sessionCookie: cookie ?? null, actor: actorOf(request) };
}

export function oauthRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { flow } = mailroom.oauth;

  app.post(
    "/api/email-servers/:id/oauth/authorize",
    {
      schema: {
        tags,
        summary: "Start 'Authorize account': returns the provider's sign-in URL (valid 10 minutes, this session only)",
        params: IdParams,
      },
    },
    async (request) => flow.start((request.params as { id: string }).id, requesterOf(request)),
  );

  app.delete(
    "/api/email-servers/:id/oauth",
    { schema: { tags, summary: "Disconnect: revoke the grant at the provider and forget the tokens", params: IdParams } },
    async (request) => flow.disconnect((request.params as { id: string }).id, actorOf(request)),
  );

  // The provider sends the browser here. Public as a route, but the flow requires the
  // session that started the authorization. Request logging is off below "warn": the URL
  // carries the authorization code.
  for (const provider of Object.values(providers)) {
    app.get(
      `/oauth/${provider.id}/callback`,
      {
        logLevel: "warn",
        config: { rateLimit: { max: 60, timeWindow: 60_000 } },
        schema: { hide: true },
      },
      async (request, reply) => {
        const query = (request.query ?? {}) as Record<string, unknown>;
        const outcome = await flow.complete(provider.id, query, requesterOf(request));
        void reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer");
        return reply.redirect(outcome.location, 303);
      },
    );
  }
}
