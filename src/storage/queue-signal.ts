import { randomBytes } from "node:crypto";
import { type Kysely, type RawBuilder, sql } from "kysely";
import pg from "pg";
import type { Database } from "./schema.js";

const CHANNEL = "mailroom_queue";
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 30_000;

export interface SignalLog {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

/**
 * Tells the other Mailroom processes on one PostgreSQL that messages were queued
 * (LISTEN/NOTIFY), so the process that accepted a message is not the only one to wake at
 * once: the others would otherwise find it at their next poll. On SQLite there is one
 * process and nothing to tell. A lost signal costs only time: every worker still polls.
 */
export class QueueSignal {
  /** This process's announcements, which it does not need to hear back. */
  private readonly self = randomBytes(6).toString("hex");
  private announcing = false;
  private announceAgain = false;
  private listener: pg.Client | undefined;
  private listening = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectWait = RECONNECT_FIRST_MS;
  private lost = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly databaseUrl: string | undefined,
    private readonly log: SignalLog,
  ) {}

  /**
   * After a commit of queued messages. At most one notification is in flight: what is queued
   * meanwhile is announced by one more after it, so a burst costs two, not one a message.
   */
  announce(): void {
    if (!this.databaseUrl) return;
    if (this.announcing) {
      this.announceAgain = true;
      return;
    }
    this.announcing = true;
    sql`select pg_notify(${CHANNEL}, ${this.self})`
      .execute(this.db)
      // The workers' poll finds the message anyway; a database outage is reported by its health.
      .catch(() => {})
      .finally(() => {
        this.announcing = false;
        if (this.announceAgain) {
          this.announceAgain = false;
          this.announce();
        }
      });
  }

  /** The announcement as an expression, for a statement that stores messages to carry (PostgreSQL). */
  notification(): RawBuilder<unknown> | undefined {
    return this.databaseUrl ? sql`pg_notify(${CHANNEL}, ${this.self})` : undefined;
  }

  /** Calls `onQueued` when another process announces; reconnects by itself when the connection drops. */
  listen(onQueued: () => void): void {
    if (!this.databaseUrl || this.listening) return;
    this.listening = true;
    void this.connect(onQueued);
  }

  async stop(): Promise<void> {
    this.listening = false;
    clearTimeout(this.reconnectTimer);
    const client = this.listener;
    this.listener = undefined;
    await client?.end().catch(() => {});
  }

  private async connect(onQueued: () => void): Promise<void> {
    const client = new pg.Client({
      connectionString: this.databaseUrl,
      application_name: "mailroom-queue-listener",
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    let dropped = false;
    const drop = (error?: Error) => {
      if (dropped) return;
      dropped = true;
      if (this.listener === client) this.listener = undefined;
      void client.end().catch(() => {});
      if (!this.listening) return;
      if (!this.lost) {
        this.lost = true;
        this.log.warn(
          { err: error },
          "lost the queue's notification connection; messages queued by other processes wait for the poll until it is back",
        );
      }
      this.reconnectTimer = setTimeout(() => void this.connect(onQueued), this.reconnectWait);
      this.reconnectTimer.unref();
      this.reconnectWait = Math.min(this.reconnectWait * 2, RECONNECT_MAX_MS);
    };
    client.on("error", drop);
    client.on("end", () => drop());
    client.on("notification", (n) => {
      if (n.channel === CHANNEL && n.payload !== this.self) onQueued();
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANNEL}`);
    } catch (error) {
      drop(error as Error);
      return;
    }
    if (!this.listening || dropped) {
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
    this.reconnectWait = RECONNECT_FIRST_MS;
    if (this.lost) {
      this.lost = false;
      this.log.info({}, "the queue's notification connection is back");
      // Something may have been queued while nobody listened.
      onQueued();
    }
  }
}
