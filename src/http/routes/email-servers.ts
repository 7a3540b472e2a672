import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import type { EmailServerInput } from "../../core/email-servers.js";
import { configuredDriver, drivers } from "../../drivers/registry.js";
import { oauthScopesOf } from "../../oauth/credentials.js";
import { providerById } from "../../oauth/providers/index.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { IdParams, listOf, listQueryProperties, ref, replies } from "../schemas.js";

const ServerBody = Type.Object(
  {
    name: Type.String({ maxLength: 200 }),
    driver: Type.String({ maxLength: 64 }),
    fromAddress: Type.Optional(Type.String({ maxLength: 320 })),
    fromName: Type.Optional(Type.String({ maxLength: 400 })),
    settings: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown())),
    isDefault: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const SettingParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 200 }), key: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);

const tags = ["email servers"];

export function emailServerRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { servers } = mailroom;
  /** Every answer with one server shows its delivery state too: the breaker, the next probe, the held mail. */
  const withDelivery = async <T extends { id: string }>(view: T) => ({
    ...view,
    delivery: await mailroom.breakers.view(view.id),
  });

  app.get(
    "/api/drivers",
    { schema: { tags, summary: "Every driver with its settings", response: replies(200, listOf("Driver")) } },
    async () => ({
      // As this installation offers them: options the operator decides (sendmail commands) filled in.
      items: drivers
        .map((driver) => configuredDriver(driver, mailroom.ctx.config.operator))
        .map((driver) => ({
          id: driver.id,
          label: driver.label,
          description: driver.description,
          oauthProvider: driver.oauthProvider ?? null,
          oauthScope: driver.oauthProvider ? oauthScopesOf(driver, providerById(driver.oauthProvider)).sending[0] : null,
          ...(driver.appOnly ? { appOnly: driver.appOnly } : {}),
          fields: driver.fields,
          // Values Mailroom sets (the OAuth redirect URI): known before any server is saved.
          derived: driver.derive?.({ publicUrl: mailroom.ctx.config.publicUrl }) ?? {},
          errors: Object.entries(driver.errors ?? {}).map(([code, { status, summary }]) => ({ code, status, summary })),
        })),
      total: drivers.length,
    }),
  );

  app.get(
    "/api/email-servers",
    {
      schema: {
        tags,
        summary: "List and search email servers (default first)",
        querystring: Type.Object(
          { ...listQueryProperties, q: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: replies(200, listOf("EmailServer")),
      },
    },
    async (request) =>
      servers.list({
        ...(request.query as { q?: string; limit?: number; offset?: number }),
        serverIds: requirePrincipal(request).serverIds,
      }),
  );

  app.post(
    "/api/email-servers",
    { schema: { tags, summary: "Create an email server", body: ServerBody, response: replies(201, ref("EmailServer")) } },
    async (request, reply) => {
      const view = await servers.create(request.body as EmailServerInput, actorOf(request));
      return reply.status(201).send(await withDelivery(view));
    },
  );

  app.get(
    "/api/email-servers/:id",
    {
      schema: {
        tags,
        summary: "One email server, by id or name, with its delivery state",
        params: IdParams,
        response: replies(200, ref("EmailServer")),
      },
    },
    async (request) => withDelivery(await servers.get((request.params as { id: string }).id)),
  );

  app.post(
    "/api/email-servers/:id/probe",
    {
      schema: {
        tags,
        summary:
          "Check now: probe the server (connect, TLS, login, no mail); for a failing server a pass makes it ready and releases its held mail",
        params: IdParams,
        response: replies(200, ref("ServerChecked")),
      },
    },
    async (request) => {
      const id = (request.params as { id: string }).id;
      const report = await mailroom.prober.checkNow(id);
      // null: another process is probing this server right now; its result shows on the server.
      return { report, server: await withDelivery(await servers.get(id)) };
    },
  );

  app.put(
    "/api/email-servers/:id",
    {
      schema: {
        tags,
        summary: "Replace a server's whole configuration at once (omitted secrets are kept)",
        params: IdParams,
        body: ServerBody,
        response: replies(200, ref("EmailServer")),
      },
    },
    async (request) =>
      withDelivery(
        await servers.replace((request.params as { id: string }).id, request.body as EmailServerInput, actorOf(request)),
      ),
  );

  app.delete(
    "/api/email-servers/:id",
    { schema: { tags, summary: "Delete a server (not the default); its delivery history stays", params: IdParams } },
    async (request, reply) => {
      const row = await servers.getRow((request.params as { id: string }).id);
      // A deleted server's OAuth grant is revoked at the provider first, so no token outlives it.
      if (row.is_default !== 1 && row.oauth_account) {
        await mailroom.oauth.flow.disconnect(row.id, actorOf(request)).catch((error: unknown) => {
          request.log.warn({ err: (error as Error)?.message }, "could not revoke the OAuth grant of a deleted server");
        });
      }
      await servers.remove(row.id, actorOf(request));
      return reply.status(204).send();
    },
  );

  app.patch(
    "/api/email-servers/:id/settings/:key",
    {
      schema: {
        tags,
        summary: "Edit one setting",
        params: SettingParams,
        body: Type.Object({ value: Type.Unknown() }, { additionalProperties: false, required: ["value"] }),
        response: replies(200, ref("EmailServer")),
      },
    },
    async (request) => {
      const { id, key } = request.params as { id: string; key: string };
      return withDelivery(await servers.setSetting(id, key, (request.body as { value: unknown }).value, actorOf(request)));
    },
  );

  app.delete(
    "/api/email-servers/:id/settings/:key",
    {
      schema: {
        tags,
        summary: "Clear one setting: back to its default, or forget a secret",
        params: SettingParams,
        response: replies(200, ref("EmailServer")),
      },
    },
    async (request) => {
      const { id, key } = request.params as { id: string; key: string };
      return withDelivery(await servers.clearSetting(id, key, actorOf(request)));
    },
  );

  app.post(
    "/api/email-servers/:id/copy",
    {
      schema: {
        tags,
        summary: "Duplicate a server (never its OAuth grant)",
        params: IdParams,
        response: replies(201, ref("EmailServerCopy")),
      },
    },
    async (request, reply) =>
      reply.status(201).send(await withDelivery(await servers.copy((request.params as { id: string }).id, actorOf(request)))),
  );

  app.post(
    "/api/email-servers/:id/default",
    { schema: { tags, summary: "Make this server the default", params: IdParams, response: replies(200, ref("EmailServer")) } },
    async (request) => withDelivery(await servers.makeDefault((request.params as { id: string }).id, actorOf(request))),
  );
}
