import type { Kysely } from "kysely";
import { type FieldProblem, fieldError, MailroomError } from "../kernel/errors.js";
import { iso, newId } from "../kernel/ids.js";
import { hasControlCharacters, isEmailAddress, isHost } from "../kernel/validate.js";
import type { Database, EmailServersTable, RoutesTable } from "../storage/schema.js";
import { type Actor, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";
import { fromAllowed } from "./message-input.js";

/** At most this many rules, and servers per rule: routing reads them all for each message. */
export const MAX_ROUTES = 200;
export const MAX_ROUTE_SERVERS = 10;
const NAME_MAX = 100;
const TAG = /^[A-Za-z0-9._:/-]{1,100}$/;

/** What a rule matches; an absent or null condition matches anything. */
export interface RouteMatch {
  /** An address (billing@example.com) or a domain (example.com) of the From. */
  from?: string | null;
  /** The id of the API token that sends. */
  token?: string | null;
  /** The tag given with the message. */
  tag?: string | null;
  /** A domain every recipient (to, cc, bcc) is in. */
  recipientDomain?: string | null;
}

export interface RouteInput {
  name: string;
  match: RouteMatch;
  /** Server ids or names: the primary first, then the fallbacks in order. */
  servers: string[];
  /** 1-based place among the rules (first match wins); absent: last (create) or unchanged (update). */
  position?: number;
}

export interface RouteView {
  id: string;
  name: string;
  position: number;
  match: { from: string | null; token: string | null; tag: string | null; recipientDomain: string | null };
  servers: { id: string; name: string }[];
  createdAt: string;
  updatedAt: string;
}

/** The facts of a message that rules match on. */
export interface MessageFacts {
  from: string;
  tokenId: string | null;
  tag: string | null;
  recipients: string[];
}

/** Why one server of a route may or may not take a message (the tester shows each). */
export interface RouteServerVerdict {
  id: string;
  name: string;
  status: string;
  /** May send as the message's From (its from address or allowed-from list). */
  fromAllowed: boolean;
}

export interface ResolvedRoute {
  /** The rule that matched; null: none did, the default server is used. */
  route: { id: string; name: string } | null;
  servers: EmailServersTable[];
}

type ServerRow = EmailServersTable;

/** An API token's server limit (Principal.serverIds): null for every server. */
export type ServerScope = readonly string[] | null;

function inScope(scope: ServerScope, serverIds: string[]): boolean {
  return scope === null || serverIds.every((id) => scope.includes(id));
}

/** Whether `server` may send as `address` (its from address, or its "Other allowed from addresses"). */
export function serverMaySendAs(server: ServerRow, address: string): boolean {
  const settings = JSON.parse(server.settings) as { allowedFromAddresses?: string[] };
  return fromAllowed(address, server.from_address, settings.allowedFromAddresses ?? []);
}

/** A message's tag, checked: letters, digits and . _ : / - (no spaces, no line breaks). */
export function checkTag(tag: unknown, field: string): string | null {
  if (tag === undefined || tag === null || tag === "") return null;
  if (typeof tag !== "string" || !TAG.test(tag)) {
    throw new MailroomError("validation_failed", `${field}: a tag is 1 to 100 letters, digits and . _ : / -`, [
      { field, message: "a tag is 1 to 100 letters, digits and . _ : / -" },
    ]);
  }
  return tag;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf("@") + 1).toLowerCase();
}

/** Whether the rule's conditions all hold for the message. */
export function routeMatches(rule: RoutesTable, facts: MessageFacts): boolean {
  if (rule.match_from) {
    const from = facts.from.toLowerCase();
    if (rule.match_from.includes("@") ? from !== rule.match_from : domainOf(from) !== rule.match_from) return false;
  }
  if (rule.match_token_id && rule.match_token_id !== facts.tokenId) return false;
  if (rule.match_tag && rule.match_tag !== facts.tag) return false;
  if (rule.match_recipient_domain) {
    if (facts.recipients.length === 0) return false;
    if (!facts.recipients.every((r) => domainOf(r) === rule.match_recipient_domain)) return false;
  }
  return true;
}

