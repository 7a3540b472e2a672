/**
 * Whether a webhook's owner may still hear of events. A webhook acts as who registered it:
 * an API token while it is live (not revoked, not expired, its user enabled and still
 * holding "Manage webhooks"), a user while they are enabled and hold "Manage webhooks" and
 * "View messages". Read through the caller's handle, so it works inside a transaction.
 */
import type { Kysely } from "kysely";
import type { Permission } from "../../auth/permissions.js";
import type { Database, WebhooksTable } from "../../storage/schema.js";

type Owner = Pick<WebhooksTable, "owner_type" | "owner_id">;

export const ownerKey = (o: Owner) => `${o.owner_type}:${o.owner_id}`;

/** Each owner's reason to be silent, or null when its webhooks are live; by ownerKey. */
export async function ownerStates(db: Kysely<Database>, owners: Owner[], now: number): Promise<Map<string, string | null>> {
  const states = new Map<string, string | null>();
  const tokenIds = [...new Set(owners.filter((o) => o.owner_type === "token").map((o) => o.owner_id))];
  const tokens = tokenIds.length
    ? await db
        .selectFrom("api_tokens")
        .select(["id", "permissions", "revoked_at", "expires_at", "created_by"])
        .where("id", "in", tokenIds)
        .execute()
    : [];
  const userIds = [
    ...new Set([
      ...owners.filter((o) => o.owner_type === "user").map((o) => o.owner_id),
      ...tokens.flatMap((t) => (t.created_by ? [t.created_by] : [])),
    ]),
  ];
  const users = await userPermissions(db, userIds);

  for (const id of tokenIds) {
    const token = tokens.find((t) => t.id === id);
    let reason: string | null = null;
    if (!token || token.revoked_at !== null) reason = "The API token that registered it was revoked.";
    else if (token.expires_at !== null && Number(token.expires_at) <= now) reason = "The API token that registered it expired.";
    else if (!(JSON.parse(token.permissions) as string[]).includes("webhooks.manage")) {
      reason = "The API token that registered it no longer has “Manage webhooks”.";
    } else if (token.created_by) {
      const owner = users.get(token.created_by);
      if (!owner) reason = "The user who owns the API token is disabled or deleted.";
      else if (!owner.superAdmin && !owner.permissions.has("webhooks.manage")) {
        reason = "The user who owns the API token no longer has “Manage webhooks”.";
      }
    }
    states.set(`token:${id}`, reason);
  }
  for (const o of owners.filter((x) => x.owner_type === "user")) {
    const user = users.get(o.owner_id);
    let reason: string | null = null;
    if (!user) reason = "The user who registered it is disabled or deleted.";
    else if (!user.superAdmin && !user.permissions.has("webhooks.manage")) reason = "Its user no longer has “Manage webhooks”.";
    else if (!user.superAdmin && !user.permissions.has("messages.view")) reason = "Its user no longer has “View messages”.";
    states.set(ownerKey(o), reason);
  }
  return states;
}

/** Enabled users' permissions (the union of their groups'), by id. */
async function userPermissions(
  db: Kysely<Database>,
  ids: string[],
): Promise<Map<string, { superAdmin: boolean; permissions: Set<Permission> }>> {
  const found = new Map<string, { superAdmin: boolean; permissions: Set<Permission> }>();
  if (!ids.length) return found;
  const rows = await db
    .selectFrom("users")
    .select(["id", "is_super_admin"])
    .where("id", "in", ids)
    .where("disabled", "=", 0)
    .execute();
  for (const r of rows) found.set(r.id, { superAdmin: r.is_super_admin === 1, permissions: new Set() });
  const grants = await db
    .selectFrom("user_groups")
    .innerJoin("groups", "groups.id", "user_groups.group_id")
    .select(["user_groups.user_id", "groups.permissions"])
    .where("user_groups.user_id", "in", ids)
    .execute();
  for (const g of grants) {
    const user = found.get(g.user_id);
    if (user) for (const p of JSON.parse(g.permissions) as Permission[]) user.permissions.add(p);
  }
  return found;
}
