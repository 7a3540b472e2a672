import { randomBytes } from "node:crypto";
import type { AppContext } from "../core/context.js";
import { listensTo } from "../core/message-events.js";
import { loadOutgoing } from "../core/messages.js";
import { DeliveryError } from "../kernel/transport.js";
import type { Metrics } from "../metrics.js";
import { BatchWriter } from "../storage/group-commit.js";
import type { EmailServersTable, MessagesTable } from "../storage/schema.js";
import { retryDelay } from "./backoff.js";
import type { Breakers } from "./breaker.js";
import {
  type AttemptRecord,
  type Claimed,
  type ClaimedServer,
  claimWithServers,
  type Outcome,
  releaseLeases,
  renewLeases,
  type ServerQuota,
  type Settlement,
  settleMessages,
} from "./outbox.js";
import type { ServerProber } from "./prober.js";
import { RateLimiter } from "./rate-limit.js";
import { failoverFor, isRouted, moveOutcome, Router } from "./routing.js";
import type { TransportCache } from "./transports.js";

export interface WorkerOptions {
  /** Messages sent at once by this process. */
  concurrency: number;
  /** Connections per server: a server has at most twice this many messages in flight in this process. */
  poolSize: number;
  /** How long a claim lasts before another worker may take the message over; renewed every third of it while sending. */
  leaseMs: number;
  /** How often an idle worker looks for due messages (enqueues in this process wake it at once). */
  pollMs: number;
  backoff: number[];
}

// Longer waits (a daily limit) put the message back in the queue instead.
const MAX_INLINE_WAIT_MS = 5000;
// A result that cannot be written is tried again after these waits (doubling), until it lands.
const SETTLE_RETRY_FIRST_MS = 100;
const SETTLE_RETRY_MAX_MS = 5000;

function asDeliveryError(error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error;
  return new DeliveryError("internal_error", "transient", (error as Error)?.message ?? String(error));
}

interface InFlight {
  serverId: string;
  /** When it was claimed (Date.now). */
  since: number;
  /** Still being sent: its slot is not free yet. */
  sending: boolean;
  done: Promise<void>;
}

/**
 * How long a result waits for others to share its write, while other sends are under way
 * (alone, it is written at once); a claim meanwhile carries the waiting results. A write costs
 * about as much as the results in it: a commit on SQLite (`npm run bench -- queue`: 0.39 ms a
 * message in groups of 4, 0.18 in groups of 16), a round trip and a plan on PostgreSQL.
 */
const RESULTS_LINGER_MS = 20;
/** A server that sent within this long is healthy, unless one of its sends is stuck. */
const HEALTHY_FOR_MS = 10_000;
/** A message in flight this long (claimed, not settled) marks its server as not answering. */
const STUCK_AFTER_MS = 5_000;

/**
 * The fewest free slots worth a claim while others are in flight: half the concurrency. A
 * claim has a fixed cost (a commit on SQLite, a round trip on PostgreSQL) whatever it takes,
 * and the half still in flight keep the connections busy meanwhile; a quarter made twice the
 * claims for no more sends in flight (docs/benchmarks.md, issue 17's third pass). Never more
 * than a server that does not answer leaves free (it holds twice its pool at most, see
 * quotas), or the other servers' messages would wait for its timeouts.
 */
function claimGroup({ concurrency, poolSize }: { concurrency: number; poolSize: number }): number {
  return Math.max(1, Math.min(Math.floor(concurrency / 2), concurrency - 2 * poolSize));
}

/** The events a settled result can make (see eventOf in settle.ts). */
const SETTLED_EVENTS = ["sent", "failed", "held"] as const;

/**
 * Claims due messages from the outbox and delivers them through their server's transport.
 * What each failure class does is decided in outcomeOf (see src/transport/failure.ts).
 */
