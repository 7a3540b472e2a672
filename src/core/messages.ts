import { type Kysely, type RawBuilder, sql } from "kysely";
import { canUseServer, type Principal } from "../auth/permissions.js";
import { MailroomError } from "../kernel/errors.js";
import { iso, newId } from "../kernel/ids.js";
import type { Address, OutgoingMessage } from "../kernel/transport.js";
import { BatchWriter } from "../storage/group-commit.js";
import type { Database, MessageSource, MessageStatus, MessagesTable, ProviderEventType } from "../storage/schema.js";
import { type Actor, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";
import type { EmailServerService } from "./email-servers.js";
import { listensTo, type MessageEvent } from "./message-events.js";
import { type CheckedMessage, checkMessage, type MessageInput } from "./message-input.js";
import { checkTag, type RouteService, serverMaySendAs } from "./routes.js";
import { refuseSuppressed, type SuppressionLookup } from "./suppression-check.js";

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
  /** A server test's email: written to the log settled, never retried. */
  test: boolean;
  /** How the message arrived, and from whom. */
  source: MessageSourceView;
  /** The route rule that chose its servers (null: a named or the default server), and the tag it was given. */
  route: string | null;
  tag: string | null;
  /** When retention removed the body (text, html, attachments); null while it is kept. */
  bodyRemovedAt: string | null;
  /** "Body removed by retention on 2026-01-31." when it was; null otherwise. */
  bodyNote: string | null;
}

/** Who handed Mailroom a message: `by` is the principal's label; SMTP adds where from. */
export interface MessageSourceDetail {
  by?: string;
  /** The SMTP AUTH username (free text chosen by the client). */
  username?: string;
  clientIp?: string;
  /** The name the client gave in EHLO/HELO. */
  ehlo?: string;
  /** The envelope sender (MAIL FROM). */
  mailFrom?: string;
  tls?: boolean;
}

export interface MessageSourceView extends MessageSourceDetail {
  kind: MessageSource;
}

