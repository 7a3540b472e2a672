import { type Kysely, sql } from "kysely";
import { canUseServer, type Principal } from "../auth/permissions.js";
import type { Database, MessageStatus, MessagesTable } from "../storage/schema.js";
import type { Address, OutgoingMessage } from "../transport/types.js";
import type { AppContext } from "./context.js";
import type { EmailServerService } from "./email-servers.js";
import { MailroomError } from "./errors.js";
import { iso, newId } from "./ids.js";
import { type CheckedMessage, checkMessage, fromAllowed, type MessageInput } from "./message-input.js";

export interface MessageView {
  id: string;
  status: MessageStatus;
  server: { id: string; name: string };
  from: Address;
  to: Address[];
  cc: Address[];
  bcc: Address[];
  replyTo: Address[];
  subject: string;
  messageId: string;
  attemptCount: number;
  maxAttempts: number;
  nextAttemptAt: string | null;
  lastError: { code: string; message: string } | null;
  providerMessageId: string | null;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
}

export interface AttemptView {
  at: string;
  durationMs: number;
  server: { id: string; name: string };
  outcome: string;
  errorCode: string | null;
  response: { code: number | null; command: string | null; text: string | null };
  providerMessageId: string | null;
}

export interface MessageFilter {
  status?: MessageStatus;
  server?: string;
  recipient?: string;
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

interface StoredPayload {
  text?: string;
  html?: string;
  headers: Record<string, string>;
  attachments: { filename: string; contentType: string; content: string; contentId?: string }[];
}

const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;
export const MAX_BATCH = 1000;
// 100 rows of 24 columns stay well under both databases' limits on bound parameters.
const INSERT_CHUNK = 100;

export interface QueueSettings {
  maxAttempts: number;
}

/** Accepting messages into the outbox, and reading the delivery log. */
export class MessageService {
  /** Called after messages are stored, so an idle worker in this process wakes at once. */
  onQueued: () => void = () => {};

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly settings: QueueSettings,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** Stores one message; on an idempotency key seen in the last 24 hours, returns that message instead. */
  async enqueue(input: MessageInput, principal: Principal): Promise<{ id: string; status: MessageStatus; replayed: boolean }> {
    const [result] = await this.enqueueMany([input], principal, "");
    return result;
  }

  /** Stores up to 1,000 messages in one transaction: all or nothing. */
  async enqueueBatch(
    inputs: MessageInput[],
    principal: Principal,
  ): Promise<{ id: string; status: MessageStatus; replayed: boolean }[]> {
    if (inputs.length > MAX_BATCH) {
      throw new MailroomError("validation_failed", `A batch holds at most ${MAX_BATCH} messages; split it.`, {
        field: "messages",
      });
    }
    return this.enqueueMany(inputs, principal, "messages");
  }

  private async enqueueMany(
    inputs: MessageInput[],
    principal: Principal,
    prefixBase: string,
  ): Promise<{ id: string; status: MessageStatus; replayed: boolean }[]> {
    const now = Date.now();
    const scope = `${principal.kind}:${principal.id}`;
    // Every message is checked before anything is written.
    const prepared: { row: MessagesTable; key?: string }[] = [];
    const serverCache = new Map<string, Awaited<ReturnType<EmailServerService["getRow"]>>>();
    for (const [i, input] of inputs.entries()) {
      const prefix = prefixBase ? `${prefixBase}[${i}].` : "";
      const checked = checkMessage(input, prefix);
      const ref = input.server ?? "";
      let server = serverCache.get(ref);
      if (!server) {
        server = ref ? await this.servers.getRow(ref) : await this.servers.getDefaultRow();
        if (!server) throw new MailroomError("email_server_not_found", "There is no default email server; name one in 'server'.");
        serverCache.set(ref, server);
      }
      if (!canUseServer(principal, server.id)) {
        throw new MailroomError("server_not_allowed", `This API token may not send through '${server.name}'.`, {
          field: `${prefix}server`,
        });
      }
      prepared.push({ row: this.toRow(checked, server, principal, now, prefix), key: input.idempotencyKey });
    }

    const results = await this.ctx.commits.run(async (trx) => {
      const out: { id: string; status: MessageStatus; replayed: boolean }[] = [];
      // Rows without an idempotency key go in multi-row inserts: a batch of 1,000 is ten statements.
      let buffered: MessagesTable[] = [];
      const flush = async () => {
        for (let i = 0; i < buffered.length; i += INSERT_CHUNK) {
          await trx
            .insertInto("messages")
            .values(buffered.slice(i, i + INSERT_CHUNK))
            .execute();
        }
        buffered = [];
      };
      for (const { row, key } of prepared) {
        if (key) {
          // A key may repeat within the batch: what came before must be in the table first.
          await flush();
          const existing = await trx
            .selectFrom("messages")
            .select(["id", "status", "created_at"])
            .where("idempotency_scope", "=", scope)
            .where("idempotency_key", "=", key)
            .executeTakeFirst();
          if (existing && existing.created_at > now - IDEMPOTENCY_WINDOW_MS) {
            out.push({ id: existing.id, status: existing.status, replayed: true });
            continue;
          }
          // An older use of the key has expired: free it for this message.
          if (existing) await trx.updateTable("messages").set({ idempotency_key: null }).where("id", "=", existing.id).execute();
          row.idempotency_scope = scope;
          row.idempotency_key = key;
        }
        buffered.push(row);
        out.push({ id: row.id, status: row.status, replayed: false });
      }
      await flush();
      return out;
    });
    if (results.some((r) => !r.replayed)) this.onQueued();
    return results;
  }

