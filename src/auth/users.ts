import type { Kysely } from "kysely";
import { type Actor, writeAudit } from "../core/audit.js";
import { type FieldProblem, fieldError, MailroomError } from "../kernel/errors.js";
import { iso, newId } from "../kernel/ids.js";
import { hasControlCharacters, isEmailAddress } from "../kernel/validate.js";
import type { Database, UsersTable } from "../storage/schema.js";
import { generatePassword, hashPassword, MIN_PASSWORD_LENGTH, verifyAgainstNothing, verifyPassword } from "./passwords.js";
import { permissions as allPermissions, isPermission, type Permission, type Principal } from "./permissions.js";

export interface UserView {
  id: string;
  email: string;
  name: string;
  superAdmin: boolean;
  disabled: boolean;
  groups: { id: string; name: string }[];
  permissions: Permission[];
  /** The password was set by someone else and must be changed at the next sign-in. */
  mustChangePassword: boolean;
  /** API tokens this user owns that still work: they stop working if the user is deleted or disabled. */
  activeTokens: number;
  createdAt: string;
  updatedAt: string;
}

export interface UserInput {
  email?: string;
  name?: string;
  password?: string;
  superAdmin?: boolean;
  disabled?: boolean;
  groupIds?: string[];
  /** With a password: it is one-time, chosen by someone else (not part of any request body). */
  mustChangePassword?: boolean;
}

export interface GroupView {
  id: string;
  name: string;
  permissions: Permission[];
  members: number;
  createdAt: string;
  updatedAt: string;
}

/** A short password has its own code (as in `mailroom user reset-password`); the rest is validation_failed. */
function inputError(problems: FieldProblem[]): MailroomError {
  const password = problems.filter((p) => p.field === "password");
  if (!password.length) return fieldError("validation_failed", problems);
  return fieldError("weak_password", [...password, ...problems.filter((p) => p.field !== "password")]);
}

function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Users and the groups that give them permissions. */
export class UserService {
  constructor(private readonly db: Kysely<Database>) {}

  // ---- users ----

  async list(options: { limit?: number; offset?: number } = {}): Promise<{ items: UserView[]; total: number }> {
    const { total } = await this.db
      .selectFrom("users")
      .select((eb) => eb.fn.countAll<number>().as("total"))
      .executeTakeFirstOrThrow();
    const rows = await this.db
      .selectFrom("users")
      .selectAll()
      .orderBy("email")
      .limit(options.limit ?? 50)
      .offset(options.offset ?? 0)
      .execute();
    return { items: await Promise.all(rows.map((r) => this.toView(r))), total: Number(total) };
  }

  async get(id: string): Promise<UserView> {
    return this.toView(await this.getRow(id));
  }

  async count(): Promise<number> {
    const { total } = await this.db
      .selectFrom("users")
      .select((eb) => eb.fn.countAll<number>().as("total"))
      .executeTakeFirstOrThrow();
    return Number(total);
  }

  /** Creates a user; without a password, one is generated and returned once. */
  async create(input: UserInput, actor: Actor): Promise<{ user: UserView; generatedPassword: string | null }> {
    const problems = this.checkInput(input, true);
    if (problems.length) throw inputError(problems);
    const generatedPassword = input.password ? null : generatePassword();
    const password = input.password ?? (generatedPassword as string);
    const now = Date.now();
    const row: UsersTable = {
      id: newId(),
      email: normalizeEmail(input.email as string),
      name: (input.name ?? "").trim(),
      password_hash: await hashPassword(password),
      is_super_admin: input.superAdmin ? 1 : 0,
      disabled: input.disabled ? 1 : 0,
      // A generated password is one-time by nature; a given one when the caller says so.
      must_change_password: generatedPassword || input.mustChangePassword ? 1 : 0,
      created_at: now,
      updated_at: now,
    };
    await this.db.transaction().execute(async (trx) => {
      await this.assertEmailFree(trx, row.email);
      await trx.insertInto("users").values(row).execute();
      await this.setGroups(trx, row.id, input.groupIds ?? []);
      await writeAudit(trx, actor, {
        action: "user.create",
        targetType: "user",
        targetId: row.id,
        after: { email: row.email, name: row.name, superAdmin: input.superAdmin ?? false, groupIds: input.groupIds ?? [] },
      });
    });
    return { user: await this.get(row.id), generatedPassword };
  }

