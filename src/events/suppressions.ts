/**
 * The suppression list: addresses Mailroom refuses at accept time (core/messages.ts asks
 * `lookup` before storing a message). Hard bounces and complaints add entries by themselves
 * (provider-events/ingest.ts), for the reporting server or for every server as the admin
 * chose; admins add and remove entries by hand. Every change by hand is audited.
 */
import { type Kysely, sql } from "kysely";
import { canUseServer, type Principal } from "../auth/permissions.js";
import { type Actor, writeAudit } from "../core/audit.js";
import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import type { SuppressedAddress } from "../core/suppression-check.js";
import { MailroomError } from "../kernel/errors.js";
import { iso, newId } from "../kernel/ids.js";
import { hasControlCharacters, isEmailAddress } from "../kernel/validate.js";
import { isUniqueViolation } from "../storage/dialect.js";
import { BatchWriter } from "../storage/group-commit.js";
import type { Database, SuppressionReason, SuppressionsTable } from "../storage/schema.js";

const SETTING_KEY = "suppressions";
/** Bound parameters per look-up: well under both databases' limits. */
const LOOKUP_CHUNK = 500;
const MAX_DETAIL = 500;

/** Where an automatic entry (a hard bounce, a complaint) applies. */
export type SuppressionScope = "server" | "everywhere";
export const SUPPRESSION_SCOPES: readonly SuppressionScope[] = ["server", "everywhere"];

export interface SuppressionView {
  id: string;
  address: string;
  /** null: refused for every server. */
  server: { id: string; name: string | null } | null;
  reason: SuppressionReason;
  detail: string | null;
  /** The message whose bounce or complaint added it. */
  messageId: string | null;
  createdAt: string;
  createdBy: string;
}

export interface SuppressionFilter {
  q?: string;
  server?: string;
  reason?: SuppressionReason;
  limit?: number;
  offset?: number;
}

export interface SuppressionSettingsView {
  scope: SuppressionScope;
  /** null while the default (everywhere) applies. */
  updatedAt: string | null;
  updatedBy: string | null;
}

/** A hard bounce or complaint to remember, in the transaction that stores the provider event. */
export interface AutomaticSuppression {
  address: string;
  serverId: string;
  reason: Exclude<SuppressionReason, "manual">;
  detail: string | null;
  messageId: string;
}

export class SuppressionService {
  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /**
   * For MessageService: entries refusing any of `addresses` through any of `serverIds`. The
   * look-ups of requests that arrive together share one query (single-message requests each
   * made their own: a round trip per message on PostgreSQL); each hears only of its own.
   */
  readonly lookup = (addresses: string[], serverIds: string[]): Promise<SuppressedAddress[]> =>
    this.lookups.write({ addresses, serverIds });

  private readonly lookups = new BatchWriter<{ addresses: string[]; serverIds: string[] }, SuppressedAddress[]>(
    async (asked) => {
      const found = await this.find(
        [...new Set(asked.flatMap((a) => a.addresses))],
        [...new Set(asked.flatMap((a) => a.serverIds))],
      );
      return asked.map(({ addresses, serverIds }) =>
        found.filter((f) => addresses.includes(f.address) && (f.serverId === null || serverIds.includes(f.serverId))),
      );
    },
    // However many requests wait, one query reads for all of them (in chunks of addresses).
    Number.MAX_SAFE_INTEGER,
  );

  private async find(addresses: string[], serverIds: string[]): Promise<SuppressedAddress[]> {
    const found: SuppressedAddress[] = [];
    for (let i = 0; i < addresses.length; i += LOOKUP_CHUNK) {
      const rows = await this.db
        .selectFrom("suppressions")
        .select(["id", "address", "server_id", "reason", "created_at"])
        .where("address", "in", addresses.slice(i, i + LOOKUP_CHUNK))
        .where((eb) =>
          serverIds.length ? eb.or([eb("server_id", "is", null), eb("server_id", "in", serverIds)]) : eb("server_id", "is", null),
        )
        .execute();
      for (const r of rows) {
        found.push({ id: r.id, address: r.address, serverId: r.server_id, reason: r.reason, createdAt: Number(r.created_at) });
      }
    }
    return found;
  }