export class DeliveryWorker {
  readonly owner = `${process.pid}-${randomBytes(4).toString("hex")}`;
  private running = false;
  /** Set once stop() has given up waiting: results still unwritten are abandoned. */
  private closed = false;
  private loopDone: Promise<void> = Promise.resolve();
  /** Claimed and not settled: being sent, or sent with the result being written. */
  private readonly inFlight = new Map<string, InFlight>();
  /** Messages being sent, per server and in all: what the concurrency and the servers' caps count. */
  private readonly perServer = new Map<string, number>();
  private sending = 0;
  /** Sent (or otherwise finished) with the result not written yet: never given back, never sent again. */
  private readonly unsettled = new Set<string>();
  private wakeUp: (() => void) | null = null;
  /** A wake that came while the loop was busy (claiming): its next wait ends at once. */
  private wokenWhileBusy = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  /** Servers whose last claim took all it asked for: more may be due. */
  private readonly moreDue = new Set<string>();
  /** Something was queued since the last claim (or a poll passed): the next claim asks every server. */
  private askEveryServer = true;
  /** When each server last sent a message (this process): what makes it healthy. */
  private readonly lastSentAt = new Map<string, number>();
  private readonly limiter: RateLimiter;
  private readonly router: Router;
  /** Results that finish together are written together, in one statement on PostgreSQL. */
  private readonly results: BatchWriter<Settlement, boolean>;
  /** The claim statement under way, if any. */
  private claiming: Promise<unknown> | undefined;

  constructor(
    private readonly ctx: AppContext,
    private readonly transports: TransportCache,
    private readonly options: WorkerOptions,
    private readonly breakers: Breakers,
    private readonly prober: ServerProber,
    private readonly metrics?: Metrics,
  ) {
    this.limiter = new RateLimiter(ctx.db, ctx.clock);
    this.router = new Router(ctx.db, this.limiter);
    this.results = new BatchWriter(
      (settlements) => settleMessages(ctx.db, ctx.storage.dialect, this.owner, settlements, ctx.clock(), ctx.messageEvents),
      200,
      // A claim under way carries the results that are waiting (see loop).
      () => (this.carriesResults() ? this.claiming : undefined),
      () => (this.sending > 0 ? RESULTS_LINGER_MS : 0),
    );
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.closed = false;
    this.loopDone = this.loop();
    this.renewTimer = setInterval(() => void this.renew(), Math.max(Math.floor(this.options.leaseMs / 3), 10));
    this.renewTimer.unref();
    this.prober.start();
  }

  /** Stops claiming; waits up to `graceMs` for sends under way, then gives the rest back. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake();
    await this.loopDone;
    await this.prober.stop();
    const pending = [...this.inFlight.values()].map((f) => f.done);
    await Promise.race([Promise.allSettled(pending), new Promise((r) => setTimeout(r, graceMs).unref())]);
    this.closed = true;
    clearInterval(this.renewTimer);
    // A message whose result is still unwritten was sent: giving it back would send it again.
    const untouched = [...this.inFlight.keys()].filter((id) => !this.unsettled.has(id));
    await releaseLeases(this.ctx.db, this.owner, untouched);
    for (const id of this.unsettled) {
      this.ctx.log.error(
        { message: id },
        "the result of a delivery could not be written; the message is sent again after its lease",
      );
    }
  }

  /**
   * While the loop runs, results that finished are written by the next claim (in its
   * statement on PostgreSQL, its transaction on SQLite), not by a write of their own.
   */
  private carriesResults(): boolean {
    // A result an application listens for is written with its event (settleMessages), in a
    // transaction of its own: the claim's statement does not carry events.
    return this.running && !SETTLED_EVENTS.some((type) => listensTo(this.ctx.messageEvents, type));
  }

  /**
   * PostgreSQL: whether the results waiting should go now, in a claim of their own. Each
   * statement costs a round trip and its planning, so they wait for a group's worth while other
   * sends are under way (those end within milliseconds), or for the linger, after which they
   * are written by a statement of their own (the BatchWriter); alone, at once.
   */
  private resultsDue(): boolean {
    if (this.ctx.storage.dialect !== "postgres" || !this.carriesResults()) return false;
    const waiting = this.results.waiting;
    return waiting > 0 && (this.sending === 0 || waiting >= claimGroup(this.options) / 2);
  }

