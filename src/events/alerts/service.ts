/**
 * Alerts for admins, put together: thresholds, channels, incidents and their outbox. A tick
 * evaluates the conditions (with ctx.clock) and sends what is due; it runs on a schedule and,
 * for promptness, soon after a server's breaker opens or closes or its grant is lost (nudge,
 * wired in src/app.ts). Ticks of one process run one at a time; several processes share the
 * work through the database (see incidents.ts and dispatch.ts).
 */
import type { Actor } from "../../core/audit.js";
import { writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import type { MessageService } from "../../core/messages.js";
import { newId } from "../../kernel/ids.js";
import { AlertChannels } from "./channels.js";
import { AlertOutbox } from "./dispatch.js";
import { testAlert } from "./format.js";
import { Incidents } from "./incidents.js";
import { AlertSender, type SendOutcome } from "./senders.js";
import { AlertSettings } from "./thresholds.js";

/** How often conditions are evaluated and due alerts sent, without a nudge. */
export const ALERT_INTERVAL_MS = 60_000;

export interface AlertTestResult {
  outcome: SendOutcome["status"];
  channel: { id: string; name: string; type: string };
  responseStatus: number | null;
  ms: number;
  error: { code: string; message: string; hint: string } | null;
  /** Email: the test message queued, and the server it goes through. */
  message: { id: string; server: string } | null;
}

export class AlertService {
  readonly settings: AlertSettings;
  readonly channels: AlertChannels;
  readonly incidents: Incidents;
  readonly sender: AlertSender;
  readonly outbox: AlertOutbox;
  private queue: Promise<void> = Promise.resolve();
  private scheduled: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly ctx: AppContext,
    messages: MessageService,
    private readonly intervalMs = ALERT_INTERVAL_MS,
  ) {
    this.settings = new AlertSettings(ctx);
    this.channels = new AlertChannels(ctx);
    this.incidents = new Incidents(ctx, this.channels);
    this.sender = new AlertSender(ctx, this.channels, messages);
    this.outbox = new AlertOutbox(ctx, this.sender);
  }

  /** Evaluates and sends what is due, after any tick under way. Never throws: failures are logged. */
  tick(): Promise<void> {
    const run = this.queue.then(() => this.runOnce());
    this.queue = run;
    return run;
  }

  private async runOnce(): Promise<void> {
    try {
      const thresholds = await this.settings.thresholds();
      await this.incidents.evaluate(thresholds, this.ctx.clock());
      await this.outbox.dispatchDue();
    } catch (error) {
      this.ctx.log.error({ err: (error as Error)?.message }, "alerts: evaluation failed; the next tick tries again");
    }
  }

  /** Something changed (a breaker, a grant): a tick soon, coalescing nudges that come together. */
  nudge(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.scheduled = null;
      return this.tick();
    });
  }

  /** Resolves once no tick is scheduled or running (tests wait for a nudge's work with it). */
  async idle(): Promise<void> {
    for (;;) {
      const queue = this.queue;
      await this.scheduled;
      await queue;
      if (this.scheduled === null && this.queue === queue) return;
    }
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.idle();
  }

  /** "Send test": one alert to the channel now, and what happened; audited. */
  async test(channelId: string, actor: Actor): Promise<AlertTestResult> {
    const row = await this.channels.getRow(channelId);
    const now = this.ctx.clock();
    const alert = testAlert(newId(), row.name, this.ctx.config.publicUrl, now);
    const outcome = await this.sender.send(row, alert, null);
    const result: AlertTestResult = {
      outcome: outcome.status,
      channel: { id: row.id, name: row.name, type: row.type },
      responseStatus: outcome.responseStatus ?? null,
      ms: outcome.ms,
      error: outcome.error ?? null,
      message: outcome.messageId ? { id: outcome.messageId, server: outcome.serverName ?? "" } : null,
    };
    await writeAudit(
      this.ctx.db,
      actor,
      {
        action: "alerts.channel.test",
        targetType: "alert_channel",
        targetId: row.id,
        after: { outcome: result.outcome, responseStatus: result.responseStatus, error: result.error?.code ?? null },
      },
      now,
    );
    return result;
  }
}
