import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { MAX_RETENTION_DAYS } from "../../config.js";
import { actorOf } from "../auth.js";
import { ref, replies } from "../schemas.js";

// Checked by checkPeriods (core/retention-policy.ts), whose message names the fix; ajv's union
// errors ("must be of type integer (and 2 more)") would not.
const Days = Type.Unknown({ description: `Whole days from 1 to ${MAX_RETENTION_DAYS}, or null: kept for ever` });
/** Every period is required: null says "kept for ever", so nothing changes by omission. */
const RetentionBody = Type.Object({ bodyDays: Days, metadataDays: Days, auditDays: Days }, { additionalProperties: false });

/** The retention periods (environment, overridden by the UI's settings) and what retention did. */
export function retentionRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { retention } = mailroom;
  const view = async () => ({ ...(await retention.policy.read()), status: await retention.status() });
  const reply = replies(200, ref("Retention"));

  app.get(
    "/api/settings/retention",
    {
      schema: {
        tags: ["settings"],
        summary: "Retention periods in force and their source, database size, messages by tier, the last purge",
        response: reply,
      },
    },
    view,
  );

  app.put(
    "/api/settings/retention",
    {
      schema: {
        tags: ["settings"],
        summary: "Override the environment's retention periods (whole days, null: kept for ever); audited",
        body: RetentionBody,
        response: reply,
      },
    },
    async (request) => {
      await retention.policy.update(request.body as Record<string, unknown>, actorOf(request));
      return view();
    },
  );

  app.delete(
    "/api/settings/retention",
    {
      schema: {
        tags: ["settings"],
        summary: "Forget the saved retention periods: the environment's apply again; audited",
        response: reply,
      },
    },
    async (request) => {
      await retention.policy.reset(actorOf(request));
      return view();
    },
  );
}
