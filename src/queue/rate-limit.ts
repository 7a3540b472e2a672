import type { Kysely } from "kysely";
import type { Clock } from "../kernel/clock.js";
import { type Database, type EmailServersTable, SENT_STATUSES } from "../storage/schema.js";
import { countSentSince } from "./outbox.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const DAY_COUNT_TTL_MS = 60_000;

/**
 * A server's messagesPerSecond and messagesPerDay settings, kept by delaying messages,
 * never by failing them. Per second is counted in this process; per day from the log,
 * so it holds across processes and restarts.
 */
export class RateLimiter {
  private readonly nextSlot = new Map<string, number>();
  private readonly daily = new Map<string, { count: number; at: number }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock = Date.now,
  ) {}

  /**
   * Reserves the server's next sending slot and says how long until it (0: now). Past the
   * daily limit it reserves nothing and answers the wait until the window has room again.
   */
  async reserve(server: EmailServersTable, now = this.clock()): Promise<number> {
    const settings = JSON.parse(server.settings) as { messagesPerSecond?: number; messagesPerDay?: number };
    if (settings.messagesPerDay) {
      const day = await this.today(server.id, now);
      if (day.count >= settings.messagesPerDay) {
        const oldest = await this.db
          .selectFrom("messages")
          .select((eb) => eb.fn.min<number>("sent_at").as("oldest"))
          .where("server_id", "=", server.id)
          .where("status", "in", SENT_STATUSES)
          .where("sent_at", ">=", now - DAY_MS)
          .executeTakeFirst();
        return Math.max(Number(oldest?.oldest ?? now) + DAY_MS - now, 1000);
      }
      day.count++;
    }
    if (settings.messagesPerSecond) {
      const slot = Math.max(this.nextSlot.get(server.id) ?? 0, now);
      this.nextSlot.set(server.id, slot + 1000 / settings.messagesPerSecond);
      return slot - now;
    }
    return 0;
  }

  /** Whether the server has sent its messages-per-day limit (routing skips it); reserves nothing. */
  async dailyLimitReached(server: EmailServersTable, now = Date.now()): Promise<boolean> {
    const { messagesPerDay } = JSON.parse(server.settings) as { messagesPerDay?: number };
    if (!messagesPerDay) return false;
    return (await this.today(server.id, now)).count >= messagesPerDay;
  }

  /** The server's count of the last 24 hours, read from the log at most once a minute. */
  private async today(serverId: string, now: number): Promise<{ count: number; at: number }> {
    let day = this.daily.get(serverId);
    if (!day || now - day.at > DAY_COUNT_TTL_MS) {
      const count = await countSentSince(this.db, serverId, now - DAY_MS);
      // Reservations made while this one counted are in the entry they made: keep that one.
      day = this.daily.get(serverId);
      if (!day || now - day.at > DAY_COUNT_TTL_MS) {
        day = { count, at: now };
        this.daily.set(serverId, day);
      }
    }
    return day;
  }
}