/** A message as an SMTP client sent it: its bytes are stored and delivered as they are. */
export interface RawMessageInput {
  /** The server's id; the default server when absent. */
  server?: string;
  /** The whole message (headers and body) as it will be sent. */
  mime: Buffer;
  /** The From header: checked against the server's sender policy. */
  from: Address;
  /** The envelope's recipients, sorted by the header they appear in (bcc: in none). */
  to: Address[];
  cc: Address[];
  bcc: Address[];
  replyTo: Address[];
  subject: string;
  /** The Message-ID header, without angle brackets. */
  messageId: string;
  idempotencyKey?: string;
  source: MessageSourceDetail;
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

/** What a provider reported about the message after it was sent (src/events/provider-events). */
export interface ProviderEventView {
  type: ProviderEventType;
  provider: string;
  bounceKind: "hard" | "soft" | null;
  recipient: string | null;
  diagnostic: string | null;
  /** When the provider says it happened, and when Mailroom heard of it. */
  at: string;
  receivedAt: string;
}

export interface MessageFilter {
  status?: MessageStatus;
  server?: string;
  recipient?: string;
  /** Words of the subject or a recipient's address, as typed (case-insensitive). */
  q?: string;
  since?: string;
  until?: string;
  limit?: number;
  offset?: number;
}

interface StoredPayload {
  /** Set for a message stored as sent: its bytes are in message_raw. */
  raw?: boolean;
  /** Set once the message was erased on request (core/erasure.ts): nothing of it is left to send. */
  erased?: boolean;
  text?: string;
  html?: string;
  headers: Record<string, string>;
  attachments: { filename: string; contentType: string; content: string; contentId?: string }[];
}

type ServerRow = Awaited<ReturnType<EmailServerService["getRow"]>>;
type Resolver = Awaited<ReturnType<RouteService["resolver"]>>;

/** Where a message goes: its first server, and for a routed message the route's servers that may send its From. */
interface Placement {
  server: ServerRow;
  /** The From when the message gives none: the route's primary's (so every server of the route may send it). */
  defaultFrom: Address;
  route: { name: string; serverIds: string[] } | null;
}

interface Prepared {
  row: MessagesTable;
  key?: string;
  /** The bytes of a message stored as sent. */
  raw?: Buffer;
  /** Where its fields are in the request ("messages[3]." in a batch), for an error's field. */
  prefix?: string;
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
  /**
   * Called after messages are stored, so an idle worker in this process wakes at once;
   * `announced`: the statement that stored them told the other processes already.
   */
  onQueued: (announced?: boolean) => void = () => {};
  /**
   * The notification to the other processes (PostgreSQL's NOTIFY) that a statement storing
   * single messages carries, so it needs no statement of its own (set by src/app.ts).
   */
  announcement: () => RawBuilder<unknown> | undefined = () => undefined;
  /** The suppression list, checked before anything is stored (wired in src/app.ts); none until then. */
  suppressions: SuppressionLookup | null = null;
  /**
   * Single messages without an idempotency key that arrive together are stored by one
   * multi-row INSERT, without BEGIN and COMMIT (a statement is atomic by itself): one round
   * trip on PostgreSQL for all of them.
   */
  private readonly singles: BatchWriter<MessagesTable, boolean>;

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly settings: QueueSettings,
    private readonly routes?: RouteService,
  ) {
    this.singles = new BatchWriter(async (rows) => {
      const announcement = this.announcement();
      if (!announcement) {
        await this.db.insertInto("messages").values(rows).execute();
        return rows.map(() => false);
      }
      // One statement stores them and tells the other processes (delivered at its commit).
      await this.db
        .with("stored", (db) => db.insertInto("messages").values(rows).returning("id"))
        .selectFrom("stored")
        .select(announcement.as("announced"))
        .limit(1)
        .execute();
      return rows.map(() => true);
    }, INSERT_CHUNK);
  }

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

  /**
   * Stores one message exactly as an SMTP client sent it. Routing, the sender policy and the
   * 24-hour idempotency are the API's; the bytes are delivered unchanged.
   */
  async enqueueRaw(
    input: RawMessageInput,
    principal: Principal,
  ): Promise<{ id: string; status: MessageStatus; replayed: boolean }> {
    const placement = await this.place(input.server ?? "", input, null, principal, "");
    if (!placement.route) this.checkFrom(placement.server, input.from.address, "from");
    const now = this.ctx.clock();
    const row = this.baseRow(placement, principal, now, input.from, {
      to: input.to,
      cc: input.cc,
      bcc: input.bcc,
      replyTo: input.replyTo,
    });
    row.subject = input.subject;
    row.payload = JSON.stringify({ raw: true, headers: {}, attachments: [] } satisfies StoredPayload);
    row.message_id = input.messageId;
    row.source = "smtp";
    row.source_detail = JSON.stringify({ ...input.source, by: principal.label });
    const [result] = await this.store([{ row, key: input.idempotencyKey, raw: input.mime }], principal);
    return result;
  }

  private async enqueueMany(
    inputs: MessageInput[],
    principal: Principal,
    prefixBase: string,
  ): Promise<{ id: string; status: MessageStatus; replayed: boolean }[]> {
    const now = this.ctx.clock();
    // Every message is checked before anything is written.
    const prepared: Prepared[] = [];
    const serverCache = new Map<string, Placement>();
    // The default server too is read once for a whole batch (a route depends on each message).
    const rows = new Map<string, Promise<ServerRow | undefined>>();
    let routes: Resolver | undefined;
    for (const [i, input] of inputs.entries()) {
      const prefix = prefixBase ? `${prefixBase}[${i}].` : "";
      const checked = checkMessage(input, prefix);
      const tag = checkTag(input.tag, `${prefix}tag`);
      const ref = input.server ?? "";
      // A named server is the same for every message of a batch; a route depends on each message.
      let placement = ref ? serverCache.get(ref) : undefined;
      if (!placement) {
        if (!ref) routes ??= await this.routeResolver();
        placement = await this.place(ref, checked, tag, principal, prefix, routes, rows);
        if (ref) serverCache.set(ref, placement);
      }
      const row = this.toRow(checked, placement, principal, now, prefix);
      row.tag = tag;
      prepared.push({ row, key: input.idempotencyKey, prefix });
    }
    return this.store(prepared, principal);
  }

