import { MailroomError } from "../kernel/errors.js";
import { lackedBy, type Permission, type Principal, permissionLabels } from "./permissions.js";

/**
 * What a users.manage holder may touch. users.manage is not super admin: a manager who
 * could set the password of someone holding more than they do would sign in as them and
 * hold it too. So a manager changes only users, groups and tokens that hold nothing the
 * manager lacks. Each function answers the refusal (its message is shown in the UI as
 * the reason), or null when the manager may.
 */

type Manager = Pick<Principal, "superAdmin" | "permissions">;

/** “Edit email servers” (email-servers.update): the form's words, and the key the API takes. */
function listed(permissions: Permission[]): string {
  const named = permissions.map((p) => `“${permissionLabels[p]}” (${p})`);
  return named.length === 1 ? named[0] : `${named.slice(0, -1).join(", ")} and ${named[named.length - 1]}`;
}

export function userNotManageable(
  manager: Manager,
  target: { email: string; superAdmin: boolean; permissions: readonly string[] },
): MailroomError | null {
  if (manager.superAdmin) return null;
  if (target.superAdmin) {
    return new MailroomError(
      "user_not_manageable",
      `You cannot change ${target.email}: they are a super admin, and only a super admin can change one.`,
      { superAdmin: true },
    );
  }
  const lacking = lackedBy(manager, target.permissions);
  if (!lacking.length) return null;
  return new MailroomError(
    "user_not_manageable",
    `You cannot change ${target.email}: they hold ${listed(lacking)}, which you do not have.`,
    { permissions: lacking },
  );
}

export function groupNotManageable(
  manager: Manager,
  group: { name: string; permissions: readonly string[] },
): MailroomError | null {
  const lacking = lackedBy(manager, group.permissions);
  if (!lacking.length) return null;
  return new MailroomError(
    "group_not_manageable",
    `You cannot change the group '${group.name}': it grants ${listed(lacking)}, which you do not have.`,
    { permissions: lacking },
  );
}

/** A token is revoked by whoever may change its owner; an ownerless one (from the CLI) by whoever holds all it carries. */
export function tokenNotManageable(
  manager: Manager,
  token: { name: string; permissions: readonly string[] },
  owner: { email: string; superAdmin: boolean; permissions: readonly string[] } | null,
): MailroomError | null {
  if (owner) {
    const refusal = userNotManageable(manager, owner);
    if (!refusal) return null;
    return new MailroomError(
      "token_not_manageable",
      `You cannot revoke the token '${token.name}': it belongs to someone you may not change. ${refusal.message}`,
      refusal.details,
    );
  }
  const lacking = lackedBy(manager, token.permissions);
  if (!lacking.length) return null;
  return new MailroomError(
    "token_not_manageable",
    `You cannot revoke the token '${token.name}': it carries ${listed(lacking)}, which you do not have.`,
    { permissions: lacking },
  );
}
