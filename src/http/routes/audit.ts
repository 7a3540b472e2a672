import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { MailroomError } from "../../kernel/errors.js";
import { iso } from "../../kernel/ids.js";
import type { AuditLogTable } from "../../storage/schema.js";
import { listOf, listQueryProperties, ref, replies } from "../schemas.js";

const AuditQuery = Type.Object(
  {
    ...listQueryProperties,
    action: Type.Optional(Type.String({ maxLength: 64 })),
    targetId: Type.Optional(Type.String({ maxLength: 200 })),
    actorId: Type.Optional(Type.String({ maxLength: 200 })),
    since: Type.Optional(Type.String({ maxLength: 64 })),
    until: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

interface AuditQueryValues {
  limit?: number;
  offset?: number;
  action?: string;
  targetId?: string;
  actorId?: string;
  since?: string;
  until?: string;
}

function time(field: string, value: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new MailroomError("validation_failed", `${field}: must be a date-time like 2026-01-31T12:00:00Z.`, [
      { field, message: "must be a date-time" },
    ]);
  }
  return ms;
}

/** The name an entry's own before/after gives its target, for things since deleted. */
function nameInEntry(row: Pick<AuditLogTable, "before" | "after">): string | null {
  for (const json of [row.after, row.before]) {
    if (!json) continue;
    const value = JSON.parse(json) as Record<string, unknown> | null;
    for (const key of ["name", "email"]) if (value && typeof value[key] === "string") return value[key] as string;
  }
  return null;
}

export function auditRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const { db } = mailroom.ctx;

  /** Today's names of the servers, users, groups and tokens the entries name, by id. */
  async function targetNames(rows: Pick<AuditLogTable, "target_type" | "target_id">[]): Promise<Map<string, string>> {
    const ids = (type: string) => [
      ...new Set(rows.filter((r) => r.target_type === type && r.target_id).map((r) => r.target_id!)),
    ];
    const names = new Map<string, string>();
    const servers = ids("email_server");
    if (servers.length) {
      for (const r of await db.selectFrom("email_servers").select(["id", "name"]).where("id", "in", servers).execute()) {
        names.set(`email_server:${r.id}`, r.name);
      }
    }
    const users = ids("user");
    if (users.length) {
      for (const r of await db.selectFrom("users").select(["id", "email"]).where("id", "in", users).execute()) {
        names.set(`user:${r.id}`, r.email);
      }
    }
    const groups = ids("group");
    if (groups.length) {
      for (const r of await db.selectFrom("groups").select(["id", "name"]).where("id", "in", groups).execute()) {
        names.set(`group:${r.id}`, r.name);
      }
    }
    const tokens = ids("token");
    if (tokens.length) {
      for (const r of await db.selectFrom("api_tokens").select(["id", "name"]).where("id", "in", tokens).execute()) {
        names.set(`token:${r.id}`, r.name);
      }
    }
    const messages = ids("message");
    if (messages.length) {
      for (const r of await db.selectFrom("messages").select(["id", "subject"]).where("id", "in", messages).execute()) {
        names.set(`message:${r.id}`, r.subject || "(no subject)");
      }
    }
    return names;
  }

  app.get(
    "/api/audit",
    {
      schema: {
        tags: ["audit"],
        summary: "Who changed what and when, newest first (secrets redacted); by action, actor and time",
        querystring: AuditQuery,
        response: replies(200, listOf("AuditEntry")),
      },
    },
    async (request) => {
      const q = request.query as AuditQueryValues;
      let query = db.selectFrom("audit_log");
      if (q.action) query = query.where("action", "=", q.action);
      if (q.targetId) query = query.where("target_id", "=", q.targetId);
      if (q.actorId) query = query.where("actor_id", "=", q.actorId);
      if (q.since) query = query.where("at", ">=", time("since", q.since));
      if (q.until) query = query.where("at", "<", time("until", q.until));
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
      const rows = await query
        .selectAll()
        .orderBy("id", "desc")
        .limit(q.limit ?? 50)
        .offset(q.offset ?? 0)
        .execute();
      const names = await targetNames(rows);
      return {
        items: rows.map((r) => ({
          id: Number(r.id),
          at: iso(r.at),
          actor: { type: r.actor_type, id: r.actor_id, label: r.actor_label },
          action: r.action,
          target: {
            type: r.target_type,
            id: r.target_id,
            // Its name today, else the one the entry recorded (a deleted server, say).
            label: names.get(`${r.target_type}:${r.target_id}`) ?? nameInEntry(r),
          },
          before: r.before === null ? null : JSON.parse(r.before),
          after: r.after === null ? null : JSON.parse(r.after),
          ip: r.ip,
        })),
        total: Number(total),
      };
    },
  );

  app.get(
    "/api/audit/filters",
    {
      schema: {
        tags: ["audit"],
        summary: "The actions and the actors the audit log holds, for its filters",
        response: replies(200, ref("AuditFilters")),
      },
    },
    async () => {
      const actions = await db.selectFrom("audit_log").select("action").distinct().orderBy("action").execute();
      // An actor's latest label (a user renamed keeps one entry).
      const actors = await db
        .selectFrom("audit_log")
        .select(["actor_type", "actor_id", (eb) => eb.fn.max("id").as("last")])
        .where("actor_id", "is not", null)
        .groupBy(["actor_type", "actor_id"])
        .execute();
      const labels = actors.length
        ? await db
            .selectFrom("audit_log")
            .select(["id", "actor_label"])
            .where(
              "id",
              "in",
              actors.map((a) => Number(a.last)),
            )
            .execute()
        : [];
      const labelOf = new Map(labels.map((l) => [Number(l.id), l.actor_label]));
      return {
        actions: actions.map((a) => a.action),
        actors: actors
          .map((a) => ({ type: a.actor_type, id: a.actor_id as string, label: labelOf.get(Number(a.last)) ?? "" }))
          .sort((x, y) => x.label.localeCompare(y.label)),
      };
    },
  );
}