  private toRow(
    m: CheckedMessage,
    server: Awaited<ReturnType<EmailServerService["getRow"]>>,
    principal: Principal,
    now: number,
    prefix: string,
  ): MessagesTable {
    const serverSettings = JSON.parse(server.settings) as { allowedFromAddresses?: string[] };
    const from = m.from ?? { address: server.from_address, name: server.from_name || undefined };
    if (!from.address) {
      throw new MailroomError("from_not_allowed", `The server '${server.name}' has no from address; set one or give 'from'.`, {
        field: `${prefix}from`,
      });
    }
    if (m.from && !fromAllowed(m.from.address, server.from_address, serverSettings.allowedFromAddresses ?? [])) {
      throw new MailroomError(
        "from_not_allowed",
        `'${server.name}' may not send as ${m.from.address}; add it to the server's "Other allowed from addresses".`,
        { field: `${prefix}from` },
      );
    }
    const id = newId();
    const domain = from.address.split("@")[1] ?? "mailroom.localhost";
    const payload: StoredPayload = {
      text: m.text,
      html: m.html,
      headers: m.headers,
      attachments: m.attachments.map((a) => ({
        filename: a.filename,
        contentType: a.contentType,
        content: a.content.toString("base64"),
        ...(a.contentId ? { contentId: a.contentId } : {}),
      })),
    };
    return {
      id,
      server_id: server.id,
      server_name: server.name,
      // A server that cannot send (not set up, or failing until a probe passes) keeps its mail until it can.
      status: server.status === "ready" ? "queued" : "held",
      from_address: from.address,
      from_name: from.name ?? "",
      recipients: JSON.stringify({ to: m.to, cc: m.cc, bcc: m.bcc, replyTo: m.replyTo }),
      recipient_search: [...m.to, ...m.cc, ...m.bcc].map((a) => a.address.toLowerCase()).join(" "),
      subject: m.subject,
      payload: JSON.stringify(payload),
      message_id: `${id}@${domain}`,
      idempotency_scope: null,
      idempotency_key: null,
      attempts: 0,
      max_attempts: this.settings.maxAttempts,
      next_attempt_at: now,
      lease_owner: null,
      last_error_code: server.status === "ready" ? null : "server_not_ready",
      last_error: server.status === "ready" ? null : `The server is ${server.status.replaceAll("_", " ")}.`,
      provider_message_id: null,
      created_by: principal.id,
      created_at: now,
      updated_at: now,
      sent_at: null,
    };
  }

