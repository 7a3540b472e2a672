import { randomBytes } from "node:crypto";
import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import type { Breakers, ProbeClaim } from "./breaker.js";
import { type TestReport, testServer } from "./server-test.js";
import type { TransportCache } from "./transports.js";

export interface ProberOptions {
  /** How often to look for due probes. */
  pollMs: number;
}

/** Probes claimed per look: a few failing servers are probed side by side. */
const PROBES_AT_ONCE = 4;

/**
 * Runs the probes of failing servers: the same check as "Test → check" (connect, TLS,
 * login, no mail), never a message. One process probes a server at a time (a lease in
 * server_breakers); a pass closes the breaker and releases the held mail.
 */
export class ServerProber {
  readonly owner = `probe-${process.pid}-${randomBytes(4).toString("hex")}`;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeUp: (() => void) | null = null;
  /** Called when a probe passed and held mail went back to the queue (wakes the worker). */
  onReleased: () => void = () => {};

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly transports: TransportCache,
    private readonly breakers: Breakers,
    private readonly options: ProberOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake();
    await this.loopDone;
  }

  wake(): void {
    this.wakeUp?.();
  }

  /**
   * "Check now": probes the server at once. For a failing server that is its probe (a pass
   * releases its mail); null when another process is probing it right now.
   */
  async checkNow(serverId: string): Promise<TestReport | null> {
    const row = await this.servers.getRow(serverId);
    if (row.fault !== "failing") return this.check(row.id).then((r) => r.report);
    await this.breakers.probeSoon(row.id);
    const [claim] = await this.breakers.claimDueProbes(this.owner, 1, row.id);
    return claim ? this.probe(claim) : null;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const claims = await this.breakers.claimDueProbes(this.owner, PROBES_AT_ONCE);
        // Not awaited: a probe of a server that never answers must not delay the others.
        for (const claim of claims) {
          void this.probe(claim).catch((error) =>
            this.ctx.log.warn({ err: error, serverId: claim.serverId }, "a probe could not run"),
          );
        }
      } catch (error) {
        this.ctx.log.warn({ err: error }, "could not look for servers to probe; trying again shortly");
      }
      if (this.running) await this.idle();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.pollMs);
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

  private async check(serverId: string) {
    const row = await this.servers.getRow(serverId);
    const report = await testServer(this.transports, row, this.servers.secretsOf(row), {
      mode: "check",
      to: row.from_address || "postmaster@mailroom.localhost",
    });
    return { row, report };
  }

  private async probe(claim: ProbeClaim): Promise<TestReport> {
    const { row, report } = await this.check(claim.serverId);
    // What was tested is what is saved now; an edit after this read asks for another probe.
    const tested = { ...claim, version: Number(row.updated_at) };
    if (report.ok) {
      if (await this.breakers.probePassed(tested, this.owner)) {
        this.ctx.log.info({ server: row.name }, "probe passed: the server is ready again and its held mail goes out");
        this.onReleased();
      }
    } else {
      const error = report.error ? `${report.error.code}: ${report.error.message}` : "the check failed";
      await this.breakers.probeFailed(tested, this.owner, error);
      this.ctx.log.info({ server: row.name, error }, "probe failed: the server stays failing, its mail held");
    }
    return report;
  }
}