  /** Messages were queued (here, by another process, or released by a probe): the next claim asks every server. */
  wake(): void {
    this.askEveryServer = true;
    this.wakeLoop();
  }

  private wakeLoop(): void {
    // A completion or an enqueue during a claim must not be lost: the loop would otherwise
    // wait a whole poll with free slots and messages due.
    if (this.wakeUp) this.wakeUp();
    else this.wokenWhileBusy = true;
  }

  private async loop(): Promise<void> {
    let claimFailures = 0;
    while (this.running) {
      // A slot is free once its send has ended: writing the result (batched with others) does
      // not hold the connection. Results being written are bounded too, by a second concurrency.
      const { concurrency } = this.options;
      const free = Math.min(concurrency - this.sending, 2 * concurrency - this.inFlight.size);
      let more = false;
      const plan = this.quotas(free);
      // Claim when a server can take a group (see quotas), or something was queued, or
      // nothing is in flight; the claim writes the results waiting. On PostgreSQL also when
      // enough results wait (resultsDue): one round trip for both.
      const waiting = this.carriesResults() && this.results.waiting > 0;
      const carry = this.resultsDue();
      const group = claimGroup(this.options);
      const wanted = plan.quotas.some((q) => q.limit > 0) || this.askEveryServer;
      if (carry || (wanted && (free >= group || this.inFlight.size === 0))) {
        const startedAt = Date.now();
        try {
          const carried = waiting ? this.results.take() : undefined;
          this.askEveryServer = false;
          const claim = claimWithServers(
            this.ctx.db,
            this.ctx.storage.dialect,
            this.owner,
            { ...plan, limit: Math.max(0, free), leaseMs: this.options.leaseMs, now: this.ctx.clock() },
            carried?.items,
          );
          this.claiming = claim;
          let claimed: Claimed;
          try {
            claimed = await claim;
          } catch (error) {
            // Each result is tried again by itself (settleUntilWritten), whatever failed here.
            carried?.failed(error);
            throw error;
          } finally {
            this.claiming = undefined;
          }
          carried?.done(claimed.settled);
          const { messages, servers } = claimed;
          this.noteClaimed(plan, free, messages);
          this.dispatch(messages, servers);
          // All that was free was taken, or results came meanwhile: go again.
          more = (messages.length > 0 && messages.length === free) || this.resultsDue();
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
      if (!more && this.running) await this.idle(claimFailures);
    }
  }

  /**
   * Each server's free slots. A server that is not known to be healthy has twice its pool
   * size in flight at most: a message on each connection and one ready for it, so a server
   * that never answers holds at most that many of the process's slots; it is claimed for in
   * groups (a pool's worth), not one message per completion. A healthy server (one that sent
   * lately and has no send stuck) may use the process's concurrency but a reserve, since a
   * claim takes a round trip during which its connections keep sending: with only twice its
   * pool they were busy a third of the time (docs/benchmarks.md). The reserve keeps a pool's
   * worth of slots for the other servers if a healthy one stops answering. Servers not named
   * here (nothing in flight, nothing known to be due) get `others`.
   */
  private quotas(free: number): { quotas: ServerQuota[]; others: number } {
    const { poolSize, concurrency } = this.options;
    const group = claimGroup(this.options);
    const now = Date.now();
    const quotas: ServerQuota[] = [];
    for (const id of new Set([...this.perServer.keys(), ...this.lastSentAt.keys(), ...this.moreDue])) {
      const busy = this.perServer.get(id) ?? 0;
      const healthy = this.isHealthy(id, now);
      if (!healthy && busy === 0 && !this.moreDue.has(id)) {
        if (now - (this.lastSentAt.get(id) ?? 0) > HEALTHY_FOR_MS) this.lastSentAt.delete(id);
        continue;
      }
      const cap = healthy ? Math.max(2 * poolSize, concurrency - poolSize) : 2 * poolSize;
      const room = cap - busy;
      const claimable = busy === 0 || room >= (healthy ? Math.min(group, cap) : poolSize);
      quotas.push({ serverId: id, limit: claimable ? Math.max(0, Math.min(free, room)) : 0 });
    }
    return { quotas, others: Math.min(free, 2 * poolSize) };
  }

  /** Which servers may have more due than a claim took: they are claimed for again without waiting for a wake. */
  private noteClaimed(plan: { quotas: ServerQuota[]; others: number }, free: number, claimed: MessagesTable[]): void {
    const got = new Map<string, number>();
    for (const m of claimed) got.set(m.server_id, (got.get(m.server_id) ?? 0) + 1);
    const limits = new Map(plan.quotas.map((q) => [q.serverId, q.limit]));
    const everyLimitReached = claimed.length >= free;
    for (const [id, n] of got) {
      const limit = limits.get(id) ?? plan.others;
      if (n >= limit || everyLimitReached) this.moreDue.add(id);
    }
    for (const [id, limit] of limits) if (limit > 0 && (got.get(id) ?? 0) < limit && !everyLimitReached) this.moreDue.delete(id);
  }

  /** Sent lately, and none of its messages in flight for long (a server that stops answering is capped again). */
  private isHealthy(serverId: string, now: number): boolean {
    const sentAt = this.lastSentAt.get(serverId);
    if (sentAt === undefined || now - sentAt > HEALTHY_FOR_MS) return false;
    for (const f of this.inFlight.values()) {
      if (f.sending && f.serverId === serverId && now - f.since > STUCK_AFTER_MS) return false;
    }
    return true;
  }

  /** Starts each claimed message's delivery; `servers` were read with the claim, so a settings change applies to the next claim. */
  private dispatch(claimed: MessagesTable[], servers: Map<string, ClaimedServer>): void {
    // A deleted server's transport (its pooled connections) goes with it.
    for (const [id, server] of servers) if (!server.row) void this.transports.forget(id);
    for (const row of claimed) {
      if (this.inFlight.has(row.id)) {
        // Its lease ran out while its result was being written (the database was away): it
        // was sent, so it is not sent again; the pending write settles it.
        this.ctx.log.warn({ message: row.id }, "claimed a message whose result is still being written; not sending it again");
        continue;
      }
      const state = servers.get(row.server_id) ?? { row: undefined, failuresInARow: 0 };
      const entry: InFlight = { serverId: row.server_id, since: Date.now(), sending: true, done: Promise.resolve() };
      this.inFlight.set(row.id, entry);
      this.perServer.set(row.server_id, (this.perServer.get(row.server_id) ?? 0) + 1);
      this.sending++;
      const release = () => {
        if (!entry.sending) return;
        entry.sending = false;
        this.sending--;
        const left = (this.perServer.get(row.server_id) ?? 1) - 1;
        if (left > 0) this.perServer.set(row.server_id, left);
        else this.perServer.delete(row.server_id);
        this.wakeLoop();
      };
      entry.done = this.deliver(row, state, release)
        .catch((error) => this.ctx.log.error({ err: error, message: row.id }, "delivery crashed"))
        .finally(() => {
          release();
          this.inFlight.delete(row.id);
          this.wakeLoop();
        });
    }
  }

  /** Waits a poll, or longer after failed claims: twice as long each time, up to 10 s. */
  private idle(failures = 0): Promise<void> {
    const { pollMs } = this.options;
    const wait = Math.min(pollMs * 2 ** Math.min(failures, 10), Math.max(pollMs, 10_000));
    if (this.wokenWhileBusy && failures === 0) {
      this.wokenWhileBusy = false;
      return Promise.resolve();
    }
    this.wokenWhileBusy = false;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // The poll: retries that came due, messages queued by a process that could not tell us.
        this.askEveryServer = true;
        done();
      }, wait);
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

  /** Keeps the leases of everything in flight, so no timeout lets another worker send it too. */
  private async renew(): Promise<void> {
    if (this.renewing || this.inFlight.size === 0) return;
    this.renewing = true;
    try {
      await renewLeases(this.ctx.db, this.owner, [...this.inFlight.keys()], this.options.leaseMs, this.ctx.clock());
    } catch (error) {
      this.ctx.log.warn({ err: error }, "could not renew the leases of messages being sent; trying again");
    } finally {
      this.renewing = false;
    }
  }

  /** `release` frees the message's sending slot once the send has ended (its result is written after). */
  private async deliver(message: MessagesTable, state: ClaimedServer, release: () => void): Promise<void> {
    const server = state.row;
    if (isRouted(message) && (await this.routeAround(message, server))) return;
    if (!server) {
      await this.settle(message, {
        status: "failed",
        errorCode: "email_server_not_found",
        error: `The email server '${message.server_name}' was deleted.`,
      });
      return;
    }
    if (server.status !== "ready") {
      // Failing (its breaker is open) or not configured: held, not attempted. A message tried
      // before keeps its last error (a retry whose result was written after the server was
      // marked failing): why the server failed tells the admin more than that it is failing.
      const why = `The server is ${server.status.replaceAll("_", " ")}; the message goes out once it is fixed.`;
      await this.settle(message, {
        status: "held",
        ...(message.last_error_code ? {} : { errorCode: "server_not_ready", error: why }),
        uncountAttempt: true,
      });
      return;
    }
    const wait = await this.limiter.reserve(server);
    if (wait > MAX_INLINE_WAIT_MS) {
      await this.settle(message, { status: "queued", nextAttemptAt: this.ctx.clock() + wait, uncountAttempt: true });
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
    let outcome: Outcome;
    try {
      const result = await this.transports.get(server).send(await loadOutgoing(this.ctx.db, message));
      attempt.durationMs = Date.now() - startedAt;
      attempt.providerMessageId = result.providerMessageId;
      attempt.remote = { response: result.response };
      outcome = { status: "sent", errorCode: null, providerMessageId: result.providerMessageId };
    } catch (thrown) {
      const error = asDeliveryError(thrown);
      attempt.durationMs = Date.now() - startedAt;
      attempt.outcome = error.kind;
      attempt.errorCode = error.code;
      attempt.remote = error.remote;
      outcome = await this.outcomeOf(message, server, error);
      if (isRouted(message)) outcome = await this.failover(message, server, error, outcome);
    }
    // From here the message is not sent again by this process, whatever the database does.
    this.unsettled.add(message.id);
    release();
    await this.settleUntilWritten(message, outcome, attempt);
    if (outcome.status === "sent") this.lastSentAt.set(server.id, Date.now());
    if (outcome.status === "sent" && state.failuresInARow > 0) {
      state.failuresInARow = 0;
      await this.breakers
        .recordSuccess(server.id)
        .catch((error) => this.ctx.log.warn({ err: error }, "could not reset a breaker"));
    }
  }

  /**
   * Before sending: a server of the route that cannot take the message now (not ready, at its
   * daily limit, may not send its From, deleted) hands it to the next one that can, and the
   * attempt log says why. True when the message was settled here.
   */
  private async routeAround(message: MessagesTable, server: EmailServersTable | undefined): Promise<boolean> {
    const skip = await this.router.skipOf(server, message);
    if (!skip) return false;
    const next = await this.router.next(message, "any");
    const skipped: AttemptRecord = {
      messageId: message.id,
      serverId: server?.id ?? message.server_id,
      serverName: server?.name ?? message.server_name,
      startedAt: Date.now(),
      durationMs: 0,
      outcome: "skipped",
      errorCode: skip.code,
      remote: { response: skip.text },
    };
    if (next) {
      await this.settle(message, moveOutcome(next.server, skip), skipped);
      return true;
    }
    if (skip.code === "from_not_allowed") {
      await this.settle(
        message,
        { status: "failed", errorCode: skip.code, error: `${skip.text} No server of its route may.` },
        skipped,
      );
      return true;
    }
    // Nothing else can take it either: held, or waiting for the daily window, as without a route.
    return false;
  }

  /** After a failure: moves a routed message on by the failure's class (src/queue/routing.ts failoverFor). */
  private async failover(message: MessagesTable, server: EmailServersTable, error: DeliveryError, onThisServer: Outcome) {
    const which = failoverFor(error.kind, onThisServer);
    if (!which) return onThisServer;
    const next = await this.router.next(message, which).catch((e: unknown) => {
      this.ctx.log.warn({ err: e, message: message.id }, "could not look for another server of the route");
      return null;
    });
    if (!next) return onThisServer;
    // Back round to an earlier server: every server of the route refused just now, so wait as this one would.
    const at = next.wrapped ? (onThisServer.nextAttemptAt ?? Date.now()) : Date.now();
    return moveOutcome(next.server, { code: error.code, text: `'${server.name}': ${error.message}` }, at);
  }

  /** The failure policy: what each class of failure does to the message (and to the server). */
  private async outcomeOf(message: MessagesTable, server: EmailServersTable, error: DeliveryError): Promise<Outcome> {
    const failure = { errorCode: error.code, error: error.message };
    const retryAt = () => this.ctx.clock() + retryDelay(message.attempts, this.options.backoff, error.retryAfterMs);
    switch (error.kind) {
      case "recipient":
      case "message":
        return { status: "failed", ...failure };
      case "reauthorization":
        // The token store has already marked the server; held mail goes out after re-authorization.
        return { status: "held", ...failure };
      case "rate_limited":
        // Slowing down as asked is not the message's fault: no attempt is used up.
        return { status: "queued", nextAttemptAt: retryAt(), uncountAttempt: true, ...failure };
      case "server": {
        const detail = `${error.message} (${error.code}, ${new Date().toISOString()})`;
        const open = await this.breakers.recordServerProblem(server.id, detail).catch((e: unknown) => {
          this.ctx.log.warn({ err: e }, "could not record a server problem");
          return false;
        });
        if (open) return { status: "held", ...failure };
        // Not the message's fault either: it never fails for it, it waits at the longest step.
        if (message.attempts >= message.max_attempts) {
          return { status: "queued", nextAttemptAt: retryAt(), uncountAttempt: true, ...failure };
        }
        return { status: "queued", nextAttemptAt: retryAt(), ...failure };
      }
      case "transient":
        if (message.attempts < message.max_attempts) return { status: "queued", nextAttemptAt: retryAt(), ...failure };
        return { status: "failed", ...failure };
    }
  }

  /**
   * Writes the result, and if the write fails (database away, disk full) keeps it and tries
   * again with backoff until it lands; the lease is renewed meanwhile, since the message
   * stays in flight. Only a process that dies first leaves it to be sent again.
   */
  private async settleUntilWritten(message: MessagesTable, outcome: Outcome, attempt: AttemptRecord): Promise<void> {
    let wait = SETTLE_RETRY_FIRST_MS;
    for (;;) {
      try {
        await this.settle(message, outcome, attempt);
        this.unsettled.delete(message.id);
        return;
      } catch (error) {
        if (this.closed) return;
        this.ctx.log.warn(
          { err: error, message: message.id, retryInMs: wait },
          "could not write a delivery result; keeping it and trying again",
        );
        await new Promise((r) => setTimeout(r, wait).unref());
        wait = Math.min(wait * 2, SETTLE_RETRY_MAX_MS);
      }
    }
  }

  private async settle(message: MessagesTable, outcome: Outcome, attempt?: AttemptRecord): Promise<void> {
    const applied = await this.results.write({ id: message.id, outcome, attempt, serverId: message.server_id });
    if (!applied) this.ctx.log.warn({ message: message.id }, "lease lost before the result was recorded");
    // Back in the queue (moved to the next server of its route, or due again soon): the next
    // claim asks every server, as after an enqueue.
    if (applied && outcome.status === "queued") this.wake();
    if (applied && attempt) {
      this.metrics?.attempts.inc({ server: attempt.serverName, outcome: attempt.outcome });
      if (outcome.status === "sent") {
        this.metrics?.deliveryLatency.observe({ server: attempt.serverName }, (Date.now() - message.created_at) / 1000);
      }
    }
  }
}