  async settings(): Promise<SuppressionSettingsView> {
    const row = await this.db.selectFrom("app_settings").selectAll().where("key", "=", SETTING_KEY).executeTakeFirst();
    if (!row) return { scope: "everywhere", updatedAt: null, updatedBy: null };
    const saved = JSON.parse(row.value) as { scope: SuppressionScope };
    return { scope: saved.scope, updatedAt: iso(Number(row.updated_at)), updatedBy: row.updated_by };
  }

  async updateSettings(input: { scope: unknown }, actor: Actor): Promise<SuppressionSettingsView> {
    if (!SUPPRESSION_SCOPES.includes(input.scope as SuppressionScope)) {
      throw new MailroomError("validation_failed", `scope: must be one of ${SUPPRESSION_SCOPES.join(", ")}`, [
        { field: "scope", message: `must be one of ${SUPPRESSION_SCOPES.join(", ")}` },
      ]);
    }
    const scope = input.scope as SuppressionScope;
    const before = (await this.settings()).scope;
    const now = this.ctx.clock();
    await this.db.transaction().execute(async (trx) => {
      const value = JSON.stringify({ scope });
      await trx
        .insertInto("app_settings")
        .values({ key: SETTING_KEY, value, updated_at: now, updated_by: actor.label })
        .onConflict((oc) => oc.column("key").doUpdateSet({ value, updated_at: now, updated_by: actor.label }))
        .execute();
      await writeAudit(
        trx,
        actor,
        {
          action: "settings.suppressions.update",
          targetType: "settings",
          targetId: SETTING_KEY,
          before: { scope: before },
          after: { scope },
        },
        now,
      );
    });
    return this.settings();
  }

