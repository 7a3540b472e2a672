import { randomBytes } from "node:crypto";
import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import { loadOutgoing } from "../core/messages.js";
import { DeliveryError } from "../kernel/transport.js";
import type { Metrics } from "../metrics.js";
import type { EmailServersTable, MessagesTable } from "../storage/schema.js";
import { retryDelay } from "./backoff.js";
import { type AttemptRecord, claimDueMessages, type Outcome, releaseLeases, settleMessage } from "./outbox.js";
import { RateLimiter } from "./rate-limit.js";
import type { TransportCache } from "./transports.js";

export interface WorkerOptions {
  /** Messages sent at once by this process. */
  concurrency: number;
  /** How long a claim lasts before another worker may take the message over. */
  leaseMs: number;
  /** How often an idle worker looks for due messages (enqueues in this process wake it at once). */
  pollMs: number;
  backoff: number[];
}

// Transient failures that, once the attempts run out, say the server itself is unreachable.
const UNREACHABLE = new Set([
  "connection_refused",
  "connection_timeout",
  "dns_not_found",
  "connection_dropped",
  "provider_unavailable",
]);

// Longer waits (a daily limit) put the message back in the queue instead.
const MAX_INLINE_WAIT_MS = 5000;

function asDeliveryError(error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error;
  return new DeliveryError("internal_error", "transient", (error as Error)?.message ?? String(error));
}