  /**
   * Where a message goes: the server it names (by id or name); else the servers of the first
   * route it matches that the principal may use and that may send its From (the first ready
   * one first); else the default server.
   */
  private async place(
    ref: string,
    message: { from?: Address; to: Address[]; cc: Address[]; bcc: Address[] },
    tag: string | null,
    principal: Principal,
    prefix: string,
    /** The rules read once for a whole batch (read here if not given). */
    routes?: Resolver,
    /** The server rows read for a whole batch. */
    rows?: Map<string, Promise<ServerRow | undefined>>,
  ): Promise<Placement> {
    const named = async () => {
      const server = await this.serverFor(ref, principal, `${prefix}server`, rows);
      return { server, defaultFrom: { address: server.from_address, name: server.from_name || undefined }, route: null };
    };
    if (ref || !this.routes) return named();
    const recipients = [...message.to, ...message.cc, ...message.bcc].map((a) => a.address);
    const tokenId = principal.kind === "token" ? principal.id : null;
    const resolve = routes ?? (await this.routeResolver());
    const resolved = resolve({ from: message.from?.address ?? "", tokenId, tag, recipients });
    if (!resolved.route) return named();
    const name = resolved.route.name;
    const usable = resolved.servers.filter((s) => canUseServer(principal, s.id));
    if (usable.length === 0) {
      throw new MailroomError("server_not_allowed", `This API token may not send through any server of the route '${name}'.`, {
        field: `${prefix}server`,
      });
    }
    const defaultFrom = { address: usable[0].from_address, name: usable[0].from_name || undefined };
    const from = message.from?.address ?? defaultFrom.address;
    const senders = usable.filter((s) => serverMaySendAs(s, from));
    if (senders.length === 0) {
      const names = usable.map((s) => `'${s.name}'`).join(", ");
      throw new MailroomError(
        "from_not_allowed",
        `No server of the route '${name}' (${names}) may send as ${from}; add it to one's "Other allowed from addresses", or send from an address they may use.`,
        { field: `${prefix}from` },
      );
    }
    const server = senders.find((s) => s.status === "ready") ?? senders[0];
    return { server, defaultFrom, route: { name, serverIds: senders.map((s) => s.id) } };
  }

  /** The route rules, read at most once a moment (src/storage/config-cache.ts). */
  private async routeResolver(): Promise<Resolver> {
    const routes = this.routes;
    if (!routes) return () => ({ route: null, servers: [] });
    return this.ctx.storage.configCache.get("routes", () => routes.resolver());
  }

  /** The server a message goes through (by id or name, else the default), if the principal may use it. */
  private async serverFor(
    ref: string,
    principal: Principal,
    field: string,
    rows = new Map<string, Promise<ServerRow | undefined>>(),
  ): Promise<ServerRow> {
    // Read at most once a moment, not once a message (src/storage/config-cache.ts).
    let read = rows.get(ref);
    if (!read) {
      read = this.ctx.storage.configCache.get(ref ? `server:${ref}` : "server:default", () =>
        ref ? this.servers.findRow(ref) : this.servers.getDefaultRow(),
      );
      rows.set(ref, read);
    }
    const server = await read;
    if (!server && ref) throw new MailroomError("email_server_not_found", `No email server has the id or name '${ref}'.`);
    if (!server) throw new MailroomError("email_server_not_found", "There is no default email server; name one in 'server'.");
    if (!canUseServer(principal, server.id)) {
      throw new MailroomError("server_not_allowed", `This API token may not send through '${server.name}'.`, { field });
    }
    return server;
  }

