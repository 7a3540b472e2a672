/** Every permission Mailroom checks. Super admins pass every check. */
export const permissions = [
  "email-servers.view",
  "email-servers.update",
  "email-servers.test",
  "messages.send",
  "messages.view",
  "messages.erase",
  "users.manage",
  "audit.view",
  "settings.update",
  "suppressions.update",
  "webhooks.manage",
  "alerts.manage",
] as const;

export type Permission = (typeof permissions)[number];

/** Each permission as the admin UI names it, so that a refusal reads the same as the form. */
export const permissionLabels: Record<Permission, string> = {
  "email-servers.view": "View email servers",
  "email-servers.update": "Edit email servers",
  "email-servers.test": "Test email servers",
  "messages.send": "Send and retry messages",
  "messages.view": "View messages",
  "messages.erase": "Erase a recipient’s mail",
  "users.manage": "Manage users, groups and tokens",
  "audit.view": "View the audit log",
  "settings.update": "Update settings",
  "suppressions.update": "Edit the suppression list",
  "webhooks.manage": "Manage webhooks",
  "alerts.manage": "Manage alerts",
};

export function isPermission(value: unknown): value is Permission {
  return typeof value === "string" && (permissions as readonly string[]).includes(value);
}

/** Who is making a request, and what they may do. */
export interface Principal {
  kind: "user" | "token";
  id: string;
  label: string;
  email: string | null;
  superAdmin: boolean;
  permissions: ReadonlySet<Permission>;
  /** For API tokens limited to some email servers; null means every server. */
  serverIds: readonly string[] | null;
  /** The user behind a session (or the token's owner: the user who created it). */
  userId: string | null;
  /** When an API token stops working (ms since the epoch); null or absent: never. */
  expiresAt?: number | null;
  /** A session whose password someone else set: it may only change it (password_change_required). */
  mustChangePassword?: boolean;
}

export function can(principal: Principal, permission: Permission): boolean {
  return principal.superAdmin || principal.permissions.has(permission);
}

/** The permissions of `wanted` the principal does not hold itself (none for a super admin). */
export function lackedBy(principal: Pick<Principal, "superAdmin" | "permissions">, wanted: Iterable<string>): Permission[] {
  if (principal.superAdmin) return [];
  const wantedSet = new Set(wanted);
  return permissions.filter((p) => wantedSet.has(p) && !principal.permissions.has(p));
}

export function canUseServer(principal: Principal, serverId: string): boolean {
  return principal.serverIds === null || principal.serverIds.includes(serverId);
}