/** Claims due messages from the outbox and delivers them through their server's transport. */
export class DeliveryWorker {
  readonly owner = `${process.pid}-${randomBytes(4).toString("hex")}`;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly inFlight = new Map<string, Promise<void>>();
  private wakeUp: (() => void) | null = null;
  private readonly limiter: RateLimiter;

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly transports: TransportCache,
    private readonly options: WorkerOptions,
    private readonly metrics?: Metrics,
  ) {
    this.limiter = new RateLimiter(ctx.db);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Stops claiming; waits up to `graceMs` for sends under way, then gives the rest back. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake();
    await this.loopDone;
    const pending = [...this.inFlight.values()];
    await Promise.race([Promise.allSettled(pending), new Promise((r) => setTimeout(r, graceMs).unref())]);
    await releaseLeases(this.ctx.db, this.owner, [...this.inFlight.keys()]);
  }

  wake(): void {
    this.wakeUp?.();
  }

  private async loop(): Promise<void> {
    let claimFailures = 0;
    while (this.running) {
      const free = this.options.concurrency - this.inFlight.size;
      let claimedAll = false;
      // Claim in groups (a quarter of the concurrency at least), not one message per completion.
      if (free >= Math.max(1, Math.floor(this.options.concurrency / 4)) || this.inFlight.size === 0) {
        const startedAt = Date.now();
        try {
          const claimed = await claimDueMessages(this.ctx.db, this.ctx.storage.dialect, this.owner, free, this.options.leaseMs);
          // Each server is read once per batch, so a settings change applies to the next batch.
          const servers = new Map<string, Promise<EmailServersTable | undefined>>();
          for (const row of claimed) {
            if (!servers.has(row.server_id)) servers.set(row.server_id, this.serverRow(row.server_id));
            const done = this.deliver(row, servers.get(row.server_id) as Promise<EmailServersTable | undefined>)
              .catch((error) => this.ctx.log.error({ err: error, message: row.id }, "delivery crashed"))
              .finally(() => {
                this.inFlight.delete(row.id);
                this.wake();
              });
            this.inFlight.set(row.id, done);
          }
          claimedAll = claimed.length === free;
          claimFailures = 0;
          // Only an outage of the database ends here: a full disk ends when /readyz finds room.
          this.ctx.storage.health.succeeded("read", startedAt);
        } catch (error) {
          // A database outage is logged once, by the storage health; the claims back off meanwhile.
          if (!this.ctx.storage.health.failed(error))
            this.ctx.log.warn({ err: error }, "could not claim messages; trying again shortly");
          claimFailures++;
        }
      }
      if (!claimedAll && this.running) await this.idle(claimFailures);
    }
  }

  /** Waits a poll, or longer after failed claims: twice as long each time, up to 10 s. */
  private idle(failures = 0): Promise<void> {
    const { pollMs } = this.options;
    const wait = Math.min(pollMs * 2 ** Math.min(failures, 10), Math.max(pollMs, 10_000));
    return new Promise((resolve) => {
      const timer = setTimeout(done, wait);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  private async serverRow(id: string): Promise<EmailServersTable | undefined> {
    const row = await this.servers.findRow(id);
    if (!row) await this.transports.forget(id);
    return row;
  }

  private async deliver(message: MessagesTable, serverRow: Promise<EmailServersTable | undefined>): Promise<void> {
    const server = await serverRow;
    if (!server) {
      await this.settle(message, {
        status: "failed",
        errorCode: "email_server_not_found",
        error: `The email server '${message.server_name}' was deleted.`,
      });
      return;
    }
    if (server.status !== "ready" && server.status !== "failing") {
      await this.settle(message, {
        status: "held",
        errorCode: "server_not_ready",
        error: `The server is ${server.status.replaceAll("_", " ")}; the message goes out once it is fixed.`,
        uncountAttempt: true,
      });
      return;
    }
    const wait = await this.limiter.reserve(server);
    if (wait > MAX_INLINE_WAIT_MS) {
      await this.settle(message, { status: "queued", nextAttemptAt: Date.now() + wait, uncountAttempt: true });
      return;
    }
    // A short wait for a per-second slot is spent holding the lease, so the slot stays ours.
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));

    const startedAt = Date.now();
    const attempt: AttemptRecord = {
      messageId: message.id,
      serverId: server.id,
      serverName: server.name,
      startedAt,
      durationMs: 0,
      outcome: "sent",
    };
    try {
      const result = await this.transports.get(server).send(await loadOutgoing(this.ctx.db, message));
      attempt.durationMs = Date.now() - startedAt;
      attempt.providerMessageId = result.providerMessageId;
      attempt.remote = { response: result.response };
      await this.settle(message, { status: "sent", errorCode: null, providerMessageId: result.providerMessageId }, attempt);
      if (server.fault === "failing") await this.servers.setFault(server.id, null, null);
    } catch (thrown) {
      const error = asDeliveryError(thrown);
      attempt.durationMs = Date.now() - startedAt;
      attempt.outcome = error.kind;
      attempt.errorCode = error.code;
      attempt.remote = error.remote;
      await this.settle(message, await this.outcomeOf(message, server, error), attempt);
    }
  }

  private async outcomeOf(message: MessagesTable, server: EmailServersTable, error: DeliveryError): Promise<Outcome> {
    const failure = { errorCode: error.code, error: error.message };
    switch (error.kind) {
      case "recipient":
        return { status: "failed", ...failure };
      case "reauthorization":
        // The token store has already marked the server; held mail goes out after re-authorization.
        return { status: "held", ...failure };
      case "server":
        await this.markFailing(server, error);
        return { status: "held", ...failure };
      case "transient": {
        if (message.attempts < message.max_attempts) {
          const delay = retryDelay(message.attempts, this.options.backoff, error.retryAfterMs);
          return { status: "queued", nextAttemptAt: Date.now() + delay, ...failure };
        }
        if (UNREACHABLE.has(error.code)) {
          await this.markFailing(server, error);
          return { status: "held", ...failure };
        }
        return { status: "failed", ...failure };
      }
    }
  }

  private async markFailing(server: EmailServersTable, error: DeliveryError): Promise<void> {
    await this.servers.setFault(server.id, "failing", `${error.message} (${error.code}, ${new Date().toISOString()})`);
  }

  private async settle(message: MessagesTable, outcome: Outcome, attempt?: AttemptRecord): Promise<void> {
    const applied = await this.ctx.commits.run((trx) => settleMessage(trx, this.owner, { id: message.id, outcome, attempt }));
    if (!applied) this.ctx.log.warn({ message: message.id }, "lease lost before the result was recorded");
    if (applied && attempt) {
      this.metrics?.attempts.inc({ server: attempt.serverName, outcome: attempt.outcome });
      if (outcome.status === "sent") {
        this.metrics?.deliveryLatency.observe({ server: attempt.serverName }, (Date.now() - message.created_at) / 1000);
      }
    }
  }
}
