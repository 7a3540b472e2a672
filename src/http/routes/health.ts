import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import type { Mailroom } from "../../app.js";
import { MailroomError } from "../../core/errors.js";

export function healthRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.get("/healthz", { schema: { tags: ["health"], summary: "The process is alive" } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { tags: ["health"], summary: "The database answers" } }, async () => {
    try {
      await sql`select 1`.execute(mailroom.ctx.db);
    } catch {
      throw new MailroomError("storage_busy", "The database does not answer.");
    }
    return { status: "ready" };
  });
  app.get("/metrics", { schema: { tags: ["health"], summary: "Prometheus metrics" } }, async (_request, reply) => {
    reply.header("content-type", mailroom.metrics.registry.contentType);
    return mailroom.metrics.registry.metrics();
  });
}
