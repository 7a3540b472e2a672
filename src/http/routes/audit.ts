import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { iso } from "../../core/ids.js";
import { listQueryProperties } from "../schemas.js";

const AuditQuery = Type.Object(
  {
    ...listQueryProperties,
    action: Type.Optional(Type.String({ maxLength: 64 })),
    targetId: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export function auditRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  app.get(
    "/api/audit",
    {
      schema: { tags: ["audit"], summary: "Who changed what and when, newest first (secrets redacted)", querystring: AuditQuery },
    },
    async (request) => {
      const q = request.query as { limit?: number; offset?: number; action?: string; targetId?: string };
      let query = mailroom.ctx.db.selectFrom("audit_log");
      if (q.action) query = query.where("action", "=", q.action);
      if (q.targetId) query = query.where("target_id", "=", q.targetId);
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
      const rows = await query
        .selectAll()
        .orderBy("id", "desc")
        .limit(q.limit ?? 50)
        .offset(q.offset ?? 0)
        .execute();
      return {
        items: rows.map((r) => ({
          id: Number(r.id),
          at: iso(r.at),
          actor: { type: r.actor_type, id: r.actor_id, label: r.actor_label },
          action: r.action,
          target: { type: r.target_type, id: r.target_id },
          before: r.before === null ? null : JSON.parse(r.before),
          after: r.after === null ? null : JSON.parse(r.after),
          ip: r.ip,
        })),
        total: Number(total),
      };
    },
  );
}
