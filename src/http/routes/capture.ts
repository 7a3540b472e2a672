import type { FastifyInstance, FastifyReply } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { writeAudit } from "../../core/audit.js";
import type { MessageInput } from "../../core/message-input.js";
import {
  deleteAllCaptured,
  deleteCaptured,
  listCaptured,
  readCaptured,
  readCapturedAttachment,
  readCapturedContent,
  readCapturedRaw,
} from "../../drivers/capture/store.js";
import { MailroomError } from "../../kernel/errors.js";
import { actorOf, requirePermission, requirePrincipal } from "../auth.js";
import { listOf, listQueryProperties, ref, replies } from "../schemas.js";

const ServerParams = Type.Object({ serverId: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
const MessageParams = Type.Object(
  { serverId: Type.String({ minLength: 1, maxLength: 200 }), id: Type.String({ minLength: 1, maxLength: 200 }) },
  { additionalProperties: false },
);
const tags = ["messages"];

/**
 * Headers for a file the browser must save, never show: whatever a captured message holds
 * (HTML with script, say) cannot run on Mailroom's origin. The name is reduced to safe
 * characters, with the original in RFC 6266's filename* for browsers that read it.
 */
function download(reply: FastifyReply, filename: string, contentType: string): FastifyReply {
  const ascii = filename.replace(/[^A-Za-z0-9._ -]/g, "_").slice(0, 150) || "download";
  return reply
    .header("content-type", contentType)
    .header("content-disposition", `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`)
    .header("x-content-type-options", "nosniff")
    .header("content-security-policy", "default-src 'none'; sandbox")
    .header("cache-control", "no-store");
}

function notKept(id: string): MailroomError {
  return new MailroomError(
    "message_not_found",
    `The Capture server kept no message '${id}' (it may have been deleted, dropped beyond the server's "Messages kept", or removed by retention with its message).`,
  );
}

/** What the Capture driver kept, for the admin to look at, download, clear or send on. */
export function captureRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { dataDir } = mailroom.ctx.config;

  async function captureServerId(idOrName: string): Promise<string> {
    const row = await mailroom.servers.getRow(idOrName);
    if (row.driver !== "capture") {
      throw new MailroomError(
        "email_server_not_found",
        `'${row.name}' is not a Capture server; only Capture servers keep messages.`,
      );
    }
    return row.id;
  }

  app.get(
    "/api/capture/:serverId/messages",
    {
      schema: {
        tags,
        summary: "Messages a Capture server kept, newest first; q finds words of the subject, from or to",
        params: ServerParams,
        querystring: Type.Object(
          { ...listQueryProperties, q: Type.Optional(Type.String({ maxLength: 200 })) },
          { additionalProperties: false },
        ),
        response: replies(200, listOf("CapturedSummary")),
      },
    },
    async (request) => {
      const serverId = await captureServerId((request.params as { serverId: string }).serverId);
      return listCaptured(dataDir, serverId, request.query as { limit?: number; offset?: number; q?: string });
    },
  );

  app.delete(
    "/api/capture/:serverId/messages",
    {
      schema: {
        tags,
        summary: "Delete every message a Capture server kept",
        params: ServerParams,
        response: replies(200, ref("CapturedDeleted")),
      },
    },
    async (request) => {
      const serverId = await captureServerId((request.params as { serverId: string }).serverId);
      const deleted = await deleteAllCaptured(dataDir, serverId);
      await writeAudit(mailroom.ctx.db, actorOf(request), {
        action: "capture.delete_all",
        targetType: "email_server",
        targetId: serverId,
        after: { deleted },
      });
      return { deleted };
    },
  );

  app.get(
    "/api/capture/:serverId/messages/:id",
    {
      schema: {
        tags,
        summary: "One captured message: raw MIME and parsed parts",
        params: MessageParams,
        response: replies(200, ref("CapturedMessage")),
      },
    },
    async (request) => {
      const { serverId, id } = request.params as { serverId: string; id: string };
      const message = await readCaptured(dataDir, await captureServerId(serverId), id);
      if (!message) throw notKept(id);
      return message;
    },
  );

  app.delete(
    "/api/capture/:serverId/messages/:id",
    { schema: { tags, summary: "Delete one captured message", params: MessageParams } },
    async (request, reply) => {
      const { serverId, id } = request.params as { serverId: string; id: string };
      const captureId = await captureServerId(serverId);
      if (!(await deleteCaptured(dataDir, captureId, id))) throw notKept(id);
      await writeAudit(mailroom.ctx.db, actorOf(request), {
        action: "capture.delete",
        targetType: "email_server",
        targetId: captureId,
        before: { message: id },
      });
      return reply.status(204).send();
    },
  );

  app.get(
    "/api/capture/:serverId/messages/:id/raw",
    { schema: { tags, summary: "Download a captured message as an .eml file", params: MessageParams } },
    async (request, reply) => {
      const { serverId, id } = request.params as { serverId: string; id: string };
      const raw = await readCapturedRaw(dataDir, await captureServerId(serverId), id);
      if (!raw) throw notKept(id);
      return download(reply, `${id}.eml`, "message/rfc822").send(raw);
    },
  );

  app.get(
    "/api/capture/:serverId/messages/:id/attachments/:index",
    {
      schema: {
        tags,
        summary: "Download one attachment of a captured message (always as a file to save, never shown inline)",
        params: Type.Object(
          {
            serverId: Type.String({ minLength: 1, maxLength: 200 }),
            id: Type.String({ minLength: 1, maxLength: 200 }),
            index: Type.Integer({ minimum: 0, maximum: 10_000 }),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const { serverId, id, index } = request.params as { serverId: string; id: string; index: number };
      const attachment = await readCapturedAttachment(dataDir, await captureServerId(serverId), id, index);
      if (!attachment) {
        throw new MailroomError("message_not_found", `The captured message '${id}' has no attachment number ${index}.`);
      }
      // application/octet-stream whatever the message declared: an HTML or SVG attachment is saved, not rendered.
      return download(reply, attachment.filename ?? `attachment-${index}`, "application/octet-stream").send(attachment.content);
    },
  );

  app.post(
    "/api/capture/:serverId/messages/:id/release",
    {
      schema: {
        tags,
        summary:
          "Send a captured message on through a real server (queued like POST /api/messages); 'to' replaces its recipients",
        params: MessageParams,
        body: Type.Object(
          {
            server: Type.String({ minLength: 1, maxLength: 200 }),
            to: Type.Optional(Type.Array(Type.String({ maxLength: 320 }), { minItems: 1, maxItems: 100 })),
          },
          { additionalProperties: false },
        ),
        response: replies(202, ref("Queued")),
      },
    },
    async (request, reply) => {
      // Releasing reads the captured message and mails it anywhere: it needs messages.view too.
      requirePermission(request, "messages.view");
      const { serverId, id } = request.params as { serverId: string; id: string };
      const body = request.body as { server: string; to?: string[] };
      const content = await readCapturedContent(dataDir, await captureServerId(serverId), id);
      if (!content) throw notKept(id);
      if (content.bodyRemovedAt) {
        throw new MailroomError(
          "message_not_retryable",
          `The captured message '${id}' lost its body to retention on ${content.bodyRemovedAt.slice(0, 10)}: only its headers are kept, so it cannot be released. Send a new message instead.`,
        );
      }
      const input: MessageInput = {
        server: body.server,
        to: body.to ?? [...content.to, ...content.cc],
        subject: content.subject,
        ...(content.text !== null ? { text: content.text } : {}),
        ...(content.html !== null ? { html: content.html } : {}),
        attachments: content.attachments,
      };
      const from = content.from;
      const principal = requirePrincipal(request);
      let result: Awaited<ReturnType<typeof mailroom.messages.enqueue>>;
      try {
        result = await mailroom.messages.enqueue(from ? { ...input, from } : input, principal);
      } catch (error) {
        // The real server may not send as the captured sender: then it sends as itself.
        if (!(error instanceof MailroomError && error.code === "from_not_allowed")) throw error;
        result = await mailroom.messages.enqueue(input, principal);
      }
      return reply.status(202).send({ id: result.id, status: result.status });
    },
  );
}
