import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { MailroomError } from "../../core/errors.js";
import { listCaptured, readCaptured } from "../../drivers/capture/store.js";
import { listQueryProperties } from "../schemas.js";

const ServerParams = Type.Object({ serverId: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
const tags = ["messages"];

/** What the Capture driver kept, for the admin to look at. */
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
        summary: "Messages a Capture server kept, newest first",
        params: ServerParams,
        querystring: Type.Object(listQueryProperties, { additionalProperties: false }),
      },
    },
    async (request) => {
      const serverId = await captureServerId((request.params as { serverId: string }).serverId);
      return listCaptured(dataDir, serverId, request.query as { limit?: number; offset?: number });
    },
  );

  app.get(
    "/api/capture/:serverId/messages/:id",
    {
      schema: {
        tags,
        summary: "One captured message: raw MIME and parsed parts",
        params: Type.Object(
          { serverId: Type.String({ minLength: 1, maxLength: 200 }), id: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => {
      const { serverId, id } = request.params as { serverId: string; id: string };
      const message = await readCaptured(dataDir, await captureServerId(serverId), id);
      if (!message)
        throw new MailroomError(
          "message_not_found",
          `The Capture server kept no message '${id}' (it may have been dropped by retention).`,
        );
      return message;
    },
  );
}
