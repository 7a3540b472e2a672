import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { canUseServer } from "../../auth/permissions.js";
import type { MessageInput } from "../../core/message-input.js";
import { MAX_BATCH, type MessageFilter, MessageService } from "../../core/messages.js";
import { MailroomError } from "../../kernel/errors.js";
import { actorOf, requirePermission, requirePrincipal } from "../auth.js";
import { IdParams, listOf, listQueryProperties, MESSAGE_STATUSES, ref, replies } from "../schemas.js";

// 10 MB of message content arrives as base64 inside JSON: about 4/3 of it, plus the JSON around it.
export const MESSAGE_BODY_LIMIT = 14 * 1024 * 1024;

const AddressObject = Type.Object(
  { address: Type.String({ maxLength: 320 }), name: Type.Optional(Type.String({ maxLength: 400 })) },
  { additionalProperties: false },
);
const AddressField = Type.Union([
  Type.String({ maxLength: 100_000 }),
  AddressObject,
  Type.Array(Type.Union([Type.String({ maxLength: 1000 }), AddressObject]), { maxItems: 1000 }),
]);

const MessageBody = Type.Object(
  {
    server: Type.Optional(Type.String({ maxLength: 200 })),
    from: Type.Optional(Type.Union([Type.String({ maxLength: 1000 }), AddressObject])),
    to: Type.Optional(AddressField),
    cc: Type.Optional(AddressField),
    bcc: Type.Optional(AddressField),
    replyTo: Type.Optional(AddressField),
    subject: Type.Optional(Type.String({ maxLength: 2000 })),
    text: Type.Optional(Type.String()),
    html: Type.Optional(Type.String()),
    attachments: Type.Optional(
      Type.Array(
        Type.Object(
          {
            filename: Type.String({ maxLength: 255 }),
            contentType: Type.Optional(Type.String({ maxLength: 255 })),
            content: Type.String(),
            contentId: Type.Optional(Type.String({ maxLength: 255 })),
          },
          { additionalProperties: false },
        ),
        { maxItems: 100 },
      ),
    ),
    headers: Type.Optional(Type.Record(Type.String({ maxLength: 76 }), Type.String({ maxLength: 2000 }), { maxProperties: 50 })),
    idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    tag: Type.Optional(Type.String({ maxLength: 100, description: "Routes may match on it: letters, digits and . _ : / -" })),
  },
  { additionalProperties: false },
);

const MessageQuery = Type.Object(
  {
    ...listQueryProperties,
    status: Type.Optional(Type.Union(MESSAGE_STATUSES.map((s) => Type.Literal(s)))),
    server: Type.Optional(Type.String({ maxLength: 200 })),
    recipient: Type.Optional(Type.String({ maxLength: 320 })),
    q: Type.Optional(Type.String({ maxLength: 200 })),
    since: Type.Optional(Type.String({ maxLength: 64 })),
    until: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

const tags = ["messages"];

export function messageRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { messages } = mailroom;

  app.post(
    "/api/messages",
    {
      bodyLimit: MESSAGE_BODY_LIMIT,
      schema: {
        tags,
        summary: "Queue one message; 202 once it is stored. The same idempotencyKey within 24 hours returns the first message.",
        body: MessageBody,
        response: replies(202, ref("Queued")),
      },
    },
    async (request, reply) => {
      const result = await messages.enqueue(request.body as MessageInput, requirePrincipal(request));
      if (result.replayed) reply.header("idempotent-replay", "true");
      return reply.status(202).send({ id: result.id, status: result.status });
    },
  );

  app.post(
    "/api/messages/batch",
    {
      bodyLimit: MESSAGE_BODY_LIMIT,
      schema: {
        tags,
        summary: `Queue up to ${MAX_BATCH} messages in one transaction: all are stored, or none`,
        body: Type.Object(
          { messages: Type.Array(MessageBody, { minItems: 1, maxItems: MAX_BATCH }) },
          { additionalProperties: false },
        ),
        response: replies(202, listOf("Queued")),
      },
    },
    async (request, reply) => {
      const items = await messages.enqueueBatch(
        (request.body as { messages: MessageInput[] }).messages,
        requirePrincipal(request),
      );
      return reply.status(202).send({ items: items.map(({ id, status }) => ({ id, status })), total: items.length });
    },
  );

  app.get(
    "/api/messages",
    {
      schema: {
        tags,
        summary:
          "The delivery log, newest first, filtered by status, server, recipient, time and q (words of the subject or a recipient)",
        querystring: MessageQuery,
        response: replies(200, listOf("Message")),
      },
    },
    async (request) => messages.list(request.query as MessageFilter, requirePrincipal(request)),
  );

  app.get(
    "/api/messages/:id",
    {
      schema: {
        tags,
        summary:
          "One message with every attempt and the servers' responses (with messages.view, or without it for a message you sent)",
        params: IdParams,
        response: replies(200, ref("MessageWithAttempts")),
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      const id = (request.params as { id: string }).id;
      const row = await messages.findRow(id);
      if (row && MessageService.sentBy(principal, row)) return messages.get(id);
      // Whoever lacks messages.view learns nothing, not even whether the id exists.
      requirePermission(request, "messages.view");
      if (row && !canUseServer(principal, row.server_id)) {
        throw new MailroomError("server_not_allowed", `This API token may not see the messages of '${row.server_name}'.`);
      }
      return messages.get(id);
    },
  );

  app.post(
    "/api/messages/:id/retry",
    {
      schema: { tags, summary: "Queue a failed or held message again", params: IdParams, response: replies(200, ref("Message")) },
    },
    async (request) => messages.retry((request.params as { id: string }).id, requirePrincipal(request), actorOf(request)),
  );
}
