import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import type { RouteInput } from "../../core/routes.js";
import { MAX_ROUTE_SERVERS } from "../../core/routes.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { IdParams, listOf, ref, replies } from "../schemas.js";

const Condition = Type.Optional(Type.Union([Type.String({ maxLength: 320 }), Type.Null()]));

const RouteBody = Type.Object(
  {
    name: Type.String({ maxLength: 200 }),
    match: Type.Object(
      { from: Condition, token: Condition, tag: Condition, recipientDomain: Condition },
      { additionalProperties: false },
    ),
    servers: Type.Array(Type.String({ maxLength: 200 }), {
      maxItems: MAX_ROUTE_SERVERS,
      description: "Email server ids or names: the primary first, then the fallbacks",
    }),
    position: Type.Optional(Type.Integer({ minimum: 1, description: "1-based place among the rules; first match wins" })),
  },
  { additionalProperties: false },
);

const ExplainBody = Type.Object(
  {
    from: Type.String({ maxLength: 320 }),
    to: Type.Optional(Type.Array(Type.String({ maxLength: 320 }), { maxItems: 500 })),
    tag: Type.Optional(Type.String({ maxLength: 100 })),
    token: Type.Optional(Type.String({ maxLength: 200, description: "The id of the API token that would send" })),
  },
  { additionalProperties: false },
);

const tags = ["routes"];

export function routeRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { routes } = mailroom;
  // An API token limited to some servers sees and changes only the rules within its servers.
  const scope = (request: FastifyRequest) => requirePrincipal(request).serverIds;

  app.get(
    "/api/routes",
    { schema: { tags, summary: "Every route rule, in order", response: replies(200, listOf("Route")) } },
    (request) => routes.list(scope(request)),
  );

  app.post(
    "/api/routes",
    { schema: { tags, summary: "Add a route rule", body: RouteBody, response: replies(201, ref("Route")) } },
    async (request, reply) => {
      const view = await routes.create(request.body as RouteInput, actorOf(request), scope(request));
      return reply.status(201).send(view);
    },
  );

  app.post(
    "/api/routes/explain",
    {
      schema: {
        tags,
        summary: "Which route would this message take? The matching rule, its servers and the one that would send now",
        body: ExplainBody,
        response: replies(200, ref("RouteExplanation")),
      },
    },
    async (request) => {
      const body = request.body as { from: string; to?: string[]; tag?: string; token?: string };
      const facts = { from: body.from, recipients: body.to ?? [], tag: body.tag || null, tokenId: body.token || null };
      return routes.explain(facts, scope(request));
    },
  );

  app.get(
    "/api/routes/:id",
    { schema: { tags, summary: "One route rule", params: IdParams, response: replies(200, ref("Route")) } },
    (request) => routes.get((request.params as { id: string }).id, scope(request)),
  );

  app.put(
    "/api/routes/:id",
    {
      schema: { tags, summary: "Replace a route rule", params: IdParams, body: RouteBody, response: replies(200, ref("Route")) },
    },
    (request) =>
      routes.update((request.params as { id: string }).id, request.body as RouteInput, actorOf(request), scope(request)),
  );

  app.delete(
    "/api/routes/:id",
    { schema: { tags, summary: "Delete a route rule", params: IdParams } },
    async (request, reply) => {
      await routes.delete((request.params as { id: string }).id, actorOf(request), scope(request));
      return reply.status(204).send();
    },
  );
}
