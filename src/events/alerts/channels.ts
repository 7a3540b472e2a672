/**
 * Alert channels: where alerts go. A signed webhook (its URL shown, its signing secret shown
 * once), a Slack- or Teams-compatible incoming webhook (the URL is the secret: write-only,
 * only its host is shown), or email through a chosen server to listed addresses.
 */
import type { Kysely } from "kysely";
import { type Actor, SECRET_CHANGED, writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import { type FieldProblem, fieldError, MailroomError } from "../../kernel/errors.js";
import { iso, newId } from "../../kernel/ids.js";
import { isEmailAddress } from "../../kernel/validate.js";
import type { AlertChannelsTable, Database } from "../../storage/schema.js";
import type { SecretBox } from "../../storage/secrets.js";
import { checkReceiverUrl } from "../outbound.js";
import { generateSigningSecret } from "../signing.js";

export const CHANNEL_TYPES = ["webhook", "slack", "email"] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

const NAME_MAX = 100;
const MAX_RECIPIENTS = 20;
/** The fields each type takes besides name and enabled. */
const TYPE_FIELDS: Record<ChannelType, string[]> = { webhook: ["url"], slack: ["url"], email: ["serverId", "recipients"] };

export interface ChannelInput {
  name?: unknown;
  type?: unknown;
  enabled?: unknown;
  url?: unknown;
  serverId?: unknown;
  recipients?: unknown;
  /** Update only: a new signing secret (webhook), shown once in the reply. */
  rotateSecret?: unknown;
}

export interface AlertChannelView {
  id: string;
  name: string;
  type: ChannelType;
  enabled: boolean;
  /** The webhook's URL; null for Slack (write-only) and email. */
  url: string | null;
  /** Where it posts: the host of the URL. */
  host: string | null;
  /** The webhook's signing secret or the Slack URL: only whether it is set. */
  secret: { set: boolean };
  server: { id: string; name: string } | null;
  recipients: string[];
  /** What keeps this channel from working as expected (e.g. the only server), or null. */
  warning: string | null;
  createdAt: string;
  updatedAt: string;
}

export type ChannelRow = AlertChannelsTable;

interface ServerFacts {
  id: string;
  name: string;
  driver: string;
}

/** Checks and builds the stored columns of a channel; `before` is the stored row on update. */
function parseChannel(
  input: ChannelInput,
  ctx: AppContext,
  servers: ServerFacts[],
  before?: ChannelRow,
): { row: Omit<ChannelRow, "id" | "created_at" | "updated_at" | "secret">; newSecret?: string; plainUrl?: string } {
  const problems: FieldProblem[] = [];
  const type = (before?.type ?? input.type) as ChannelType;
  if (!before && !CHANNEL_TYPES.includes(type)) {
    throw fieldError("validation_failed", [{ field: "type", message: `must be one of: ${CHANNEL_TYPES.join(", ")}` }]);
  }
  if (before && input.type !== undefined && input.type !== before.type) {
    problems.push({ field: "type", message: `cannot change (${before.type}); create another channel instead` });
  }
  for (const key of ["url", "serverId", "recipients"]) {
    if (input[key as keyof ChannelInput] !== undefined && !TYPE_FIELDS[type].includes(key)) {
      problems.push({ field: key, message: `does not apply to a ${type} channel; remove it` });
    }
  }
  if (input.rotateSecret !== undefined && (type !== "webhook" || !before)) {
    problems.push({ field: "rotateSecret", message: "applies only when updating a webhook channel; remove it" });
  }

  const name = input.name === undefined && before ? before.name : input.name;
  if (typeof name !== "string" || name.trim() === "" || name.trim().length > NAME_MAX) {
    problems.push({ field: "name", message: `is required: up to ${NAME_MAX} characters` });
  }
  let enabled = before ? before.enabled === 1 : true;
  if (typeof input.enabled === "boolean") enabled = input.enabled;
  else if (input.enabled !== undefined) problems.push({ field: "enabled", message: "must be true or false" });

  const row: Omit<ChannelRow, "id" | "created_at" | "updated_at" | "secret"> = {
    name: typeof name === "string" ? name.trim() : "",
    type,
    enabled: enabled ? 1 : 0,
    url: before?.url ?? null,
    url_host: before?.url_host ?? null,
    server_id: before?.server_id ?? null,
    recipients: before?.recipients ?? null,
  };
  let newSecret: string | undefined;
  let plainUrl: string | undefined;

  if (type === "webhook" || type === "slack") {
    if (input.url === undefined) {
      if (!before) problems.push({ field: "url", message: "is required: the address to post alerts to" });
    } else if (typeof input.url !== "string") {
      problems.push({ field: "url", message: "must be a string" });
    } else {
      const checked = checkReceiverUrl(input.url.trim(), ctx.config.operator);
      if ("problem" in checked) problems.push({ field: "url", message: checked.problem });
      else {
        row.url_host = checked.url.host;
        if (type === "webhook") row.url = checked.url.href;
        else plainUrl = checked.url.href;
      }
    }
    if (type === "webhook" && (!before || input.rotateSecret === true)) newSecret = generateSigningSecret();
    if (input.rotateSecret !== undefined && typeof input.rotateSecret !== "boolean") {
      problems.push({ field: "rotateSecret", message: "must be true or false" });
    }
  }

  if (type === "email") {
    if (input.serverId !== undefined || !before) {
      const server = typeof input.serverId === "string" ? servers.find((s) => s.id === input.serverId) : undefined;
      if (!server) problems.push({ field: "serverId", message: "must be the id of an email server (the one alerts go through)" });
      else row.server_id = server.id;
    }
    if (input.recipients !== undefined || !before) {
      const list = input.recipients;
      if (!Array.isArray(list) || list.length === 0 || list.length > MAX_RECIPIENTS) {
        problems.push({ field: "recipients", message: `must list 1 to ${MAX_RECIPIENTS} email addresses` });
      } else {
        const addresses = list.map((a) => (typeof a === "string" ? a.trim() : a));
        const bad = addresses.findIndex((a) => typeof a !== "string" || !isEmailAddress(a));
        if (bad >= 0) problems.push({ field: `recipients.${bad}`, message: "must be an email address, e.g. ops@example.com" });
        else row.recipients = JSON.stringify([...new Set(addresses as string[])]);
      }
    }
  }
  if (problems.length) throw fieldError("validation_failed", problems);
  return { row, newSecret, plainUrl };
}

/** What an email channel should know before an alert is due: the server is the only one, or keeps mail. */
function emailWarning(row: ChannelRow, servers: ServerFacts[]): string | null {
  const server = servers.find((s) => s.id === row.server_id);
  if (!server) return "Its email server was deleted: alerts go through the default server. Choose a server for it.";
  const delivering = servers.filter((s) => s.driver !== "capture");
  if (server.driver === "capture") {
    return `'${server.name}' keeps mail in Mailroom instead of sending it: alerts through it reach no one. Choose a server that delivers.`;
  }
  if (delivering.length <= 1) {
    return `This is your only server: an alert about '${server.name}' cannot be sent through it. Add a second server or a webhook channel.`;
  }
  return null;
}

export class AlertChannels {
  constructor(private readonly ctx: AppContext) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  private servers(): Promise<ServerFacts[]> {
    return this.db.selectFrom("email_servers").select(["id", "name", "driver"]).orderBy("name").execute();
  }

  toView(row: ChannelRow, servers: ServerFacts[]): AlertChannelView {
    const server = servers.find((s) => s.id === row.server_id);
    return {
      id: row.id,
      name: row.name,
      type: row.type as ChannelType,
      enabled: row.enabled === 1,
      url: row.type === "webhook" ? row.url : null,
      host: row.url_host,
      secret: { set: row.secret !== null },
      server: server ? { id: server.id, name: server.name } : null,
      recipients: row.recipients ? (JSON.parse(row.recipients) as string[]) : [],
      warning: row.type === "email" ? emailWarning(row, servers) : null,
      createdAt: iso(Number(row.created_at)) as string,
      updatedAt: iso(Number(row.updated_at)) as string,
    };
  }

  async list(): Promise<{ items: AlertChannelView[]; total: number }> {
    const [rows, servers] = await Promise.all([
      this.db.selectFrom("alert_channels").selectAll().orderBy("name").execute(),
      this.servers(),
    ]);
    return { items: rows.map((r) => this.toView(r, servers)), total: rows.length };
  }

  async getRow(id: string): Promise<ChannelRow> {
    const row = await this.db.selectFrom("alert_channels").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MailroomError("alert_channel_not_found", `No alert channel has the id '${id}'.`);
    return row;
  }

  async get(id: string): Promise<AlertChannelView> {
    return this.toView(await this.getRow(id), await this.servers());
  }

  async enabledRows(db: Kysely<Database> = this.db): Promise<ChannelRow[]> {
    return db.selectFrom("alert_channels").selectAll().where("enabled", "=", 1).execute();
  }

  /** The decrypted secret of a channel (signing secret or Slack URL), for the code that sends. Never for a reply. */
  secretOf(row: ChannelRow): string | null {
    return row.secret === null ? null : this.ctx.secrets.decrypt(row.secret);
  }

  /** Creates a channel; a webhook's signing secret is in this reply only. */
  async create(input: ChannelInput, actor: Actor): Promise<AlertChannelView & { signingSecret?: string }> {
    const servers = await this.servers();
    const { row, newSecret, plainUrl } = parseChannel(input, this.ctx, servers);
    const now = this.ctx.clock();
    const plain = newSecret ?? plainUrl ?? null;
    const full: ChannelRow = {
      id: newId(),
      ...row,
      secret: plain === null ? null : this.ctx.secrets.encrypt(plain),
      created_at: now,
      updated_at: now,
    };
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto("alert_channels").values(full).execute();
      await writeAudit(
        trx,
        actor,
        { action: "alerts.channel.create", targetType: "alert_channel", targetId: full.id, after: auditView(full, servers) },
        now,
      );
    });
    return { ...this.toView(full, servers), ...(newSecret ? { signingSecret: newSecret } : {}) };
  }

  /** Changes a channel: omitted fields keep their value; a Slack URL given replaces the stored one. */
  async update(id: string, input: ChannelInput, actor: Actor): Promise<AlertChannelView & { signingSecret?: string }> {
    const servers = await this.servers();
    const before = await this.getRow(id);
    const { row, newSecret, plainUrl } = parseChannel(input, this.ctx, servers, before);
    const now = this.ctx.clock();
    const plain = newSecret ?? plainUrl;
    const after: ChannelRow = {
      ...before,
      ...row,
      secret: plain === undefined ? before.secret : this.ctx.secrets.encrypt(plain),
      updated_at: now,
    };
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable("alert_channels").set(after).where("id", "=", id).execute();
      await writeAudit(
        trx,
        actor,
        {
          action: "alerts.channel.update",
          targetType: "alert_channel",
          targetId: id,
          before: auditView(before, servers),
          after: auditView(after, servers, plain !== undefined),
        },
        now,
      );
    });
    return { ...this.toView(after, servers), ...(newSecret ? { signingSecret: newSecret } : {}) };
  }

  async remove(id: string, actor: Actor): Promise<void> {
    const servers = await this.servers();
    const before = await this.getRow(id);
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("alert_channels").where("id", "=", id).execute();
      await writeAudit(trx, actor, {
        action: "alerts.channel.delete",
        targetType: "alert_channel",
        targetId: id,
        before: auditView(before, servers),
      });
    });
  }
}