  async update(id: string, input: UserInput, actor: Actor): Promise<UserView> {
    const problems = this.checkInput(input, false);
    if (problems.length) throw inputError(problems);
    await this.db.transaction().execute(async (trx) => {
      const before = await this.getRow(id, trx);
      const changes: Partial<UsersTable> = { updated_at: Date.now() };
      if (input.email !== undefined) {
        changes.email = normalizeEmail(input.email);
        if (changes.email !== before.email) await this.assertEmailFree(trx, changes.email);
      }
      if (input.name !== undefined) changes.name = input.name.trim();
      if (input.superAdmin !== undefined) changes.is_super_admin = input.superAdmin ? 1 : 0;
      if (input.disabled !== undefined) changes.disabled = input.disabled ? 1 : 0;
      if (input.password !== undefined) {
        changes.password_hash = await hashPassword(input.password);
        changes.must_change_password = input.mustChangePassword ? 1 : 0;
      }
      await trx.updateTable("users").set(changes).where("id", "=", id).execute();
      if (input.groupIds !== undefined) await this.setGroups(trx, id, input.groupIds);
      await this.assertSuperAdminLeft(trx);
      if (input.password !== undefined || input.disabled) {
        // A new password or a disabled account ends every session of that user.
        await trx.deleteFrom("sessions").where("user_id", "=", id).execute();
      }
      await writeAudit(trx, actor, {
        action: "user.update",
        targetType: "user",
        targetId: id,
        before: {
          email: before.email,
          name: before.name,
          superAdmin: before.is_super_admin === 1,
          disabled: before.disabled === 1,
        },
        after: {
          email: changes.email ?? before.email,
          name: changes.name ?? before.name,
          superAdmin: (changes.is_super_admin ?? before.is_super_admin) === 1,
          disabled: (changes.disabled ?? before.disabled) === 1,
          ...(input.groupIds !== undefined ? { groupIds: input.groupIds } : {}),
          ...(input.password !== undefined ? { password: "[secret changed]", oneTime: input.mustChangePassword === true } : {}),
        },
      });
    });
    return this.get(id);
  }