  /** The sender policy: a server sends as its own from address or one its allow-list permits. */
  private checkFrom(server: ServerRow, address: string, field: string): void {
    if (!serverMaySendAs(server, address)) {
      throw new MailroomError(
        "from_not_allowed",
        `'${server.name}' may not send as ${address}; add it to the server's "Other allowed from addresses".`,
        { field },
      );
    }
  }

  /** Whether `key` was used in the last 24 hours: store() then answers that first message. */
  private async recentKeyUse(scope: string, key: string, now: number): Promise<boolean> {
    const existing = await this.db
      .selectFrom("messages")
      .select("created_at")
      .where("idempotency_scope", "=", scope)
      .where("idempotency_key", "=", key)
      .executeTakeFirst();
    return existing !== undefined && existing.created_at > now - IDEMPOTENCY_WINDOW_MS;
  }

  /** Writes checked messages in one transaction; a key seen in the last 24 hours returns that message instead. */
  private async store(
    prepared: Prepared[],
    principal: Principal,
  ): Promise<{ id: string; status: MessageStatus; replayed: boolean }[]> {
    const now = this.ctx.clock();
    const scope = `${principal.kind}:${principal.id}`;
    if (this.suppressions) {
      await refuseSuppressed(this.suppressions, prepared, (key) => this.recentKeyUse(scope, key, now));
    }
    const events = this.ctx.messageEvents;
    // One message, no key, no listener for its event: stored with the others that arrive together.
    const single = prepared.length === 1 && !prepared[0].key && !prepared[0].raw ? prepared[0].row : null;
    if (single && !listensTo(events, acceptedEvent(single, now).type)) {
      this.onQueued(await this.singles.write(single));
      return [{ id: single.id, status: single.status, replayed: false }];
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
      const accepted: MessageEvent[] = [];
      for (const { row, key, raw } of prepared) {
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
        if (raw) await trx.insertInto("message_raw").values({ message_id: row.id, mime: raw }).execute();
        buffered.push(row);
        out.push({ id: row.id, status: row.status, replayed: false });
        const accept = acceptedEvent(row, now);
        if (listensTo(events, accept.type)) accepted.push(accept);
      }
      await flush();
      // In the same transaction as the messages: an event is never told of a message that is not stored, nor lost.
      if (accepted.length) await events.record(trx, accepted);
      return out;
    });
    if (results.some((r) => !r.replayed)) this.onQueued();
    return results;
  }

  private toRow(m: CheckedMessage, placement: Placement, principal: Principal, now: number, prefix: string): MessagesTable {
    const { server } = placement;
    const from = m.from ?? placement.defaultFrom;
    if (!from.address) {
      throw new MailroomError("from_not_allowed", `The server '${server.name}' has no from address; set one or give 'from'.`, {
        field: `${prefix}from`,
      });
    }
    // A route's servers were chosen for the From already.
    if (m.from && !placement.route) this.checkFrom(server, m.from.address, `${prefix}from`);
    const row = this.baseRow(placement, principal, now, from, { to: m.to, cc: m.cc, bcc: m.bcc, replyTo: m.replyTo });
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
    row.subject = m.subject;
    row.payload = JSON.stringify(payload);
    if (principal.kind === "token") row.source_detail = JSON.stringify({ by: principal.label } satisfies MessageSourceDetail);
    return row;
  }

  /** A new queued (or, for a server that cannot send yet, held) row; the caller fills in the content. */
  private baseRow(
    { server, route }: Placement,
    principal: Principal,
    now: number,
    from: Address,
    recipients: { to: Address[]; cc: Address[]; bcc: Address[]; replyTo: Address[] },
  ): MessagesTable {
    const id = newId();
    const domain = from.address.split("@")[1] ?? "mailroom.localhost";
    // A server that cannot send (not set up, or failing until a probe passes) keeps its mail until it can.
    const canSend = server.status === "ready";
    const { to, cc, bcc } = recipients;
    return {
      id,
      server_id: server.id,
      server_name: server.name,
      status: canSend ? "queued" : "held",
      from_address: from.address,
      from_name: from.name ?? "",
      recipients: JSON.stringify(recipients),
      recipient_search: [...to, ...cc, ...bcc].map((a) => a.address.toLowerCase()).join(" "),
      subject: "",
      payload: "",
      message_id: `${id}@${domain}`,
      idempotency_scope: null,
      idempotency_key: null,
      attempts: 0,
      max_attempts: this.settings.maxAttempts,
      next_attempt_at: now,
      lease_owner: null,
      last_error_code: canSend ? null : "server_not_ready",
      last_error: canSend ? null : `The server is ${server.status.replaceAll("_", " ")}.`,
      provider_message_id: null,
      created_by: principal.id,
      created_by_type: principal.kind,
      created_at: now,
      updated_at: now,
      sent_at: null,
      route_servers: route ? JSON.stringify(route.serverIds) : null,
      route_name: route?.name ?? null,
    };
  }

  /** The delivery log; `principal` limited to some servers sees only theirs. */
  async list(filter: MessageFilter, principal?: Principal): Promise<{ items: MessageView[]; total: number }> {
    let query = this.db.selectFrom("messages");
    if (filter.status) query = query.where("status", "=", filter.status);
    if (filter.server) {
      const server = await this.servers.findRow(filter.server);
      if (server && principal && !canUseServer(principal, server.id)) {
        throw new MailroomError("server_not_allowed", `This API token may not see the messages of '${server.name}'.`, {
          field: "server",
        });
      }
      query = query.where("server_id", "=", server?.id ?? filter.server);
    }
    const scope = principal?.serverIds ?? null;
    if (scope !== null) query = scope.length ? query.where("server_id", "in", scope) : query.where(sql<boolean>`1 = 0`);
    if (filter.recipient) {
      query = query.where(sql<boolean>`recipient_search like ${likePattern(filter.recipient)} escape '\\'`);
    }
    if (filter.q?.trim()) {
      const pattern = likePattern(filter.q.trim());
      query = query.where(
        sql<boolean>`(lower(subject) like ${pattern} escape '\\' or recipient_search like ${pattern} escape '\\')`,
      );
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

  async get(id: string): Promise<MessageView & { attempts: AttemptView[]; events: ProviderEventView[] }> {
    const row = await this.getRow(id);
    const attempts = await this.db
      .selectFrom("message_attempts")
      .selectAll()
      .where("message_id", "=", id)
      .orderBy("id")
      .execute();
    const events = await this.db
      .selectFrom("message_events")
      .selectAll()
      .where("message_id", "=", id)
      .orderBy("at")
      .orderBy("received_at")
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
      events: events.map((e) => ({
        type: e.type,
        provider: e.provider,
        bounceKind: e.bounce_kind,
        recipient: e.recipient,
        diagnostic: e.diagnostic,
        at: iso(Number(e.at)) as string,
        receivedAt: iso(Number(e.received_at)) as string,
      })),
    };
  }

  /** Whether the principal itself queued the message (a send-only token may read those). */
  static sentBy(principal: Principal, row: MessagesTable): boolean {
    return row.created_by === principal.id && row.created_by_type === principal.kind;
  }

  async findRow(id: string): Promise<MessagesTable | undefined> {
    return this.db.selectFrom("messages").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async getRow(id: string): Promise<MessagesTable> {
    const row = await this.findRow(id);
    if (!row) throw new MailroomError("message_not_found", `No message has the id '${id}'.`);
    return row;
  }

  /**
   * Queues a failed or held message again. The attempts it made still count ("2 of 6" after a
   * retry), so the log and the count agree; only a message that used them all gets a fresh set.
   */
  async retry(id: string, principal: Principal, actor: Actor): Promise<MessageView> {
    const row = await this.getRow(id);
    if (!canUseServer(principal, row.server_id)) throw new MailroomError("server_not_allowed");
    if (row.is_test === 1) {
      throw new MailroomError("message_not_retryable", "This is a server test's email: run the test again instead.");
    }
    if ((JSON.parse(row.payload) as StoredPayload).erased) {
      throw new MailroomError("message_not_retryable", "This message was erased on request: there is nothing left to send.");
    }
    if (row.body_purged_at != null) {
      throw new MailroomError(
        "message_not_retryable",
        `${bodyNote(row.body_purged_at)} It cannot be sent again: send a new message instead.`,
      );
    }
    if (row.status !== "failed" && row.status !== "held") {
      throw new MailroomError(
        "message_not_retryable",
        `The message is ${row.status}; only failed or held messages can be retried.`,
      );
    }
    const now = this.ctx.clock();
    const attempts = row.attempts < row.max_attempts ? row.attempts : 0;
    await this.ctx.commits.run(async (trx) => {
      const result = await trx
        .updateTable("messages")
        .set({ status: "queued", attempts, next_attempt_at: now, updated_at: now })
        .where("id", "=", id)
        .where("status", "in", ["failed", "held"])
        .where("body_purged_at", "is", null)
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 0) return;
      // Someone sent it back to the queue: the application hears it is queued again.
      await this.ctx.messageEvents.record(trx, [{ type: "queued", messageId: id, serverId: row.server_id, at: now }]);
      await writeAudit(
        trx,
        actor,
        {
          action: "message.retry",
          targetType: "message",
          targetId: id,
          before: { status: row.status, attempts: row.attempts, lastError: row.last_error_code },
          after: { status: "queued", attempts },
        },
        now,
      );
    });
    // Read before waking the worker: the reply says what the retry did, not how far delivery got since.
    const view = toView(await this.getRow(id));
    this.onQueued();
    return view;
  }
}