/** Route rules: an ordered list, the first match chooses the message's servers. */
export class RouteService {
  constructor(private readonly ctx: AppContext) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** A caller limited to some servers sees only the rules that use none other. */
  async list(scope: ServerScope = null): Promise<{ items: RouteView[]; total: number }> {
    const [rules, servers] = await Promise.all([this.rules(), this.serverNames()]);
    const visible = rules.filter((r) => inScope(scope, JSON.parse(r.server_ids)));
    return { items: visible.map((r) => toView(r, servers)), total: visible.length };
  }

  async get(idOrName: string, scope: ServerScope = null): Promise<RouteView> {
    return toView(await this.getScopedRow(idOrName, scope), await this.serverNames());
  }

  /** A rule the caller may see and change: one whose servers are all within its limit. */
  private async getScopedRow(idOrName: string, scope: ServerScope, db: Kysely<Database> = this.db): Promise<RoutesTable> {
    const row = await this.getRow(idOrName, db);
    if (!inScope(scope, JSON.parse(row.server_ids))) {
      throw new MailroomError(
        "server_not_allowed",
        `This API token may not change the route '${row.name}': it uses other servers.`,
      );
    }
    return row;
  }

  /** The first rule the message matches, and its servers that still exist (in order). */
  async resolve(facts: MessageFacts): Promise<ResolvedRoute> {
    return (await this.resolver())(facts);
  }

  /**
   * Reads the rules (and, if there are any, the servers) once, and resolves with them: a
   * batch of a thousand messages makes two queries, not two thousand.
   */
  async resolver(): Promise<(facts: MessageFacts) => ResolvedRoute> {
    const rules = await this.rules();
    if (rules.length === 0) return () => ({ route: null, servers: [] });
    const byId = new Map((await this.db.selectFrom("email_servers").selectAll().execute()).map((r) => [r.id, r]));
    return (facts) => {
      const rule = rules.find((r) => routeMatches(r, facts));
      if (!rule) return { route: null, servers: [] };
      const servers = (JSON.parse(rule.server_ids) as string[])
        .map((id) => byId.get(id))
        .filter((r): r is ServerRow => r !== undefined);
      return { route: { id: rule.id, name: rule.name }, servers };
    };
  }

  async create(input: RouteInput, actor: Actor, scope: ServerScope = null): Promise<RouteView> {
    const view = await this.db.transaction().execute(async (trx) => {
      const checked = await this.check(trx, input, scope);
      const rules = await this.rules(trx);
      if (rules.length >= MAX_ROUTES) {
        throw new MailroomError("validation_failed", `At most ${MAX_ROUTES} routes; delete one first.`, { field: "name" });
      }
      await this.assertNameFree(trx, checked.name);
      const now = Date.now();
      const row: RoutesTable = { id: newId(), position: rules.length + 1, ...checked.columns, created_at: now, updated_at: now };
      await trx.insertInto("routes").values(row).execute();
      await this.place(trx, row.id, input.position);
      const saved = await this.getRow(row.id, trx);
      await writeAudit(trx, actor, { action: "route.create", targetType: "route", targetId: row.id, after: auditOf(saved) });
      return saved;
    });
    return toView(view, await this.serverNames());
  }

  /** Replaces a rule (name, match, servers; its place if `position` is given). */
  async update(idOrName: string, input: RouteInput, actor: Actor, scope: ServerScope = null): Promise<RouteView> {
    const view = await this.db.transaction().execute(async (trx) => {
      const before = await this.getScopedRow(idOrName, scope, trx);
      const checked = await this.check(trx, input, scope);
      await this.assertNameFree(trx, checked.name, before.id);
      await trx
        .updateTable("routes")
        .set({ ...checked.columns, updated_at: Date.now() })
        .where("id", "=", before.id)
        .execute();
      if (input.position !== undefined) await this.place(trx, before.id, input.position);
      const saved = await this.getRow(before.id, trx);
      await writeAudit(trx, actor, {
        action: "route.update",
        targetType: "route",
        targetId: before.id,
        before: auditOf(before),
        after: auditOf(saved),
      });
      return saved;
    });
    return toView(view, await this.serverNames());
  }

