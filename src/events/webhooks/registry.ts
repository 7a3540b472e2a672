/**
 * The real MessageEventSink: which webhooks listen to what, kept in memory so that telling of
 * a status change costs nothing when no webhook listens to it (no query, no transaction), and
 * one delivery row per listening webhook, written through the caller's handle (so in the
 * same commit as the change) when some does.
 *
 * The view is read again at once after a change made in this process (create, edit, delete,
 * a token revoked), and every REFRESH_MS from the database, for changes made by other
 * processes on the same PostgreSQL and for owners that lost their right (a token revoked
 * elsewhere or expired, a user disabled or narrowed). So a webhook registered in another
 * process starts receiving events within REFRESH_MS (docs/events.md: "the window").
 */
import type { Kysely } from "kysely";
import type { MessageEvent, MessageEventSink, MessageEventType } from "../../core/message-events.js";
import { newId } from "../../kernel/ids.js";
import type { Database, WebhookDeliveriesTable, WebhooksTable } from "../../storage/schema.js";
import { ownerKey, ownerStates } from "./owners.js";
import { messagePayload, PAYLOAD_COLUMNS, type PayloadRow } from "./payload.js";

/** How stale the view may be for changes made by another process (real time). */
export const REFRESH_MS = 5000;
// Bound parameters per statement stay far below both databases' limits.
const CHUNK = 100;

export interface KnownWebhook {
  row: WebhooksTable;
  events: ReadonlySet<MessageEventType>;
  /** Null while its owner may hear of events; otherwise why not. */
  silencedBecause: string | null;
}

interface View {
  hooks: Map<string, KnownWebhook>;
  /** Event types some enabled, live webhook listens to. */
  listening: Set<MessageEventType>;
}

export class WebhookRegistry implements MessageEventSink {
  private view: View | null = null;
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private stopped = false;
  /** Told of the deliveries just written (not yet committed): the dispatcher looks for them at once. */
  onRecorded: (deliveryIds: string[]) => void = () => {};

  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: () => number,
    private readonly warn: (error: unknown) => void,
  ) {}

  /** Until the view is read, every type may be wanted: record() reads it first. */
  listening(type: MessageEventType): boolean {
    return this.view ? this.view.listening.has(type) : true;
  }

  async record(db: Kysely<Database>, events: MessageEvent[]): Promise<void> {
    // Read through the caller's handle: on SQLite its open transaction holds the only connection.
    let view = this.view;
    if (!view) {
      view = this.view = await this.read(db);
      this.schedule();
    }
    const wanted = events.filter((e) => view.listening.has(e.type));
    if (!wanted.length) return;
    const rows = new Map<string, PayloadRow>();
    const ids = [...new Set(wanted.map((e) => e.messageId))];
    for (let i = 0; i < ids.length; i += CHUNK) {
      const found = await db
        .selectFrom("messages")
        .select([...PAYLOAD_COLUMNS])
        .where("id", "in", ids.slice(i, i + CHUNK))
        .execute();
      for (const r of found) rows.set(r.id, r);
    }
    const now = this.clock();
    const deliveries: WebhookDeliveriesTable[] = [];
    for (const event of wanted) {
      const row = rows.get(event.messageId);
      // A server test's email is the admin's check, not an application's message.
      if (!row || row.is_test === 1) continue;
      for (const hook of view.hooks.values()) {
        if (!this.wants(hook, event.type, row)) continue;
        deliveries.push({
          id: newId(),
          webhook_id: hook.row.id,
          message_id: row.id,
          event_type: event.type,
          payload: messagePayload(event, row),
          status: "pending",
          attempts: 0,
          next_attempt_at: now,
          lease_owner: null,
          last_error: null,
          created_at: now,
          updated_at: now,
          delivered_at: null,
        });
      }
    }
    for (let i = 0; i < deliveries.length; i += CHUNK) {
      await db
        .insertInto("webhook_deliveries")
        .values(deliveries.slice(i, i + CHUNK))
        .execute();
    }
    if (deliveries.length) this.onRecorded(deliveries.map((d) => d.id));
  }

  /** Whether the webhook hears of this event of this message: a token of its own messages, a user of all. */
  private wants(hook: KnownWebhook, type: MessageEventType, message: PayloadRow): boolean {
    if (hook.row.enabled !== 1 || hook.silencedBecause !== null || !hook.events.has(type)) return false;
    if (hook.row.owner_type === "user") return true;
    return message.created_by_type === "token" && message.created_by === hook.row.owner_id;
  }

  /** True once read and there is no webhook at all: nothing can be due. */
  isEmpty(): boolean {
    return this.view !== null && this.view.hooks.size === 0;
  }

  /** Reads the view now (after a change in this process); starts the periodic refresh. */
  async refresh(): Promise<void> {
    this.refreshing ??= this.read(this.db)
      .then((view) => {
        this.view = view;
      })
      .finally(() => {
        this.refreshing = null;
      });
    await this.refreshing;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh().catch((error) => {
        // The last view stays in force; the next refresh tries again.
        this.warn(error);
        this.schedule();
      });
    }, REFRESH_MS);
    this.timer.unref();
  }

  private async read(db: Kysely<Database>): Promise<View> {
    const rows = await db.selectFrom("webhooks").selectAll().execute();
    const owners = await ownerStates(db, rows, this.clock());
    const hooks = new Map<string, KnownWebhook>();
    const listening = new Set<MessageEventType>();
    for (const row of rows) {
      const events = new Set(JSON.parse(row.events) as MessageEventType[]);
      const silencedBecause = owners.get(ownerKey(row)) ?? null;
      hooks.set(row.id, { row, events, silencedBecause });
      if (row.enabled === 1 && silencedBecause === null) for (const e of events) listening.add(e);
    }
    return { hooks, listening };
  }
}
