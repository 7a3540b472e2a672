/**
 * Failover along a message's route (docs/routing.md). A routed message carries the ordered
 * server ids it may go through (messages.route_servers) and its current one (server_id);
 * when that server cannot take it, or fails it for a reason another server would not share,
 * the message moves to the next server that can, and the attempt log says why.
 */
import type { Kysely } from "kysely";
import { serverMaySendAs } from "../core/routes.js";
import type { ErrorCode } from "../kernel/errors.js";
import type { FailureKind } from "../kernel/transport.js";
import type { Database, EmailServersTable, MessagesTable } from "../storage/schema.js";
import type { Outcome } from "./outbox.js";
import type { RateLimiter } from "./rate-limit.js";

/** Why a server of the route cannot take the message now. */
export interface Skip {
  code: Extract<ErrorCode, "server_not_ready" | "daily_limit_reached" | "from_not_allowed" | "email_server_not_found">;
  text: string;
}

/**
 * Whether a failure moves the message on, by class: a server problem, a rate limit or a lost
 * grant at once (to any other server of the route); a temporary error only once its retries
 * on this server are spent (to a later server only, so it never comes back round); a
 * permanent refusal of a recipient or of the message never (another server would refuse it too).
 */
export function failoverFor(kind: FailureKind, onThisServer: Outcome): "any" | "later" | null {
  switch (kind) {
    case "server":
    case "rate_limited":
    case "reauthorization":
      return "any";
    case "transient":
      return onThisServer.status === "failed" ? "later" : null;
    case "recipient":
    case "message":
      return null;
  }
}

export function isRouted(message: MessagesTable): boolean {
  return message.route_servers != null;
}

function routeOf(message: MessagesTable): string[] {
  return message.route_servers ? (JSON.parse(message.route_servers) as string[]) : [message.server_id];
}

export class Router {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly limiter: RateLimiter,
  ) {}

  /** Why `server` cannot take the message now, or null if it can. */
  async skipOf(server: EmailServersTable | undefined, message: MessagesTable): Promise<Skip | null> {
    if (!server) return { code: "email_server_not_found", text: `The email server '${message.server_name}' was deleted.` };
    if (server.status !== "ready") {
      return { code: "server_not_ready", text: `'${server.name}' is ${server.status.replaceAll("_", " ")}.` };
    }
    if (!serverMaySendAs(server, message.from_address)) {
      return { code: "from_not_allowed", text: `'${server.name}' may not send as ${message.from_address}.` };
    }
    if (await this.limiter.dailyLimitReached(server)) {
      return { code: "daily_limit_reached", text: `'${server.name}' has sent its messages-per-day limit.` };
    }
    return null;
  }

  /**
   * The next server of the route that can take the message now: those after the current
   * one in order, then ("any") those before it. Null when none can (or the message has no route).
   */
  async next(message: MessagesTable, which: "any" | "later"): Promise<{ server: EmailServersTable; wrapped: boolean } | null> {
    const route = routeOf(message);
    const at = route.indexOf(message.server_id);
    const after = route.slice(at + 1);
    const candidates = which === "any" ? [...after, ...route.slice(0, Math.max(at, 0))] : after;
    if (candidates.length === 0) return null;
    const rows = await this.db.selectFrom("email_servers").selectAll().where("id", "in", candidates).execute();
    for (const id of candidates) {
      const row = rows.find((r) => r.id === id);
      if (row && !(await this.skipOf(row, message))) return { server: row, wrapped: !after.includes(id) };
    }
    return null;
  }
}

/** The outcome that hands the message to `next` (at `at`: now unless given), saying why it left its server. */
export function moveOutcome(next: EmailServersTable, why: { code: string; text: string }, at = Date.now()): Outcome {
  return {
    status: "queued",
    nextAttemptAt: at,
    moveTo: { serverId: next.id, serverName: next.name },
    errorCode: why.code,
    error: `${why.text} Moved to '${next.name}'.`,
  };
}
