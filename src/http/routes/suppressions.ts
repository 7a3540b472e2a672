import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { SUPPRESSION_SCOPES, type SuppressionFilter } from "../../events/suppressions.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { IdParams, listOf, listQueryProperties, ref, replies } from "../schemas.js";

const tags = ["suppressions"];

const SuppressionQuery = Type.Object(
  {
    ...listQueryProperties,
    q: Type.Optional(Type.String({ maxLength: 254, description: "Part of the address" })),
    server: Type.Optional(Type.String({ maxLength: 200, description: "Entries of one server (id or name)" })),
    reason: Type.Optional(Type.Union(["hard_bounce", "complaint", "manual"].map((r) => Type.Literal(r)))),
  },
  { additionalProperties: false },
);

const SuppressionBody = Type.Object(
  {
    address: Type.String({ minLength: 1, maxLength: 254 }),
    server: Type.Optional(
      Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()], {
        description: "One server (id or name); absent or null: every server",
      }),
    ),
    detail: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()], { description: "Why, for the next admin" })),
  },
  { additionalProperties: false },
);

const SettingsBody = Type.Object(
  {
    scope: Type.Union(
      SUPPRESSION_SCOPES.map((s) => Type.Literal(s)),
      { description: "Where a hard bounce or complaint suppresses the address" },
    ),
  },
  { additionalProperties: false },
);

/** The suppression list: addresses refused at accept time, and where automatic entries apply. */
export function suppressionRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { suppressions } = mailroom;

  app.get(
    "/api/suppressions",
    {
      schema: {
        tags,
        summary: "The suppression list, newest first: search by address, filter by server and reason",
        querystring: SuppressionQuery,
        response: replies(200, listOf("Suppression")),
      },
    },
    async (request) => suppressions.list(request.query as SuppressionFilter, requirePrincipal(request)),
  );

  app.post(
    "/api/suppressions",
    {
      schema: {
        tags,
        summary: "Add an address by hand, for one server or every server; audited",
        body: SuppressionBody,
        response: replies(201, ref("Suppression")),
      },
    },
    async (request, reply) => {
      const view = await suppressions.add(
        request.body as { address: string; server?: string | null; detail?: string | null },
        actorOf(request),
        requirePrincipal(request),
      );
      return reply.status(201).send(view);
    },
  );

  app.delete(
    "/api/suppressions/:id",
    { schema: { tags, summary: "Remove an entry: mail to the address is accepted again; audited", params: IdParams } },
    async (request, reply) => {
      await suppressions.remove((request.params as { id: string }).id, actorOf(request), requirePrincipal(request));
      return reply.status(204).send();
    },
  );

  app.get(
    "/api/settings/suppressions",
    {
      schema: {
        tags: ["settings"],
        summary: "Where hard bounces and complaints suppress an address: the reporting server, or every server",
        response: replies(200, ref("SuppressionSettings")),
      },
    },
    async () => suppressions.settings(),
  );

  app.put(
    "/api/settings/suppressions",
    {
      schema: {
        tags: ["settings"],
        summary: "Choose where hard bounces and complaints suppress an address (entries already made stay as they are); audited",
        body: SettingsBody,
        response: replies(200, ref("SuppressionSettings")),
      },
    },
    async (request) => suppressions.updateSettings(request.body as { scope: unknown }, actorOf(request)),
  );
}