  /**
   * Adds a hard bounce's or complaint's address, in the caller's transaction; an address
   * already listed for that scope stays as it is. Answers whether an entry was added.
   */
  async addAutomatic(trx: Kysely<Database>, entry: AutomaticSuppression, scope: SuppressionScope, now: number): Promise<boolean> {
    const result = await trx
      .insertInto("suppressions")
      .values({
        id: newId(),
        address: entry.address.toLowerCase(),
        server_id: scope === "server" ? entry.serverId : null,
        reason: entry.reason,
        detail: entry.detail?.slice(0, MAX_DETAIL) ?? null,
        message_id: entry.messageId,
        created_at: now,
        created_by: "mailroom",
      })
      // The one unique index (address and scope) is an expression index: no target needed.
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  /** The list, newest first; a token limited to some servers sees theirs and the every-server entries. */
  async list(filter: SuppressionFilter, principal: Principal): Promise<{ items: SuppressionView[]; total: number }> {
    let query = this.db.selectFrom("suppressions").leftJoin("email_servers", "email_servers.id", "suppressions.server_id");
    if (filter.q?.trim())
      query = query.where(sql<boolean>`suppressions.address like ${likePattern(filter.q.trim())} escape '\\'`);
    if (filter.reason) query = query.where("suppressions.reason", "=", filter.reason);
    if (filter.server) {
      const server = await this.servers.findRow(filter.server);
      query = query.where("suppressions.server_id", "=", server?.id ?? filter.server);
    }
    if (principal.serverIds !== null) {
      const mine = principal.serverIds;
      query = query.where((eb) =>
        mine.length
          ? eb.or([eb("suppressions.server_id", "is", null), eb("suppressions.server_id", "in", mine)])
          : eb("suppressions.server_id", "is", null),
      );
    }
    const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
    const rows = await query
      .selectAll("suppressions")
      .select("email_servers.name as server_name")
      .orderBy("suppressions.created_at", "desc")
      .orderBy("suppressions.id")
      .limit(filter.limit ?? 50)
      .offset(filter.offset ?? 0)
      .execute();
    return { items: rows.map((r) => toView(r, r.server_name)), total: Number(total) };
  }

  /** Adds an address by hand, for one server (by id or name) or, with none, every server. Audited. */
  async add(
    input: { address: string; server?: string | null; detail?: string | null },
    actor: Actor,
    principal: Principal,
  ): Promise<SuppressionView> {
    const address = input.address.trim().toLowerCase();
    if (!isEmailAddress(address)) {
      throw new MailroomError("invalid_address", "address: must be an email address, e.g. name@example.com.", [
        { field: "address", message: "must be an email address, e.g. name@example.com" },
      ]);
    }
    const detail = input.detail?.trim() || null;
    if (detail && (detail.length > MAX_DETAIL || hasControlCharacters(detail))) {
      throw new MailroomError("validation_failed", `detail: must be one line of at most ${MAX_DETAIL} characters.`, [
        { field: "detail", message: `must be one line of at most ${MAX_DETAIL} characters` },
      ]);
    }
    let server: { id: string; name: string } | null = null;
    if (input.server) {
      const row = await this.servers.findRow(input.server);
      if (!row)
        throw new MailroomError("email_server_not_found", `No email server has the id or name '${input.server}'.`, {
          field: "server",
        });
      if (!canUseServer(principal, row.id))
        throw new MailroomError("server_not_allowed", `This API token may not use '${row.name}'.`, { field: "server" });
      server = { id: row.id, name: row.name };
    } else if (principal.serverIds !== null) {
      throw new MailroomError(
        "server_not_allowed",
        "A token limited to some email servers may add an address only for one of them: name it in 'server'.",
        {
          field: "server",
        },
      );
    }
    const now = this.ctx.clock();
    const row: SuppressionsTable = {
      id: newId(),
      address,
      server_id: server?.id ?? null,
      reason: "manual",
      detail,
      message_id: null,
      created_at: now,
      created_by: actor.label,
    };
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx.insertInto("suppressions").values(row).execute();
        await writeAudit(
          trx,
          actor,
          {
            action: "suppression.add",
            targetType: "suppression",
            targetId: row.id,
            after: { address, server: server?.name ?? null, detail },
          },
          now,
        );
      });
    } catch (error) {
      if (!isUniqueViolation(error, "suppressions_address")) throw error;
      const existing = await this.db
        .selectFrom("suppressions")
        .select("id")
        .where("address", "=", address)
        .where((eb) => (server ? eb("server_id", "=", server.id) : eb("server_id", "is", null)))
        .executeTakeFirst();
      throw new MailroomError(
        "suppression_exists",
        `${address} is already on the suppression list ${server ? `for '${server.name}'` : "for every server"}.`,
        {
          id: existing?.id ?? null,
        },
      );
    }
    return toView(row, server?.name ?? null);
  }

  /** Removes an entry: mail to the address is accepted again (where no other entry refuses it). Audited. */
  async remove(id: string, actor: Actor, principal: Principal): Promise<void> {
    const row = await this.db.selectFrom("suppressions").selectAll().where("id", "=", id).executeTakeFirst();
    // An entry of a server the token may not use, or an every-server one, is not its to remove.
    const allowed = row && (principal.serverIds === null || (row.server_id !== null && canUseServer(principal, row.server_id)));
    if (!row || !allowed) throw new MailroomError("suppression_not_found", `No suppression list entry has the id '${id}'.`);
    const now = this.ctx.clock();
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("suppressions").where("id", "=", id).execute();
      await writeAudit(
        trx,
        actor,
        {
          action: "suppression.remove",
          targetType: "suppression",
          targetId: id,
          before: { address: row.address, serverId: row.server_id, reason: row.reason, detail: row.detail },
        },
        now,
      );
    });
  }
}

function toView(row: SuppressionsTable, serverName: string | null): SuppressionView {
  return {
    id: row.id,
    address: row.address,
    server: row.server_id === null ? null : { id: row.server_id, name: serverName },
    reason: row.reason,
    detail: row.detail,
    messageId: row.message_id,
    createdAt: iso(Number(row.created_at)) as string,
    createdBy: row.created_by,
  };
}

/** A LIKE pattern that finds `text` anywhere, its own % and _ taken literally (addresses are lower case). */
function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
