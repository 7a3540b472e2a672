/**
 * What the storage drills (PostgreSQL restarted, disk full) share: a database of their own
 * prepared for a `mailroom serve` process (an SMTP server as the default, an API token), a
 * client that keeps submitting messages through the API and notes what was accepted and
 * what was refused, and the count of what arrived. (The delivery drills' helpers, in
 * drill.ts, queue into a fresh SQLite database instead.)
 */
import { bootstrap, createMailroom } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { systemActor } from "../../src/core/audit.js";
import type { SmtpPeer } from "../peers/smtp-peer.js";

/** Bootstraps the database `env` points at, with the peer as the default server; returns an API token. */
export async function prepareDatabase(env: Record<string, string>, peer: SmtpPeer): Promise<string> {
  const mailroom = createMailroom(loadConfig({ MAILROOM_LOG_LEVEL: "silent", ...env }));
  try {
    await bootstrap(mailroom);
    await mailroom.servers.create(
      {
        name: "Peer",
        driver: "smtp",
        fromAddress: "app@example.com",
        isDefault: true,
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
    const { token } = await mailroom.tokens.create({ name: "drill", permissions: ["messages.send"] }, systemActor, null);
    return token;
  } finally {
    await mailroom.close();
  }
}

/** GET /readyz: the status and the body. */
export async function readiness(
  url: string,
): Promise<{ status: number; body: { status: string; code?: string; message?: string } }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: await res.json() };
}

/**
 * Submits batches of messages, one request after the other, until stopped. A message counts
 * as sent once the API answered 202; a refused batch is remembered by status and code.
 */
export class Submitter {
  /** Subjects of every message the API accepted. */
  readonly accepted: string[] = [];
  /** Every refusal: HTTP status, code and message. */
  readonly refusals: { status: number; code: string; message: string }[] = [];
  private running = true;
  private next = 0;
  private readonly done: Promise<void>;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly prefix: string,
    /** Messages in the first request: a backlog, so that deliveries are under way. */
    private backlog = 5,
    private readonly batch = 5,
  ) {
    this.done = this.loop();
  }

  refused(code: string): number {
    return this.refusals.filter((r) => r.code === code).length;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const subjects = Array.from({ length: this.backlog }, () => `${this.prefix} ${++this.next}`);
      this.backlog = this.batch;
      let res: Response;
      try {
        res = await fetch(`${this.url}/api/messages/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
          body: JSON.stringify({ messages: subjects.map((subject) => ({ to: "rcpt@example.net", subject, text: "drill" })) }),
        });
      } catch (error) {
        // The process is gone: the drill's assertions say so.
        this.refusals.push({ status: 0, code: "no_answer", message: (error as Error).message });
        return;
      }
      const body = await res.json();
      if (res.status === 202) this.accepted.push(...subjects);
      else this.refusals.push({ status: res.status, code: body.code, message: body.message });
    }
  }
}

export interface ArrivalCount {
  /** Accepted by the API (202). */
  sent: number;
  /** Accepted messages that arrived at least once. */
  unique: number;
  /** Accepted messages that arrived more than once. */
  duplicates: number;
  /** Accepted messages that never arrived. */
  lost: number;
}

export function countArrivals(accepted: string[], peer: SmtpPeer): ArrivalCount {
  const arrivals = new Map<string, number>();
  for (const m of peer.received) arrivals.set(m.subject ?? "", (arrivals.get(m.subject ?? "") ?? 0) + 1);
  const unique = accepted.filter((s) => arrivals.has(s)).length;
  return {
    sent: accepted.length,
    unique,
    duplicates: accepted.filter((s) => (arrivals.get(s) ?? 0) > 1).length,
    lost: accepted.length - unique,
  };
}

/** Resolves once every accepted message has arrived at the peer, or rejects after `timeoutMs`. */
export async function allArrived(accepted: string[], peer: SmtpPeer, timeoutMs = 60_000): Promise<void> {
  const wanted = new Set(accepted);
  const arrived = () => new Set(peer.received.map((m) => m.subject).filter((s) => s !== undefined && wanted.has(s))).size;
  // Each arrival is an event: wait for the next one rather than poll.
  while (arrived() < wanted.size) {
    await peer.waitForMessages(peer.received.length + 1, timeoutMs).catch(() => {
      throw new Error(`${wanted.size - arrived()} of ${wanted.size} accepted messages did not arrive in ${timeoutMs} ms`);
    });
  }
}