  async list(filter: MessageFilter): Promise<{ items: MessageView[]; total: number }> {
    let query = this.db.selectFrom("messages");
    if (filter.status) query = query.where("status", "=", filter.status);
    if (filter.server) {
      const server = await this.servers.findRow(filter.server);
      query = query.where("server_id", "=", server?.id ?? filter.server);
    }
    if (filter.recipient) {
      const pattern = `%${filter.recipient.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      query = query.where(sql<boolean>`recipient_search like ${pattern} escape '\\'`);
    }
    if (filter.since) query = query.where("created_at", ">=", parseTime("since", filter.since));
    if (filter.until) query = query.where("created_at", "<", parseTime("until", filter.until));
    const { total } = await query.select((eb) => eb.fn.countAll<number>().as("total")).executeTakeFirstOrThrow();
    const rows = await query
      .selectAll()
      .orderBy("created_at", "desc")
      .orderBy("id")
      .limit(filter.limit ?? 50)
      .offset(filter.offset ?? 0)
      .execute();
    return { items: rows.map(toView), total: Number(total) };
  }

  async get(id: string): Promise<MessageView & { attempts: AttemptView[] }> {
    const row = await this.getRow(id);
    const attempts = await this.db
      .selectFrom("message_attempts")
      .selectAll()
      .where("message_id", "=", id)
      .orderBy("id")
      .execute();
    return {
      ...toView(row),
      attempts: attempts.map((a) => ({
        at: iso(a.started_at) as string,
        durationMs: a.duration_ms,
        server: { id: a.server_id, name: a.server_name },
        outcome: a.outcome,
        errorCode: a.error_code,
        response: { code: a.remote_code, command: a.remote_command, text: a.remote_response },
        providerMessageId: a.provider_message_id,
      })),
    };
  }

  async getRow(id: string): Promise<MessagesTable> {
    const row = await this.db.selectFrom("messages").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MailroomError("message_not_found", `No message has the id '${id}'.`);
    return row;
  }

  /** Queues a failed or held message again, with a fresh set of attempts. */
  async retry(id: string, principal: Principal): Promise<MessageView> {
    const row = await this.getRow(id);
    if (!canUseServer(principal, row.server_id)) throw new MailroomError("server_not_allowed");
    if (row.status !== "failed" && row.status !== "held") {
      throw new MailroomError(
        "message_not_retryable",
        `The message is ${row.status}; only failed or held messages can be retried.`,
      );
    }
    const now = Date.now();
    await this.db
      .updateTable("messages")
      .set({ status: "queued", attempts: 0, next_attempt_at: now, updated_at: now })
      .where("id", "=", id)
      .where("status", "in", ["failed", "held"])
      .execute();
    this.onQueued();
    return toView(await this.getRow(id));
  }
}

function parseTime(field: string, value: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new MailroomError("validation_failed", `${field}: must be a date-time like 2026-01-31T12:00:00Z.`, [
      { field, message: "must be a date-time" },
    ]);
  }
  return ms;
}

function toView(row: MessagesTable): MessageView {
  const r = JSON.parse(row.recipients) as { to: Address[]; cc: Address[]; bcc: Address[]; replyTo: Address[] };
  return {
    id: row.id,
    status: row.status,
    server: { id: row.server_id, name: row.server_name },
    from: row.from_name ? { address: row.from_address, name: row.from_name } : { address: row.from_address },
    to: r.to,
    cc: r.cc,
    bcc: r.bcc,
    replyTo: r.replyTo,
    subject: row.subject,
    messageId: row.message_id,
    attemptCount: row.attempts,
    maxAttempts: row.max_attempts,
    nextAttemptAt: row.status === "queued" ? iso(row.next_attempt_at) : null,
    lastError: row.last_error_code ? { code: row.last_error_code, message: row.last_error ?? "" } : null,
    providerMessageId: row.provider_message_id,
    createdAt: iso(row.created_at) as string,
    updatedAt: iso(row.updated_at) as string,
    sentAt: iso(row.sent_at),
  };
}

/** Rebuilds the message a driver sends from its stored row. */
export function outgoingFromRow(row: MessagesTable): OutgoingMessage {
  const r = JSON.parse(row.recipients) as { to: Address[]; cc: Address[]; bcc: Address[]; replyTo: Address[] };
  const p = JSON.parse(row.payload) as StoredPayload;
  return {
    id: row.id,
    messageId: row.message_id,
    from: row.from_name ? { address: row.from_address, name: row.from_name } : { address: row.from_address },
    to: r.to,
    cc: r.cc,
    bcc: r.bcc,
    replyTo: r.replyTo,
    subject: row.subject,
    text: p.text,
    html: p.html,
    headers: p.headers,
    attachments: p.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: Buffer.from(a.content, "base64"),
      ...(a.contentId ? { contentId: a.contentId } : {}),
    })),
  };
}
