import type { FastifyInstance } from "fastify";
import type { Mailroom } from "../../app.js";

export function healthRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.get("/healthz", { schema: { tags: ["health"], summary: "The process is alive" } }, async () => ({ status: "ok" }));
  app.get(
    "/readyz",
    { schema: { tags: ["health"], summary: "The database answers, and takes writes again after a full disk" } },
    async (_request, reply) => {
      const problem = await mailroom.ctx.storage.health.probe(mailroom.ctx.db);
      // A load balancer only needs the 503; the code and message tell the operator why.
      if (problem) return reply.status(503).send({ status: "not_ready", code: problem.code, message: problem.message });
      return { status: "ready" };
    },
  );
  app.get("/metrics", { schema: { tags: ["health"], summary: "Prometheus metrics" } }, async (_request, reply) => {
    reply.header("content-type", mailroom.metrics.registry.contentType);
    return mailroom.metrics.registry.metrics();
  });
}
