import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { eraseRecipientData } from "../../core/erasure.js";
import { MailroomError } from "../../kernel/errors.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { ref, replies } from "../schemas.js";

// Longer than any address, so the handler's own check names the limit (254) and the fix.
const AddressParams = Type.Object({ address: Type.String({ minLength: 1, maxLength: 1000 }) }, { additionalProperties: false });

/** Data protection requests about one recipient. */
export function recipientRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.delete(
    "/api/recipients/:address/data",
    {
      schema: {
        tags: ["messages"],
        summary:
          "Erase every stored body, raw copy, captured copy and provider reply of mail to this address (to, cc, bcc or reply-to); " +
          "the log keeps its rows with the address replaced by a keyed hash, and the audit log records the erasure",
        params: AddressParams,
        response: replies(200, ref("Erasure")),
      },
    },
    async (request) => {
      const principal = requirePrincipal(request);
      // An erasure spans every server: a token limited to some servers may not reach the others'.
      if (principal.serverIds !== null) {
        throw new MailroomError(
          "server_not_allowed",
          "An erasure covers the mail of every email server: use a token that is not limited to some servers.",
        );
      }
      return eraseRecipientData(mailroom.ctx, (request.params as { address: string }).address, actorOf(request));
    },
  );
}
