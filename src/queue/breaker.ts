/**
 * A circuit breaker per email server, kept in the database (server_breakers) so every
 * process on a shared PostgreSQL sees one state. Server problems (login, TLS, DNS,
 * unreachable: FailureKind "server") open it after `threshold` in a row; while open the
 * server is `failing`, its mail is held and not attempted, and one process at a time runs a
 * probe (src/queue/prober.ts) on the schedule. A passing probe closes it and releases the
 * held mail with fresh attempts. The server's status itself (fault = 'failing') is the
 * "open" flag; this table holds the counters and the probe schedule.
 */
import { type Kysely, sql } from "kysely";
import type { AppContext } from "../core/context.js";
import { type EmailServerService, requestProbe } from "../core/email-servers.js";
import { iso } from "../kernel/ids.js";
import type { Database, ServerBreakersTable } from "../storage/schema.js";

export interface BreakerOptions {
  /** Server-problem results in a row that open the breaker. */
  threshold: number;
  /** Waits before each probe after opening; the last one repeats (default 30 s, 1, 2, 5, 10, then 15 min). */
  probeScheduleMs: number[];
  /** How long a claimed probe is another process's to leave alone. */
  probeLeaseMs: number;
}

/** The wait before the probe that follows `failedProbes` failed ones. */
export function probeDelay(failedProbes: number, schedule: number[]): number {
  return schedule[Math.min(Math.max(failedProbes, 0), schedule.length - 1)];
}

/** What the API shows of a server's breaker. */
export interface BreakerView {
  state: "closed" | "open";
  /** Server-problem results in a row (resets on a success). */
  consecutiveFailures: number;
  openedAt: string | null;
  /** When the next probe runs (open only); now or earlier means at the next poll. */
  nextProbeAt: string | null;
  /** Probes that failed since it opened. */
  failedProbes: number;
  lastProbeAt: string | null;
  lastProbeError: string | null;
  probing: boolean;
  /** Messages of this server waiting for it: held. */
  heldMessages: number;
}

export interface ProbeClaim {
  serverId: string;
  /** The server's updated_at when claimed: a probe of settings since replaced proves nothing. */
  version: number;
}

export class Breakers {
  /** Hears each opening and closing once it is committed (alerts: src/app.ts wires it). */
  onTransition: (serverId: string, state: "open" | "closed") => void = () => {};

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly options: BreakerOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /**
   * Counts one server-problem result. Opens the breaker when the count reaches the
   * threshold; answers whether it is open now (the caller then holds the message).
   */
  async recordServerProblem(serverId: string, detail: string): Promise<boolean> {
    const now = this.clock();
    const row = await this.db
      .insertInto("server_breakers")
      .values({ server_id: serverId, consecutive_failures: 1, probes: 0, updated_at: now })
      .onConflict((oc) =>
        oc.column("server_id").doUpdateSet({
          consecutive_failures: sql`server_breakers.consecutive_failures + 1`,
          updated_at: now,
        }),
      )
      .returning(["consecutive_failures", "opened_at"])
      .executeTakeFirstOrThrow();
    if (row.opened_at !== null) return true;
    if (Number(row.consecutive_failures) < this.options.threshold) return false;
    await this.open(serverId, detail);
    return true;
  }

  /** A success through the server: the run of server problems is over. */
  async recordSuccess(serverId: string): Promise<void> {
    await this.db
      .updateTable("server_breakers")
      .set({ consecutive_failures: 0, updated_at: this.clock() })
      .where("server_id", "=", serverId)
      .where("consecutive_failures", ">", 0)
      .execute();
  }

  /** Opens the breaker (once, whoever gets there first): the server turns failing, its queued mail is held. */
  async open(serverId: string, detail: string): Promise<void> {
    const now = this.clock();
    const opened = await this.db.transaction().execute(async (trx) => {
      const state = {
        opened_at: now,
        next_probe_at: now + probeDelay(0, this.options.probeScheduleMs),
        probes: 0,
        probe_owner: null,
        probe_until: null,
        updated_at: now,
      };
      const opened = await trx
        .insertInto("server_breakers")
        .values({ server_id: serverId, consecutive_failures: 0, ...state })
        .onConflict((oc) => oc.column("server_id").doUpdateSet(state).where("server_breakers.opened_at", "is", null))
        .returning("server_id")
        .executeTakeFirst();
      if (opened) await this.servers.setFault(serverId, "failing", detail, trx);
      return opened !== undefined;
    });
    if (opened) this.onTransition(serverId, "open");
  }

  /**
   * Claims up to `limit` due probes for `owner`: servers that are failing whose next probe
   * is due and that no other process is probing. A conditional write, so two processes
   * never probe one server at once.
   */
  async claimDueProbes(owner: string, limit: number, only?: string): Promise<ProbeClaim[]> {
    const now = this.clock();
    let candidates = this.db
      .selectFrom("email_servers as s")
      .leftJoin("server_breakers as b", "b.server_id", "s.id")
      .select(["s.id", "s.updated_at"])
      .where("s.fault", "=", "failing")
      .where((eb) => eb.or([eb("b.next_probe_at", "is", null), eb("b.next_probe_at", "<=", now)]))
      .where((eb) => eb.or([eb("b.probe_until", "is", null), eb("b.probe_until", "<=", now)]))
      .orderBy(sql`coalesce(b.next_probe_at, 0)`)
      .limit(limit);
    if (only) candidates = candidates.where("s.id", "=", only);
    const claims: ProbeClaim[] = [];
    for (const candidate of await candidates.execute()) {
      const until = now + this.options.probeLeaseMs;
      // A server turned failing elsewhere (an OAuth client refused) may have no row yet.
      const claimed = await this.db
        .insertInto("server_breakers")
        .values({
          server_id: candidate.id,
          consecutive_failures: 0,
          opened_at: now,
          next_probe_at: now,
          probes: 0,
          probe_owner: owner,
          probe_until: until,
          updated_at: now,
        })
        .onConflict((oc) =>
          oc
            .column("server_id")
            .doUpdateSet({
              probe_owner: owner,
              probe_until: until,
              // Not NULL while probing: an edit meanwhile sets NULL, which the result keeps.
              next_probe_at: now,
              opened_at: sql`coalesce(server_breakers.opened_at, ${now})`,
              updated_at: now,
            })
            .where((eb) =>
              eb.and([
                eb.or([eb("server_breakers.next_probe_at", "is", null), eb("server_breakers.next_probe_at", "<=", now)]),
                eb.or([eb("server_breakers.probe_until", "is", null), eb("server_breakers.probe_until", "<=", now)]),
              ]),
            ),
        )
        .returning("server_id")
        .executeTakeFirst();
      if (claimed) claims.push({ serverId: candidate.id, version: Number(candidate.updated_at) });
    }
    return claims;
  }

