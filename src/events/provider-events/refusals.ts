/**
 * Refused provider requests (a forged signature, wrong credentials, a replay) are audited and
 * counted, but a flood must not fill the database or the log: per server and provider this
 * process writes at most one audit entry and one log line a minute, the entry saying how
 * many refusals it stands for. Several processes each keep their own minute.
 */
import { writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import type { EventProvider } from "../../storage/schema.js";
import type { EventSourceService } from "./sources.js";

const WINDOW_MS = 60_000;

interface Pending {
  /** When the last entry was written (0: never). */
  writtenAt: number;
  /** Refusals since that entry. */
  since: number;
}

export class RefusalLog {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly ctx: AppContext,
    private readonly sources: EventSourceService,
  ) {}

  /** Records one refusal; writes (and counts on the source) at most once a window. Never throws. */
  async refused(serverId: string, provider: EventProvider, code: string, ip: string): Promise<void> {
    const key = `${serverId}:${provider}`;
    const now = this.ctx.clock();
    const entry = this.pending.get(key) ?? { writtenAt: 0, since: 0 };
    entry.since++;
    this.pending.set(key, entry);
    if (entry.writtenAt && now - entry.writtenAt < WINDOW_MS) return;
    const count = entry.since;
    entry.since = 0;
    entry.writtenAt = now;
    // The map stays small: one key per server and provider that was ever refused.
    try {
      await this.sources.countRefused(serverId, provider, count, now);
      await writeAudit(
        this.ctx.db,
        { type: "system", id: null, label: `provider:${provider}`, ip },
        {
          action: "provider_events.refused",
          targetType: "email_server",
          targetId: serverId,
          after: { provider, code, refusals: count },
        },
        now,
      );
      this.ctx.log.warn({ serverId, provider, code, refusals: count, ip }, "provider events: a request was refused");
    } catch (error) {
      this.ctx.log.error({ err: error, serverId, provider }, "provider events: could not record a refused request");
    }
  }
}
