import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Kysely } from "kysely";
import { type Actor, writeAudit } from "../core/audit.js";
import { fieldError, MailroomError } from "../kernel/errors.js";
import { iso } from "../kernel/ids.js";
import { hasControlCharacters } from "../kernel/validate.js";
import type { ConfigCache } from "../storage/config-cache.js";
import type { ApiTokensTable, Database } from "../storage/schema.js";
import { permissions as allPermissions, isPermission, lackedBy, type Permission, type Principal } from "./permissions.js";
import type { UserService } from "./users.js";

export interface TokenView {
  id: string;
  name: string;
  prefix: string;
  permissions: Permission[];
  serverIds: string[] | null;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

export interface TokenInput {
  name: string;
  permissions: string[];
  serverIds?: string[] | null;
  expiresAt?: string | null;
}

// A token reads mrt_<id>_<secret>: the id finds the row, the secret is compared by hash.
const TOKEN_PATTERN = /^mrt_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/;

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

export class TokenService {
  /** Called after a token is revoked (its webhooks fall silent: src/app.ts). */
  onRevoked: (id: string) => void = () => {};

  constructor(
    private readonly db: Kysely<Database>,
    private readonly users: UserService,
    /** Keeps a token's row and its owner for a moment: a request to send does not read them each time. */
    private readonly cache?: ConfigCache,
  ) {}

  private cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    return this.cache ? this.cache.get(key, load) : load();
  }

  async list(): Promise<{ items: TokenView[]; total: number }> {
    const rows = await this.db
      .selectFrom("api_tokens")
      .selectAll()
      .where("revoked_at", "is", null)
      .orderBy("created_at")
      .execute();
    return { items: rows.map(toView), total: rows.length };
  }

  /** One live token's row (for deciding who may revoke it). */
  async getRow(id: string): Promise<ApiTokensTable> {
    const row = await this.db
      .selectFrom("api_tokens")
      .selectAll()
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    if (!row) throw new MailroomError("token_not_found", `No API token has the id '${id}'.`);
    return row;
  }

