import type { Kysely } from "kysely";
import type { Database } from "../storage/schema.js";

/** Who did something: a signed-in user, an API token, the CLI, or Mailroom itself. */
export interface Actor {
  type: "user" | "token" | "cli" | "system";
  id: string | null;
  label: string;
  ip?: string;
}

export const systemActor: Actor = { type: "system", id: null, label: "mailroom" };
export const cliActor: Actor = { type: "cli", id: null, label: "mailroom CLI" };

export const SECRET_CHANGED = "[secret changed]";
export const SECRET_UNCHANGED = "[secret unchanged]";

export interface AuditEntry {
  action: string;
  targetType: string;
  targetId: string | null;
  before?: unknown;
  after?: unknown;
}

/**
 * Writes one audit entry, in the caller's transaction so the entry and the change land
 * together. Callers pass values that hold no secret (see redactSecrets).
 */
export async function writeAudit(db: Kysely<Database>, actor: Actor, entry: AuditEntry, at = Date.now()): Promise<void> {
  await db
    .insertInto("audit_log")
    .values({
      at,
      actor_type: actor.type,
      actor_id: actor.id,
      actor_label: actor.label,
      action: entry.action,
      target_type: entry.targetType,
      target_id: entry.targetId,
      before: entry.before === undefined ? null : JSON.stringify(entry.before),
      after: entry.after === undefined ? null : JSON.stringify(entry.after),
      ip: actor.ip ?? null,
    })
    .execute();
}
