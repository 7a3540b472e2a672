import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { Mailroom } from "../../app.js";
import { MailroomError } from "../../kernel/errors.js";
import { STATE_TTL_MS } from "../../oauth/flow.js";
import { providers } from "../../oauth/providers/index.js";
import { actorOf } from "../auth.js";
import { IdParams, ref, replies } from "../schemas.js";

const tags = ["email servers"];

/** The browser-binding cookie of an authorization in progress (see Requester in src/oauth/flow.ts). */
const BINDING_COOKIE = "mailroom_oauth";

export function oauthRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { flow } = mailroom.oauth;

  app.post(
    "/api/email-servers/:id/oauth/authorize",
    {
      schema: {
        tags,
        summary: "Start 'Authorize account': returns the provider's sign-in URL (valid 10 minutes, this session only)",
        params: IdParams,
        response: replies(200, ref("AuthorizationStart")),
      },
    },
    async (request, reply) => {
      if (request.authVia !== "session") {
        throw new MailroomError(
          "oauth_session_required",
          "Authorize from the admin UI while signed in: an API token cannot finish the provider's sign-in in a browser.",
        );
      }
      const binding = randomBytes(32).toString("base64url");
      const result = await flow.start((request.params as { id: string }).id, {
        principal: request.principal,
        binding,
        actor: actorOf(request),
      });
      reply.setCookie(BINDING_COOKIE, binding, {
        httpOnly: true,
        // Lax: the provider's redirect back is a cross-site navigation, which Strict would strip.
        sameSite: "lax",
        secure: mailroom.ctx.config.publicUrl.startsWith("https:"),
        path: "/oauth",
        maxAge: STATE_TTL_MS / 1000,
      });
      return result;
    },
  );

  app.delete(
    "/api/email-servers/:id/oauth",
    {
      schema: {
        tags,
        summary: "Disconnect: revoke the grant at the provider and forget the tokens",
        params: IdParams,
        response: replies(200, ref("Disconnected")),
      },
    },
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
        const outcome = await flow.complete(provider.id, query, {
          principal: request.principal,
          binding: request.cookies[BINDING_COOKIE] ?? null,
          actor: actorOf(request),
          loadUser: (userId) => mailroom.users.principalFor(userId),
        });
        reply.clearCookie(BINDING_COOKIE, { path: "/oauth" });
        void reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer");
        return reply.redirect(outcome.location, 303);
      },
    );
  }
}
