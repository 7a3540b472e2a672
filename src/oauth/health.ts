import type { AppContext } from "../core/context.js";
import type { ErrorCode } from "../kernel/errors.js";
import { iso } from "../kernel/ids.js";
import { DeliveryError } from "../kernel/transport.js";
import type { OAuthService } from "./service.js";

/** The part of a running Mailroom the health check uses (the app sits above this layer). */
export interface GrantHolder {
  ctx: AppContext;
  oauth: OAuthService;
}

export const DAY_MS = 24 * 60 * 60_000;
/** Grants ending sooner than this are warned about in the log at every check. */
const WARN_BEFORE_MS = 14 * DAY_MS;

export interface GrantCheck {
  serverId: string;
  serverName: string;
  provider: string;
  account: string;
  /** ok: refreshed; skipped: refreshed recently by someone; the others name the failure. */
  outcome: "ok" | "skipped" | "reauthorization_required" | "failing" | "unavailable";
  code: ErrorCode | null;
  message: string | null;
  grantExpiresAt: string | null;
}

export interface RefreshAllOptions {
  /** Skip grants refreshed less than this long ago (another process or a send proved them). */
  minAgeMs?: number;
}

/**
 * Refreshes every OAuth grant once. A quiet server thus learns of a revoked grant before
 * its next message (the token store marks it reauthorization_required and its mail is
 * held), and Microsoft's 90-day inactivity window never closes.
 */
export async function refreshAllGrants(mailroom: GrantHolder, options: RefreshAllOptions = {}): Promise<GrantCheck[]> {
  const { db, log } = mailroom.ctx;
  const rows = await db
    .selectFrom("oauth_tokens")
    .innerJoin("email_servers", "email_servers.id", "oauth_tokens.server_id")
    .select([
      "oauth_tokens.server_id as serverId",
      "email_servers.name as serverName",
      "oauth_tokens.provider as provider",
      "oauth_tokens.account as account",
      "oauth_tokens.refreshed_at as refreshedAt",
      "oauth_tokens.refresh_error_code as errorCode",
      "oauth_tokens.refresh_error as error",
      "oauth_tokens.grant_expires_at as grantExpiresAt",
    ])
    .orderBy("oauth_tokens.refreshed_at")
    .execute();
  const results: GrantCheck[] = [];
  for (const row of rows) {
    const base = {
      serverId: row.serverId,
      serverName: row.serverName,
      provider: row.provider,
      account: row.account,
      grantExpiresAt: iso(row.grantExpiresAt),
    };
    const now = Date.now();
    if (row.grantExpiresAt !== null && row.grantExpiresAt - now < WARN_BEFORE_MS) {
      const days = Math.max(0, Math.ceil((row.grantExpiresAt - now) / DAY_MS));
      log.warn(
        { serverId: row.serverId, server: row.serverName, expiresAt: iso(row.grantExpiresAt) },
        `OAuth authorization of '${row.serverName}' expires in ${days} days: authorize the account again before then`,
      );
    }
    if (row.errorCode === "invalid_grant") {
      // Already known and shown on the server; asking again would only repeat it.
      results.push({ ...base, outcome: "reauthorization_required", code: "oauth_reauthorization_required", message: row.error });
      continue;
    }
    if (options.minAgeMs && row.refreshedAt !== null && now - row.refreshedAt < options.minAgeMs) {
      results.push({ ...base, outcome: "skipped", code: null, message: null });
      continue;
    }
    try {
      await mailroom.oauth.tokens.refreshNow(row.serverId);
      results.push({ ...base, outcome: "ok", code: null, message: null });
    } catch (error) {
      if (!(error instanceof DeliveryError)) throw error;
      const outcome =
        error.kind === "reauthorization" ? "reauthorization_required" : error.kind === "server" ? "failing" : "unavailable";
      results.push({ ...base, outcome, code: error.code, message: error.message });
    }
  }
  const failed = results.filter((r) => r.outcome !== "ok" && r.outcome !== "skipped");
  const summary = { checked: results.length, failed: failed.length, servers: failed.map((r) => r.serverName) };
  if (failed.length) log.warn(summary, "OAuth health check: some grants need attention");
  else log.info(summary, "OAuth health check: every grant works");
  return results;
}

export interface HealthCheckOptions {
  /** Wait before the first check; default the smaller of the interval and five minutes. */
  initialDelayMs?: number;
}

/**
 * Runs refreshAllGrants every `intervalMs` (default daily) until the returned function is
 * called; that function waits for a check under way to finish.
 */
export function startOAuthHealthCheck(
  mailroom: GrantHolder,
  intervalMs: number = DAY_MS,
  options: HealthCheckOptions = {},
): () => Promise<void> {
  let running: Promise<void> | null = null;
  let stopped = false;
  const run = () => {
    if (running || stopped) return;
    running = refreshAllGrants(mailroom, { minAgeMs: intervalMs / 2 })
      .then(() => undefined)
      .catch((error: unknown) => {
        mailroom.ctx.log.error({ err: (error as Error)?.message }, "OAuth health check failed");
      })
      .finally(() => {
        running = null;
      });
  };
  const first = setTimeout(run, options.initialDelayMs ?? Math.min(intervalMs, 5 * 60_000));
  const every = setInterval(run, intervalMs);
  first.unref();
  every.unref();
  return async () => {
    stopped = true;
    clearTimeout(first);
    clearInterval(every);
    await running;
  };
}