/** A stored message's first event: queued, or held when its server cannot send yet. */
function acceptedEvent(row: MessagesTable, at: number): MessageEvent {
  return { type: row.status === "held" ? "held" : "queued", messageId: row.id, serverId: row.server_id, at };
}

/** A LIKE pattern that finds `text` anywhere, its own %, _ and \ taken literally. */
function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
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

function bodyNote(purgedAt: number): string {
  return `Body removed by retention on ${new Date(Number(purgedAt)).toISOString().slice(0, 10)}.`;
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
    test: row.is_test === 1,
    source: { kind: row.source ?? "api", ...(row.source_detail ? (JSON.parse(row.source_detail) as MessageSourceDetail) : {}) },
    route: row.route_name ?? null,
    tag: row.tag ?? null,
    bodyRemovedAt: row.body_purged_at == null ? null : iso(Number(row.body_purged_at)),
    bodyNote: row.body_purged_at == null ? null : bodyNote(row.body_purged_at),
  };
}

/** The message a driver sends, with the stored bytes of a message kept as sent. */
export async function loadOutgoing(db: Kysely<Database>, row: MessagesTable): Promise<OutgoingMessage> {
  const message = outgoingFromRow(row);
  if (!(JSON.parse(row.payload) as StoredPayload).raw) return message;
  const stored = await db.selectFrom("message_raw").select("mime").where("message_id", "=", row.id).executeTakeFirst();
  if (!stored) throw new MailroomError("internal_error", `The stored MIME of message ${row.id} is missing.`);
  return { ...message, raw: Buffer.from(stored.mime) };
}

/** Rebuilds the message a driver sends from its stored row (without the bytes of a raw message: see loadOutgoing). */
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
