import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import type { ChannelInput } from "../../events/alerts/channels.js";
import { actorOf } from "../auth.js";
import { IdParams, listOf, listQueryProperties, ref, replies } from "../schemas.js";

const tags = ["alerts"];

const channelFields = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  enabled: Type.Optional(Type.Boolean()),
  url: Type.Optional(
    Type.String({
      maxLength: 2000,
      description: "webhook and slack: where to post (https://; loopback, private and http:// only if the operator lists it)",
    }),
  ),
  serverId: Type.Optional(Type.String({ maxLength: 200, description: "email: the server alerts go through" })),
  recipients: Type.Optional(
    Type.Array(Type.String({ maxLength: 254 }), { maxItems: 20, description: "email: 1 to 20 addresses" }),
  ),
};

const CreateChannel = Type.Object(
  { ...channelFields, type: Type.Unsafe<string>({ type: "string", enum: ["webhook", "slack", "email"] }) },
  { additionalProperties: false },
);

/** Omitted fields keep their value; a Slack URL given replaces the stored one (it is never shown). */
const UpdateChannel = Type.Object(
  {
    ...channelFields,
    name: Type.Optional(channelFields.name),
    type: Type.Optional(Type.String({ maxLength: 20, description: "cannot change; sent back as it is, it is accepted" })),
    rotateSecret: Type.Optional(Type.Boolean({ description: "webhook: a new signing secret, in this reply only" })),
  },
  { additionalProperties: false },
);

// Checked by checkThresholds (events/alerts/thresholds.ts), whose messages name the range and the fix.
const Threshold = Type.Unknown({ description: "A whole number in its range, or null to turn the check off where allowed" });
const ThresholdsBody = Type.Object(
  {
    heldMessages: Threshold,
    queueAgeMinutes: Threshold,
    failureRatePercent: Threshold,
    failureRateWindowMinutes: Threshold,
    failureRateMinMessages: Threshold,
    microsoftIdleWarnDays: Threshold,
    googleTestingWarnDays: Threshold,
    clientSecretWarnDays: Type.Unknown({ description: "Up to 3 different whole days, e.g. [30, 7]" }),
  },
  { additionalProperties: false },
);

const IncidentQuery = Type.Object(
  { ...listQueryProperties, open: Type.Optional(Type.Boolean({ description: "true: open only; false: resolved only" })) },
  { additionalProperties: false },
);

/** Alerts for admins: channels (with a test send), the incident history, thresholds. */
export function alertRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { alerts } = mailroom;
  const id = (request: { params: unknown }) => (request.params as { id: string }).id;

  app.get(
    "/api/alerts/channels",
    { schema: { tags, summary: "Every alert channel (secrets only as {set})", response: replies(200, listOf("AlertChannel")) } },
    () => alerts.channels.list(),
  );

  app.post(
    "/api/alerts/channels",
    {
      schema: {
        tags,
        summary: "Add an alert channel; a webhook's signing secret is in this reply only; audited",
        body: CreateChannel,
        response: replies(201, ref("NewAlertChannel")),
      },
    },
    async (request, reply) =>
      reply.status(201).send(await alerts.channels.create(request.body as ChannelInput, actorOf(request))),
  );

  app.get(
    "/api/alerts/channels/:id",
    { schema: { tags, summary: "One alert channel", params: IdParams, response: replies(200, ref("AlertChannel")) } },
    (request) => alerts.channels.get(id(request)),
  );

  app.put(
    "/api/alerts/channels/:id",
    {
      schema: {
        tags,
        summary: "Change an alert channel (omitted fields are kept); audited",
        params: IdParams,
        body: UpdateChannel,
        response: replies(200, ref("NewAlertChannel")),
      },
    },
    (request) => alerts.channels.update(id(request), request.body as ChannelInput, actorOf(request)),
  );

  app.delete(
    "/api/alerts/channels/:id",
    { schema: { tags, summary: "Delete an alert channel (its history stays); audited", params: IdParams } },
    async (request, reply) => {
      await alerts.channels.remove(id(request), actorOf(request));
      return reply.status(204).send();
    },
  );

  app.post(
    "/api/alerts/channels/:id/test",
    {
      schema: {
        tags,
        summary: "Send a test alert now and answer what happened (delivered, the receiver's status, or the error and its fix)",
        params: IdParams,
        response: replies(200, ref("AlertTestResult")),
      },
      // Each test reaches out (a URL, or an email to the recipients): a few a minute is plenty.
      config: { rateLimit: { max: 10, timeWindow: 60_000 } },
    },
    (request) => alerts.test(id(request), actorOf(request)),
  );

  app.get(
    "/api/alerts/incidents",
    {
      schema: {
        tags,
        summary: "Incident history, newest first, each with the notifications sent per channel",
        querystring: IncidentQuery,
        response: replies(200, listOf("AlertIncident")),
      },
    },
    (request) => alerts.incidents.list(request.query as { limit?: number; offset?: number; open?: boolean }),
  );

  app.get(
    "/api/settings/alerts",
    {
      schema: {
        tags: ["settings"],
        summary: "Alert thresholds in force and their defaults",
        response: replies(200, ref("AlertSettings")),
      },
    },
    () => alerts.settings.read(),
  );

  app.put(
    "/api/settings/alerts",
    {
      schema: {
        tags: ["settings"],
        summary: "Set every alert threshold (null turns a check off where allowed); audited",
        body: ThresholdsBody,
        response: replies(200, ref("AlertSettings")),
      },
    },
    (request) => alerts.settings.update(request.body as Record<string, unknown>, actorOf(request)),
  );
}