  /**
   * A probe passed: closes the breaker and releases the held mail with fresh attempts.
   * Answers false (and changes nothing but the lease) when the settings changed during the
   * probe: what passed is not what is saved, so another probe is due at once.
   */
  async probePassed(claim: ProbeClaim, owner: string): Promise<boolean> {
    const now = this.clock();
    const closed = await this.db.transaction().execute(async (trx) => {
      const server = await trx
        .selectFrom("email_servers")
        .select("updated_at")
        .where("id", "=", claim.serverId)
        .executeTakeFirst();
      const current = server !== undefined && Number(server.updated_at) === claim.version;
      const closed = await trx
        .updateTable("server_breakers")
        .set(
          current
            ? {
                consecutive_failures: 0,
                opened_at: null,
                next_probe_at: null,
                probes: 0,
                probe_owner: null,
                probe_until: null,
                last_probe_at: now,
                last_probe_error: null,
                updated_at: now,
              }
            : { probe_owner: null, probe_until: null, next_probe_at: null, updated_at: now },
        )
        .where("server_id", "=", claim.serverId)
        .where("probe_owner", "=", owner)
        .executeTakeFirst();
      if (!current || Number(closed.numUpdatedRows) !== 1) return false;
      await this.servers.setFault(claim.serverId, null, null, trx);
      return true;
    });
    if (closed) this.onTransition(claim.serverId, "closed");
    return closed;
  }

  /** A probe failed: the next one waits the schedule's next step. */
  async probeFailed(claim: ProbeClaim, owner: string, error: string): Promise<void> {
    const now = this.clock();
    const row = await this.db
      .selectFrom("server_breakers")
      .select("probes")
      .where("server_id", "=", claim.serverId)
      .executeTakeFirst();
    const failed = Number(row?.probes ?? 0) + 1;
    await this.db
      .updateTable("server_breakers")
      .set({
        probes: failed,
        next_probe_at: now + probeDelay(failed, this.options.probeScheduleMs),
        probe_owner: null,
        probe_until: null,
        last_probe_at: now,
        last_probe_error: error.slice(0, 2000),
        updated_at: now,
      })
      .where("server_id", "=", claim.serverId)
      .where("probe_owner", "=", owner)
      // An edit during the probe asked for another at once: keep that.
      .where("next_probe_at", "is not", null)
      .execute();
    // After an edit (next_probe_at NULL) only the lease goes, so the next poll probes again.
    await this.db
      .updateTable("server_breakers")
      .set({ probe_owner: null, probe_until: null, last_probe_at: now, last_probe_error: error.slice(0, 2000), updated_at: now })
      .where("server_id", "=", claim.serverId)
      .where("probe_owner", "=", owner)
      .execute();
  }

  /** Gives a probe back untried (shutdown). */
  async releaseProbe(claim: ProbeClaim, owner: string): Promise<void> {
    await this.db
      .updateTable("server_breakers")
      .set({ probe_owner: null, probe_until: null, updated_at: this.clock() })
      .where("server_id", "=", claim.serverId)
      .where("probe_owner", "=", owner)
      .execute();
  }

  /** The next probe runs at once (after an edit, or "Check now"). */
  async probeSoon(serverId: string, db: Kysely<Database> = this.db): Promise<void> {
    await requestProbe(db, serverId, this.clock());
  }

  async view(serverId: string): Promise<BreakerView> {
    const [row, held] = await Promise.all([
      this.db.selectFrom("server_breakers").selectAll().where("server_id", "=", serverId).executeTakeFirst(),
      this.db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("server_id", "=", serverId)
        .where("status", "=", "held")
        .executeTakeFirstOrThrow(),
    ]);
    const server = await this.db.selectFrom("email_servers").select("fault").where("id", "=", serverId).executeTakeFirst();
    return breakerView(row, server?.fault === "failing", Number(held.n), this.clock());
  }
}

function breakerView(row: ServerBreakersTable | undefined, open: boolean, held: number, now: number): BreakerView {
  const nextProbe = open ? (row?.next_probe_at ?? now) : null;
  return {
    state: open ? "open" : "closed",
    consecutiveFailures: Number(row?.consecutive_failures ?? 0),
    openedAt: open ? iso(row?.opened_at ?? null) : null,
    nextProbeAt: nextProbe === null ? null : iso(Number(nextProbe)),
    failedProbes: open ? Number(row?.probes ?? 0) : 0,
    lastProbeAt: iso(row?.last_probe_at ?? null),
    lastProbeError: open ? (row?.last_probe_error ?? null) : null,
    probing: row?.probe_until != null && Number(row.probe_until) > now,
    heldMessages: held,
  };
}