  async delete(idOrName: string, actor: Actor, scope: ServerScope = null): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const before = await this.getScopedRow(idOrName, scope, trx);
      await trx.deleteFrom("routes").where("id", "=", before.id).execute();
      await this.place(trx, null);
      await writeAudit(trx, actor, { action: "route.delete", targetType: "route", targetId: before.id, before: auditOf(before) });
    });
  }

  /**
   * "Which route would this message take?": the rule that matches, each of its servers with
   * whether it may send the From and its status, and the server that would send now.
   */
  async explain(
    facts: MessageFacts,
    scope: ServerScope = null,
  ): Promise<{
    route: { id: string; name: string } | null;
    servers: RouteServerVerdict[];
    chosen: { id: string; name: string } | null;
    reason: string;
  }> {
    const resolved = await this.resolve(facts);
    const candidates = resolved.route
      ? resolved.servers
      : await this.db.selectFrom("email_servers").selectAll().where("is_default", "=", 1).execute();
    // A caller limited to some servers hears of those only (and its own mail goes through no other).
    const servers = candidates
      .filter((s) => inScope(scope, [s.id]))
      .map((s) => ({
        id: s.id,
        name: s.name,
        status: s.status,
        fromAllowed: serverMaySendAs(s, facts.from),
      }));
    const chosen = servers.find((s) => s.fromAllowed && s.status === "ready") ?? null;
    const routeText = resolved.route ? `Route '${resolved.route.name}'` : "No route matches: the default server";
    let reason: string;
    if (servers.length === 0) reason = `${routeText} has no server.`;
    else if (!servers.some((s) => s.fromAllowed))
      reason = `${routeText}: no server may send as ${facts.from}; the message is refused.`;
    else if (!chosen) reason = `${routeText}: no server that may send as ${facts.from} is ready; the message is held.`;
    else reason = `${routeText}: sent through '${chosen.name}'.`;
    return { route: resolved.route, servers, chosen: chosen && { id: chosen.id, name: chosen.name }, reason };
  }

  /** Every rule as stored, for export (server ids as names). */
  async exportAll(): Promise<(RouteInput & { match: RouteMatch })[]> {
    const { items } = await this.list();
    return items.map((r) => ({ name: r.name, match: r.match, servers: r.servers.map((s) => s.name) }));
  }

  private async rules(db: Kysely<Database> = this.db): Promise<RoutesTable[]> {
    return db.selectFrom("routes").selectAll().orderBy("position").orderBy("id").execute();
  }

  async getRow(idOrName: string, db: Kysely<Database> = this.db): Promise<RoutesTable> {
    const row = await db
      .selectFrom("routes")
      .selectAll()
      .where((eb) => eb.or([eb("id", "=", idOrName), eb("name", "=", idOrName)]))
      .executeTakeFirst();
    if (!row) throw new MailroomError("route_not_found", `No route has the id or name '${idOrName}'.`);
    return row;
  }

  private async serverNames(): Promise<Map<string, string>> {
    const rows = await this.db.selectFrom("email_servers").select(["id", "name"]).execute();
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  /** Moves `id` to the 1-based `position` (clamped) and numbers every rule 1..n again. */
  private async place(trx: Kysely<Database>, id: string | null, position?: number): Promise<void> {
    const rules = (await this.rules(trx)).map((r) => r.id);
    if (id !== null && position !== undefined) {
      rules.splice(rules.indexOf(id), 1);
      rules.splice(Math.min(Math.max(position, 1), rules.length + 1) - 1, 0, id);
    }
    for (const [i, ruleId] of rules.entries()) {
      await trx
        .updateTable("routes")
        .set({ position: i + 1 })
        .where("id", "=", ruleId)
        .execute();
    }
  }

  private async assertNameFree(db: Kysely<Database>, name: string, exceptId?: string): Promise<void> {
    let query = db.selectFrom("routes").select("id").where("name", "=", name);
    if (exceptId) query = query.where("id", "!=", exceptId);
    if (await query.executeTakeFirst()) {
      throw new MailroomError("validation_failed", `A route named '${name}' already exists; choose another name.`, {
        field: "name",
      });
    }
  }

  /** Validates a rule; every problem at once, nothing written on any. */
  private async check(
    db: Kysely<Database>,
    input: RouteInput,
    scope: ServerScope,
  ): Promise<{ name: string; columns: Omit<RoutesTable, "id" | "position" | "created_at" | "updated_at"> }> {
    const problems: FieldProblem[] = [];
    const name = typeof input.name === "string" ? input.name.trim() : "";
    if (!name || name.length > NAME_MAX || hasControlCharacters(name)) {
      problems.push({ field: "name", message: `give a name of 1 to ${NAME_MAX} characters, without line breaks` });
    }
    const match = input.match ?? {};
    const from = match.from?.trim().toLowerCase() || null;
    if (from && !(from.includes("@") ? isEmailAddress(from) : isHost(from) && from.includes("."))) {
      problems.push({ field: "match.from", message: "give an address (billing@example.com) or a domain (example.com)" });
    }
    const recipientDomain = match.recipientDomain?.trim().toLowerCase() || null;
    if (recipientDomain && !(isHost(recipientDomain) && recipientDomain.includes("."))) {
      problems.push({ field: "match.recipientDomain", message: "give a domain, like example.com" });
    }
    const tag = match.tag?.trim() || null;
    if (tag && !TAG.test(tag)) {
      problems.push({ field: "match.tag", message: "a tag is 1 to 100 letters, digits and . _ : / -" });
    }
    const token = match.token?.trim() || null;
    if (token) {
      const found = await db.selectFrom("api_tokens").select("id").where("id", "=", token).executeTakeFirst();
      if (!found) problems.push({ field: "match.token", message: `no API token has the id '${token}'` });
    }
    if (!from && !recipientDomain && !tag && !token) {
      problems.push({
        field: "match",
        message: "give at least one condition (from, token, tag or recipientDomain); unmatched mail goes to the default server",
      });
    }
    const serverIds: string[] = [];
    const refs = Array.isArray(input.servers) ? input.servers : [];
    if (refs.length < 1 || refs.length > MAX_ROUTE_SERVERS) {
      problems.push({ field: "servers", message: `list 1 to ${MAX_ROUTE_SERVERS} email servers, the primary first` });
    }
    for (const [i, ref] of refs.slice(0, MAX_ROUTE_SERVERS).entries()) {
      const server = await findServer(db, String(ref));
      if (!server) problems.push({ field: `servers[${i}]`, message: `no email server has the id or name '${ref}'` });
      else if (!inScope(scope, [server.id])) {
        throw new MailroomError("server_not_allowed", `This API token may not route mail through '${server.name}'.`, {
          field: `servers[${i}]`,
        });
      } else if (serverIds.includes(server.id))
        problems.push({ field: `servers[${i}]`, message: `'${server.name}' is listed twice` });
      else serverIds.push(server.id);
    }
    if (problems.length) throw fieldError("validation_failed", problems);
    return {
      name,
      columns: {
        name,
        match_from: from,
        match_token_id: token,
        match_tag: tag,
        match_recipient_domain: recipientDomain,
        server_ids: JSON.stringify(serverIds),
      },
    };
  }
}

async function findServer(db: Kysely<Database>, ref: string): Promise<{ id: string; name: string } | undefined> {
  const rows = await db.selectFrom("email_servers").select(["id", "name"]).execute();
  return rows.find((r) => r.id === ref) ?? rows.find((r) => r.name.toLowerCase() === ref.toLowerCase());
}

function toView(row: RoutesTable, names: Map<string, string>): RouteView {
  const ids = JSON.parse(row.server_ids) as string[];
  return {
    id: row.id,
    name: row.name,
    position: Number(row.position),
    match: {
      from: row.match_from,
      token: row.match_token_id,
      tag: row.match_tag,
      recipientDomain: row.match_recipient_domain,
    },
    // A deleted server drops out of its routes.
    servers: ids.filter((id) => names.has(id)).map((id) => ({ id, name: names.get(id) as string })),
    createdAt: iso(row.created_at) as string,
    updatedAt: iso(row.updated_at) as string,
  };
}

function auditOf(row: RoutesTable) {
  return {
    name: row.name,
    position: Number(row.position),
    match: { from: row.match_from, token: row.match_token_id, tag: row.match_tag, recipientDomain: row.match_recipient_domain },
    servers: JSON.parse(row.server_ids) as string[],
  };
}