  async remove(id: string, actor: Actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const before = await this.getRow(id, trx);
      await trx.deleteFrom("user_groups").where("user_id", "=", id).execute();
      await trx.deleteFrom("sessions").where("user_id", "=", id).execute();
      await trx.deleteFrom("users").where("id", "=", id).execute();
      await this.assertSuperAdminLeft(trx);
      // A token acts as its owner: with the owner gone it stops working (TokenService.authenticate
      // checks that too); revoking here also takes it off the token list.
      const revoked = await trx
        .updateTable("api_tokens")
        .set({ revoked_at: Date.now() })
        .where("created_by", "=", id)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      await writeAudit(trx, actor, {
        action: "user.delete",
        targetType: "user",
        targetId: id,
        before: { email: before.email, name: before.name },
        after: { tokensRevoked: Number(revoked.numUpdatedRows) },
      });
    });
  }

  /** Sets a new one-time password (given, or generated and returned once): it must be changed at the next sign-in. */
  async resetPassword(email: string, actor: Actor, password?: string): Promise<string> {
    const row = await this.db.selectFrom("users").selectAll().where("email", "=", normalizeEmail(email)).executeTakeFirst();
    if (!row) throw new MailroomError("user_not_found", `No user has the email ${email}.`);
    const next = password ?? generatePassword();
    if (next.length < MIN_PASSWORD_LENGTH) throw new MailroomError("weak_password");
    await this.update(row.id, { password: next, mustChangePassword: true }, actor);
    return next;
  }

  /** The user for an email and password, or null; as slow for an unknown user as for a known one. */
  async authenticate(email: string, password: string): Promise<UsersTable | null> {
    const row = await this.db.selectFrom("users").selectAll().where("email", "=", normalizeEmail(email)).executeTakeFirst();
    if (!row) {
      await verifyAgainstNothing(password);
      return null;
    }
    const ok = await verifyPassword(password, row.password_hash);
    return ok && row.disabled === 0 ? row : null;
  }

  async principalFor(userId: string): Promise<Principal | null> {
    const row = await this.db.selectFrom("users").selectAll().where("id", "=", userId).executeTakeFirst();
    if (!row || row.disabled === 1) return null;
    return {
      kind: "user",
      id: row.id,
      label: row.email,
      email: row.email,
      superAdmin: row.is_super_admin === 1,
      permissions: new Set(await this.permissionsOf(row.id)),
      serverIds: null,
      userId: row.id,
      mustChangePassword: row.must_change_password === 1,
    };
  }

  async permissionsOf(userId: string, db: Kysely<Database> = this.db): Promise<Permission[]> {
    const rows = await db
      .selectFrom("user_groups")
      .innerJoin("groups", "groups.id", "user_groups.group_id")
      .select("groups.permissions")
      .where("user_groups.user_id", "=", userId)
      .execute();
    const union = new Set<Permission>();
    for (const r of rows) for (const p of JSON.parse(r.permissions) as Permission[]) union.add(p);
    return allPermissions.filter((p) => union.has(p));
  }

  // ---- groups ----

  async listGroups(): Promise<{ items: GroupView[]; total: number }> {
    const rows = await this.db.selectFrom("groups").selectAll().orderBy("name").execute();
    const items = await Promise.all(rows.map((r) => this.groupView(r.id)));
    return { items, total: items.length };
  }

  async getGroup(id: string): Promise<GroupView> {
    return this.groupView(id);
  }

  async createGroup(input: { name: string; permissions: string[] }, actor: Actor): Promise<GroupView> {
    const name = this.checkGroup(input);
    const id = newId();
    const now = Date.now();
    await this.db.transaction().execute(async (trx) => {
      await this.assertGroupNameFree(trx, name);
      await trx
        .insertInto("groups")
        .values({ id, name, permissions: JSON.stringify(input.permissions), created_at: now, updated_at: now })
        .execute();
      await writeAudit(trx, actor, { action: "group.create", targetType: "group", targetId: id, after: input });
    });
    return this.groupView(id);
  }

  async updateGroup(id: string, input: { name: string; permissions: string[] }, actor: Actor): Promise<GroupView> {
    const name = this.checkGroup(input);
    await this.db.transaction().execute(async (trx) => {
      const before = await this.getGroupRow(id, trx);
      if (before.name !== name) await this.assertGroupNameFree(trx, name);
      await trx
        .updateTable("groups")
        .set({ name, permissions: JSON.stringify(input.permissions), updated_at: Date.now() })
        .where("id", "=", id)
        .execute();
      await writeAudit(trx, actor, {
        action: "group.update",
        targetType: "group",
        targetId: id,
        before: { name: before.name, permissions: JSON.parse(before.permissions) },
        after: input,
      });
    });
    return this.groupView(id);
  }

  async removeGroup(id: string, actor: Actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const before = await this.getGroupRow(id, trx);
      await trx.deleteFrom("user_groups").where("group_id", "=", id).execute();
      await trx.deleteFrom("groups").where("id", "=", id).execute();
      await writeAudit(trx, actor, {
        action: "group.delete",
        targetType: "group",
        targetId: id,
        before: { name: before.name, permissions: JSON.parse(before.permissions) },
      });
    });
  }

  // ---- helpers ----

  private async getRow(id: string, db: Kysely<Database> = this.db): Promise<UsersTable> {
    const row = await db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MailroomError("user_not_found", `No user has the id '${id}'.`);
    return row;
  }

  private async getGroupRow(id: string, db: Kysely<Database> = this.db) {
    const row = await db.selectFrom("groups").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MailroomError("group_not_found", `No group has the id '${id}'.`);
    return row;
  }

  private async toView(row: UsersTable): Promise<UserView> {
    const groups = await this.db
      .selectFrom("user_groups")
      .innerJoin("groups", "groups.id", "user_groups.group_id")
      .select(["groups.id", "groups.name"])
      .where("user_groups.user_id", "=", row.id)
      .orderBy("groups.name")
      .execute();
    const now = Date.now();
    const { tokens } = await this.db
      .selectFrom("api_tokens")
      .select((eb) => eb.fn.countAll<number>().as("tokens"))
      .where("created_by", "=", row.id)
      .where("revoked_at", "is", null)
      .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
      .executeTakeFirstOrThrow();
    return {
      id: row.id,
      email: row.email,
      name: row.name,
      superAdmin: row.is_super_admin === 1,
      disabled: row.disabled === 1,
      groups,
      permissions: row.is_super_admin === 1 ? [...allPermissions] : await this.permissionsOf(row.id),
      mustChangePassword: row.must_change_password === 1,
      activeTokens: Number(tokens),
      createdAt: iso(row.created_at) as string,
      updatedAt: iso(row.updated_at) as string,
    };
  }

  private async groupView(id: string): Promise<GroupView> {
    const row = await this.getGroupRow(id);
    const { members } = await this.db
      .selectFrom("user_groups")
      .select((eb) => eb.fn.countAll<number>().as("members"))
      .where("group_id", "=", id)
      .executeTakeFirstOrThrow();
    return {
      id: row.id,
      name: row.name,
      permissions: JSON.parse(row.permissions),
      members: Number(members),
      createdAt: iso(row.created_at) as string,
      updatedAt: iso(row.updated_at) as string,
    };
  }

  private checkInput(input: UserInput, creating: boolean): FieldProblem[] {
    const problems: FieldProblem[] = [];
    if (creating || input.email !== undefined) {
      if (typeof input.email !== "string" || !isEmailAddress(input.email.trim())) {
        problems.push({ field: "email", message: "must be an email address, e.g. name@example.com" });
      }
    }
    if (input.name !== undefined && (input.name.length > 200 || hasControlCharacters(input.name))) {
      problems.push({ field: "name", message: "must be at most 200 characters, without control characters" });
    }
    if (input.password !== undefined && input.password.length < MIN_PASSWORD_LENGTH) {
      problems.push({ field: "password", message: `must be at least ${MIN_PASSWORD_LENGTH} characters` });
    }
    return problems;
  }

  private checkGroup(input: { name: string; permissions: string[] }): string {
    const name = typeof input.name === "string" ? input.name.trim() : "";
    if (name.length < 1 || name.length > 64 || hasControlCharacters(name)) {
      throw fieldError("validation_failed", [
        { field: "name", message: "must be 1 to 64 characters, without control characters" },
      ]);
    }
    const unknown = input.permissions.filter((p) => !isPermission(p));
    if (unknown.length) {
      throw new MailroomError(
        "unknown_permission",
        `Unknown permission '${unknown[0]}': use any of ${allPermissions.join(", ")}.`,
        { field: "permissions", validPermissions: allPermissions },
      );
    }
    return name;
  }

  private async setGroups(db: Kysely<Database>, userId: string, groupIds: string[]): Promise<void> {
    const unique = [...new Set(groupIds)];
    for (const id of unique) await this.getGroupRow(id, db);
    await db.deleteFrom("user_groups").where("user_id", "=", userId).execute();
    if (unique.length) {
      await db
        .insertInto("user_groups")
        .values(unique.map((group_id) => ({ user_id: userId, group_id })))
        .execute();
    }
  }

  private async assertEmailFree(db: Kysely<Database>, email: string): Promise<void> {
    if (await db.selectFrom("users").select("id").where("email", "=", email).executeTakeFirst()) {
      throw new MailroomError("email_taken", `A user with the email ${email} already exists.`, { field: "email" });
    }
  }

  private async assertGroupNameFree(db: Kysely<Database>, name: string): Promise<void> {
    if (await db.selectFrom("groups").select("id").where("name", "=", name).executeTakeFirst()) {
      throw new MailroomError("group_name_taken", `A group named '${name}' already exists.`, { field: "name" });
    }
  }

  /** Nobody may lock everyone out: at least one enabled super admin stays. */
  private async assertSuperAdminLeft(db: Kysely<Database>): Promise<void> {
    const left = await db
      .selectFrom("users")
      .select("id")
      .where("is_super_admin", "=", 1)
      .where("disabled", "=", 0)
      .executeTakeFirst();
    if (!left) throw new MailroomError("last_super_admin");
  }
}