  /**
   * Creates a token and returns its plain value, the only time it is ever shown.
   * `granter` is who asks (null: the operator, through the CLI): the token belongs to the
   * user behind it and is no wider than it, in permissions and in servers.
   */
  async create(
    input: TokenInput,
    actor: Actor,
    granter: Pick<Principal, "superAdmin" | "permissions" | "serverIds" | "userId" | "expiresAt"> | null,
  ): Promise<{ token: string; view: TokenView }> {
    const name = typeof input.name === "string" ? input.name.trim() : "";
    if (name.length < 1 || name.length > 100 || hasControlCharacters(name)) {
      throw fieldError("validation_failed", [
        { field: "name", message: "must be 1 to 100 characters, without control characters" },
      ]);
    }
    const unknown = input.permissions.filter((p) => !isPermission(p));
    if (unknown.length || input.permissions.length === 0) {
      throw new MailroomError(
        "unknown_permission",
        unknown.length
          ? `Unknown permission '${unknown[0]}': use any of ${allPermissions.join(", ")}.`
          : `A token needs at least one permission: any of ${allPermissions.join(", ")}.`,
        { field: "permissions", validPermissions: allPermissions },
      );
    }
    if (granter) {
      const lacking = lackedBy(granter, input.permissions);
      if (lacking.length) {
        throw new MailroomError("forbidden", `You cannot give a token '${lacking[0]}': you do not have it yourself.`, {
          permission: lacking[0],
        });
      }
    }
    let expiresAt: number | null = null;
    if (input.expiresAt) {
      expiresAt = Date.parse(input.expiresAt);
      if (Number.isNaN(expiresAt) || expiresAt <= Date.now()) {
        throw fieldError("validation_failed", [
          { field: "expiresAt", message: "must be a future date-time, e.g. 2030-01-01T00:00:00Z" },
        ]);
      }
    }
    // A token that expires cannot make one that outlives it: the child ends with it at the latest.
    const ceiling = granter?.expiresAt ?? null;
    if (ceiling !== null) {
      if (expiresAt === null) expiresAt = ceiling;
      else if (expiresAt > ceiling) {
        throw fieldError("validation_failed", [
          {
            field: "expiresAt",
            message: `must be no later than ${iso(ceiling)}, when the token creating it expires (or leave it out to use that)`,
          },
        ]);
      }
    }
    const serverIds = input.serverIds?.length ? [...new Set(input.serverIds)] : null;
    const allowed = granter?.serverIds ?? null;
    if (allowed !== null) {
      const outside = serverIds === null ? null : serverIds.find((id) => !allowed.includes(id));
      if (serverIds === null || outside) {
        throw new MailroomError(
          "server_not_allowed",
          serverIds === null
            ? "A token limited to some email servers can only create tokens limited to those servers: give serverIds."
            : `You cannot give a token the server '${outside}': this token is not allowed to use it.`,
          { field: "serverIds", allowedServerIds: allowed },
        );
      }
    }
    if (serverIds) {
      const found = await this.db.selectFrom("email_servers").select("id").where("id", "in", serverIds).execute();
      const missing = serverIds.filter((id) => !found.some((f) => f.id === id));
      if (missing.length) {
        throw new MailroomError("email_server_not_found", `No email server has the id '${missing[0]}'.`, { field: "serverIds" });
      }
    }
    const id = randomBytes(8).toString("hex");
    const secret = randomBytes(24).toString("base64url");
    const row: ApiTokensTable = {
      id,
      name,
      token_hash: sha256(secret).toString("hex"),
      permissions: JSON.stringify(allPermissions.filter((p) => input.permissions.includes(p))),
      server_ids: serverIds ? JSON.stringify(serverIds) : null,
      created_by: granter?.userId ?? null,
      created_at: Date.now(),
      expires_at: expiresAt,
      last_used_at: null,
      revoked_at: null,
    };
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto("api_tokens").values(row).execute();
      await writeAudit(trx, actor, {
        action: "token.create",
        targetType: "token",
        targetId: id,
        after: { name, permissions: JSON.parse(row.permissions), serverIds, expiresAt: iso(expiresAt) },
      });
    });
    return { token: `mrt_${id}_${secret}`, view: toView(row) };
  }

  /** Revokes a token; the caller decides first whether `actor` may (see routes/users.ts). */
  async revoke(id: string, actor: Actor): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom("api_tokens")
        .selectAll()
        .where("id", "=", id)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      if (!row) throw new MailroomError("token_not_found", `No API token has the id '${id}'.`);
      await trx.updateTable("api_tokens").set({ revoked_at: Date.now() }).where("id", "=", id).execute();
      await writeAudit(trx, actor, { action: "token.revoke", targetType: "token", targetId: id, before: { name: row.name } });
    });
    this.onRevoked(id);
  }

  /**
   * The principal for a bearer token, or null when it is unknown, revoked or expired, or its
   * owner is disabled or deleted. A token acts with its own permissions narrowed to what its
   * owner holds now; one with no owner (made by the operator's CLI) with its own.
   */
  async authenticate(token: string): Promise<Principal | null> {
    const match = TOKEN_PATTERN.exec(token);
    if (!match) return null;
    const id = match[1];
    const row = await this.cached(`token:${id}`, () =>
      this.db.selectFrom("api_tokens").selectAll().where("id", "=", id).executeTakeFirst(),
    );
    if (!row || row.revoked_at !== null) return null;
    if (!timingSafeEqual(sha256(match[2]), Buffer.from(row.token_hash, "hex"))) return null;
    const now = Date.now();
    if (row.expires_at !== null && row.expires_at <= now) return null;
    let granted = new Set(JSON.parse(row.permissions) as Permission[]);
    if (row.created_by !== null) {
      const ownerId = row.created_by;
      const owner = await this.cached(`user:${ownerId}`, () => this.users.principalFor(ownerId));
      if (!owner) return null;
      if (!owner.superAdmin) granted = new Set([...granted].filter((p) => owner.permissions.has(p)));
    }
    // Recording every use would be a write per request; once a minute is enough to see activity.
    if (row.last_used_at === null || now - row.last_used_at > 60_000) {
      // The kept row first (that write does not empty the cache), or every request would write.
      row.last_used_at = now;
      await this.db.updateTable("api_tokens").set({ last_used_at: now }).where("id", "=", row.id).execute();
    }
    return {
      kind: "token",
      id: row.id,
      label: `token ${row.name}`,
      email: null,
      superAdmin: false,
      permissions: granted,
      serverIds: row.server_ids ? (JSON.parse(row.server_ids) as string[]) : null,
      userId: row.created_by,
      expiresAt: row.expires_at,
    };
  }
}

function toView(row: ApiTokensTable): TokenView {
  return {
    id: row.id,
    name: row.name,
    prefix: `mrt_${row.id}_…`,
    permissions: JSON.parse(row.permissions),
    serverIds: row.server_ids ? JSON.parse(row.server_ids) : null,
    createdBy: row.created_by,
    createdAt: iso(row.created_at) as string,
    expiresAt: iso(row.expires_at),
    lastUsedAt: iso(row.last_used_at),
  };
}