/** A channel as the audit log keeps it: never the secret, nor a Slack URL. */
function auditView(row: ChannelRow, servers: ServerFacts[], secretChanged = false): Record<string, unknown> {
  const server = servers.find((s) => s.id === row.server_id);
  return {
    name: row.name,
    type: row.type,
    enabled: row.enabled === 1,
    ...(row.type === "webhook" ? { url: row.url } : {}),
    ...(row.url_host ? { host: row.url_host } : {}),
    ...(row.type === "email" ? { server: server?.name ?? null, recipients: JSON.parse(row.recipients ?? "[]") } : {}),
    ...(secretChanged ? { secret: SECRET_CHANGED } : {}),
  };
}

/** Re-encrypts the channels' secrets with the box's current key (`mailroom keys rotate`). */
export async function reencryptAlertSecrets(trx: Kysely<Database>, box: SecretBox): Promise<number> {
  let count = 0;
  const rows = await trx.selectFrom("alert_channels").select(["id", "secret"]).where("secret", "is not", null).execute();
  for (const row of rows) {
    if (row.secret === null || !box.isStale(row.secret)) continue;
    await trx
      .updateTable("alert_channels")
      .set({ secret: box.encrypt(box.decrypt(row.secret)) })
      .where("id", "=", row.id)
      .execute();
    count++;
  }
  return count;
}
