import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import * as oidc from "openid-client";
import type { AppContext } from "../core/context.js";
import type { EmailServerService } from "../core/email-servers.js";
import type { Clock } from "../kernel/clock.js";
import { iso } from "../kernel/ids.js";
import { type AccessTokenProvider, DeliveryError } from "../kernel/transport.js";
import type { Database, OAuthTokensTable } from "../storage/schema.js";
import { type AppCredentials, appCredentialsOf, appTokenError, requestAppToken } from "./app-credentials.js";
import { clientFor, describeFailure, type OAuthFailure } from "./client.js";
import { credentialsOf, oauthOf, oauthScopesOf } from "./credentials.js";
import { type OAuthProvider, providerById } from "./providers/index.js";

export interface TokenStoreOptions {
  /** Refresh this long before the absolute expiry (at most half the token's lifetime). */
  refreshMarginMs?: number;
  /** How long a refresh may hold the cross-process lease before others take over. */
  leaseMs?: number;
  /** Seconds a token endpoint request may take. */
  requestTimeoutSeconds?: number;
  /** First wait between looks at a lease another process holds. */
  waitPollMs?: number;
  /** The time, for token expiry and leases (tests move it instead of waiting). */
  now?: Clock;
  /** Hears each refresh's result (for the metrics). */
  onRefresh?: (serverId: string, result: "ok" | "failed" | "invalid_grant") => void;
}

/** A new grant's tokens, as the callback received them. */
export interface GrantTokens {
  provider: OAuthProvider["id"];
  account: string;
  scopes: string;
  refreshToken: string;
  accessToken: string;
  expiresInSeconds: number | undefined;
  grantExpiresAt: number | null;
}

interface CachedToken {
  accessToken: string;
  expiresAt: number;
  obtainedAt: number;
  generation: number;
  account: string;
  /** App-only tokens: the server version (updated_at) they were obtained for. */
  version: number | null;
}

/** Who an app-only token is for: a token of other credentials or another mailbox does not count. */
export interface AppIdentity {
  provider: OAuthProvider["id"];
  mailbox: string;
  /** The server's updated_at: any edit (secret, certificate, from address) asks for a new token. */
  version: number;
}

function fits(token: { account: string; version: number | null }, app: AppIdentity | undefined): boolean {
  return !app || (token.version === app.version && token.account === app.mailbox);
}

type TokenRow = OAuthTokensTable;

/** Errors after which the refresh token is dead: only a new authorization helps. */
const REAUTHORIZE_ERRORS = new Set(["invalid_grant", "interaction_required", "consent_required", "login_required"]);
const CLIENT_ERRORS = new Set(["invalid_client", "unauthorized_client"]);
const DEFAULT_LIFETIME_S = 3600;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Access tokens for OAuth servers. Each is cached in memory and, encrypted, in the
 * database, with its absolute expiry; it is refreshed a few minutes before that expiry.
 *
 * Single flight: within this process one promise per server; across processes sharing the
 * database, a lease on the server's oauth_tokens row (an atomic UPDATE … WHERE the lease
 * is free and nobody stored a newer token). The holder refreshes without keeping a
 * transaction open; the others poll the row until a newer token (or the holder's error)
 * is there. The result, including a rotated refresh token, is stored in one UPDATE
 * before anyone uses it, and only if nobody stored a newer grant meanwhile.
 */
export class TokenStore {
  private readonly cache = new Map<string, CachedToken>();
  private readonly flights = new Map<string, Promise<CachedToken>>();
  /** Who holds a lease: unique per store, so per process. */
  private readonly owner = randomUUID();
  private readonly now: Clock;
  private readonly marginMs: number;
  private readonly leaseMs: number;
  private readonly timeoutSeconds: number;
  private readonly pollMs: number;

  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly options: TokenStoreOptions = {},
  ) {
    this.marginMs = options.refreshMarginMs ?? 5 * 60_000;
    this.leaseMs = options.leaseMs ?? 60_000;
    this.timeoutSeconds = options.requestTimeoutSeconds ?? 20;
    this.pollMs = options.waitPollMs ?? 50;
    this.now = options.now ?? ctx.clock;
  }

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** What the SMTP transport of one OAuth server calls (through nodemailer's provision callback). */
  tokenProvider(serverId: string): AccessTokenProvider {
    return {
      user: () => this.account(serverId),
      accessToken: (renew, rejected) => this.accessToken(serverId, renew, rejected),
    };
  }

  /**
   * What the transport of a server with app-only credentials calls: its from address logs
   * in, with the application's token, obtained once per lifetime across processes.
   */
  appTokenProvider(serverId: string, app: AppIdentity): AccessTokenProvider {
    return {
      user: async () => app.mailbox,
      accessToken: (renew, rejected) => this.accessToken(serverId, renew, rejected, app),
    };
  }

  /** The authorized account: the login for XOAUTH2. */
  async account(serverId: string): Promise<string> {
    const cached = this.cache.get(serverId);
    if (cached) return cached.account;
    const row = await this.readRow(serverId);
    if (!row) throw notAuthorized();
    return row.account;
  }

  /**
   * A valid access token. `renew`: the server rejected `rejected` (or, unnamed, the last
   * token handed out), so get a newer one, joining a refresh already under way rather than
   * starting a second. A token that was replaced meanwhile (another pooled connection was
   * refused the same one first) is not renewed again: the caller gets its replacement.
   */
  async accessToken(serverId: string, renew = false, rejected?: string, app?: AppIdentity): Promise<string> {
    const cached = this.cache.get(serverId);
    if (cached && this.isFresh(cached.expiresAt, cached.obtainedAt) && fits(cached, app)) {
      if (!renew || (rejected !== undefined && cached.accessToken !== rejected)) return cached.accessToken;
    }
    // Renewing without naming the token: the caller's is the one this process handed out
    // (cached); without one, whatever is stored now counts as rejected.
    const floor = !renew ? null : rejected !== undefined ? { rejected } : (cached?.generation ?? "stored");
    return (await this.singleFlight(serverId, () => this.obtain(serverId, floor, app))).accessToken;
  }

  /** Refreshes now, whatever the cached token's age: proves the grant still works. */
  async refreshNow(serverId: string): Promise<void> {
    await this.singleFlight(serverId, () => this.obtain(serverId, "stored"));
  }

  /** Stores a new grant in the caller's transaction, replacing any earlier one. */
  async storeGrant(trx: Kysely<Database>, serverId: string, grant: GrantTokens): Promise<void> {
    const now = this.now();
    const box = this.ctx.secrets;
    const lifetime = grant.expiresInSeconds && grant.expiresInSeconds > 0 ? grant.expiresInSeconds : DEFAULT_LIFETIME_S;
    const values = {
      provider: grant.provider,
      account: grant.account,
      scopes: grant.scopes,
      refresh_token: box.encrypt(grant.refreshToken),
      access_token: box.encrypt(grant.accessToken),
      access_expires_at: now + lifetime * 1000,
      access_obtained_at: now,
      grant_expires_at: grant.grantExpiresAt,
      // A refresh of the old grant still under way must not overwrite this one.
      lease_owner: null,
      lease_until: null,
      refreshed_at: now,
      refresh_error_code: null,
      refresh_error: null,
      refresh_error_at: null,
      updated_at: now,
    };
    const existing = await trx
      .selectFrom("oauth_tokens")
      .select("generation")
      .where("server_id", "=", serverId)
      .executeTakeFirst();
    if (existing) {
      await trx
        .updateTable("oauth_tokens")
        .set({ ...values, generation: existing.generation + 1 })
        .where("server_id", "=", serverId)
        .execute();
    } else {
      await trx
        .insertInto("oauth_tokens")
        .values({ server_id: serverId, ...values, generation: 1, created_at: now })
        .execute();
    }
  }

  /** Drops what this process remembers of a server's token (after a new grant or a disconnect). */
  forget(serverId: string): void {
    this.cache.delete(serverId);
  }

  async readRow(serverId: string, db: Kysely<Database> = this.db): Promise<TokenRow | undefined> {
    return db.selectFrom("oauth_tokens").selectAll().where("server_id", "=", serverId).executeTakeFirst();
  }

  // ---- single flight ----

  private singleFlight(serverId: string, run: () => Promise<CachedToken>): Promise<CachedToken> {
    const running = this.flights.get(serverId);
    if (running) return running;
    const flight = run().finally(() => {
      if (this.flights.get(serverId) === flight) this.flights.delete(serverId);
    });
    this.flights.set(serverId, flight);
    return flight;
  }

  /**
   * Returns a fresh stored token (newer than generation `floor` if given; "stored": newer
   * than the one stored now; `rejected`: newer than that token, if it is the one stored
   * now), or refreshes under the lease, or waits for whoever holds it.
   */
  private async obtain(
    serverId: string,
    wanted: number | "stored" | { rejected: string } | null,
    app?: AppIdentity,
  ): Promise<CachedToken> {
    const started = this.now();
    // Real time: a waiter must give up even when an injected clock stands still.
    const deadline = Date.now() + this.leaseMs + 10_000;
    let waited = false;
    let floor = typeof wanted === "number" || wanted === null ? wanted : undefined;
    for (let round = 0; ; round++) {
      const row = await this.readRow(serverId);
      if (!row && app) {
        // App-only: the row holding the token and its lease is made on first use.
        await this.createAppRow(serverId, app);
        continue;
      }
      if (!row) throw notAuthorized();
      if (row.refresh_error_code === "invalid_grant") throw reauthorizationError(row.refresh_error);
      if (floor === undefined) {
        // A stored token other than the rejected one has replaced it (here or in another
        // process): that one will do.
        const replaced =
          typeof wanted === "object" && row.access_token && this.ctx.secrets.decrypt(row.access_token) !== wanted?.rejected;
        floor = replaced ? null : row.generation;
      }
      const now = this.now();
      const newEnough = floor === null || row.generation > floor;
      if (
        newEnough &&
        fits(versioned(row), app) &&
        row.access_token &&
        row.access_expires_at &&
        this.isFresh(row.access_expires_at, row.access_obtained_at)
      ) {
        return this.remember(serverId, row);
      }
      // Whoever we waited for failed: share its outcome rather than hammer the provider.
      const leaseFree = row.lease_until === null || row.lease_until < now;
      if (waited && leaseFree && row.refresh_error_at !== null && row.refresh_error_at >= started) {
        throw errorFromRow(row);
      }
      const claimed = await this.db
        .updateTable("oauth_tokens")
        .set({ lease_owner: this.owner, lease_until: now + this.leaseMs })
        .where("server_id", "=", serverId)
        .where("generation", "=", row.generation)
        .where((eb) => eb.or([eb("lease_until", "is", null), eb("lease_until", "<", now)]))
        .returningAll()
        .executeTakeFirst();
      if (claimed) return this.refresh(serverId, claimed);
      waited = true;
      if (Date.now() > deadline) {
        throw new DeliveryError(
          "oauth_token_unavailable",
          "transient",
          "Another Mailroom process has held this server's token refresh for too long; Mailroom retries with backoff.",
        );
      }
      await sleep(Math.min(this.pollMs * 2 ** Math.min(round, 4), 500));
    }
  }

  private async createAppRow(serverId: string, app: AppIdentity): Promise<void> {
    const now = this.now();
    await this.db
      .insertInto("oauth_tokens")
      .values({
        server_id: serverId,
        provider: app.provider,
        account: app.mailbox,
        scopes: "",
        // No refresh token exists for app-only credentials: the application asks again.
        refresh_token: this.ctx.secrets.encrypt(""),
        access_token: null,
        access_expires_at: null,
        access_obtained_at: null,
        grant_expires_at: null,
        generation: 0,
        lease_owner: null,
        lease_until: null,
        refreshed_at: null,
        refresh_error_code: null,
        refresh_error: null,
        refresh_error_at: null,
        credentials_version: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column("server_id").doNothing())
      .execute();
  }

  /** Holding the lease: asks the provider, stores the result, then hands it out. */
  private async refresh(serverId: string, claimed: TokenRow): Promise<CachedToken> {
    const app = await this.appCredentials(serverId);
    if (app) return this.acquireApp(serverId, claimed, app.server, app.creds);
    const provider = providerById(claimed.provider);
    let result: oidc.TokenEndpointResponse;
    try {
      const server = await this.servers.getRow(serverId);
      const credentials = credentialsOf(this.servers, server);
      const { driver } = oauthOf(server);
      const client = clientFor(provider, this.ctx.config.oauth, credentials.settings, {
        clientId: credentials.clientId,
        clientSecret: credentials.clientSecret,
        timeoutSeconds: this.timeoutSeconds,
      });
      const refreshToken = this.ctx.secrets.decrypt(claimed.refresh_token);
      result = await oidc.refreshTokenGrant(
        client.config,
        refreshToken,
        provider.refreshParameters(oauthScopesOf(driver, provider).request),
      );
      // The refresh answer's ID token (if any) is not needed: the account is known.
      client.takeIdToken();
    } catch (error) {
      return this.failRefresh(serverId, claimed, provider, error);
    }
    const now = this.now();
    const lifetime = typeof result.expires_in === "number" && result.expires_in > 0 ? result.expires_in : DEFAULT_LIFETIME_S;
    const grantLeft = result.refresh_token_expires_in;
    const stored = await this.db
      .updateTable("oauth_tokens")
      .set({
        access_token: this.ctx.secrets.encrypt(result.access_token),
        access_expires_at: now + lifetime * 1000,
        access_obtained_at: now,
        // Microsoft rotates the refresh token on every refresh: keep the new one, now,
        // in the same statement as the access token it came with.
        refresh_token:
          typeof result.refresh_token === "string" && result.refresh_token !== ""
            ? this.ctx.secrets.encrypt(result.refresh_token)
            : claimed.refresh_token,
        grant_expires_at: typeof grantLeft === "number" && grantLeft > 0 ? now + grantLeft * 1000 : claimed.grant_expires_at,
        generation: claimed.generation + 1,
        lease_owner: null,
        lease_until: null,
        refreshed_at: now,
        refresh_error_code: null,
        refresh_error: null,
        refresh_error_at: null,
        updated_at: now,
      })
      .where("server_id", "=", serverId)
      .where("generation", "=", claimed.generation)
      .returningAll()
      .executeTakeFirst();
    if (stored) {
      this.options.onRefresh?.(serverId, "ok");
      this.ctx.log.debug(
        { serverId, provider: provider.id, expiresAt: iso(now + lifetime * 1000) },
        "OAuth access token refreshed",
      );
      return this.remember(serverId, stored);
    }
    // The grant changed meanwhile (re-authorized or disconnected): only what is stored is used.
    const current = await this.readRow(serverId);
    if (!current) throw notAuthorized();
    if (
      current.access_token &&
      current.access_expires_at &&
      this.isFresh(current.access_expires_at, current.access_obtained_at)
    ) {
      return this.remember(serverId, current);
    }
    throw new DeliveryError(
      "oauth_token_unavailable",
      "transient",
      "The authorization changed during a token refresh; Mailroom retries.",
    );
  }

  private async appCredentials(
    serverId: string,
  ): Promise<{ server: Awaited<ReturnType<EmailServerService["getRow"]>>; creds: AppCredentials } | null> {
    try {
      const server = await this.servers.getRow(serverId);
      const creds = appCredentialsOf(server, this.servers.secretsOf(server));
      return creds ? { server, creds } : null;
    } catch {
      // A server gone meanwhile: the delegated path reports it as it always has.
      return null;
    }
  }

  /** Holding the lease of an app-only server: a new token from the application's own credentials. */
  private async acquireApp(
    serverId: string,
    claimed: TokenRow,
    server: { updated_at: number },
    creds: AppCredentials,
  ): Promise<CachedToken> {
    let token: Awaited<ReturnType<typeof requestAppToken>>;
    try {
      token = await requestAppToken(creds, this.ctx.config.oauth, { timeoutSeconds: this.timeoutSeconds, now: this.now });
    } catch (error) {
      const failure = appTokenError(creds, error);
      this.options.onRefresh?.(serverId, "failed");
      const code = failure.kind === "server" ? "app_rejected" : "transient";
      if ((await this.releaseLease(serverId, claimed, code, failure.message)) && failure.kind === "server") {
        await this.servers.setFault(serverId, "failing", failure.message);
      }
      this.ctx.log.warn({ serverId, provider: creds.provider.id, code: failure.code }, "App-only token request failed");
      throw failure;
    }
    const now = this.now();
    const lifetime = token.expiresInSeconds && token.expiresInSeconds > 0 ? token.expiresInSeconds : DEFAULT_LIFETIME_S;
    const stored = await this.db
      .updateTable("oauth_tokens")
      .set({
        access_token: this.ctx.secrets.encrypt(token.accessToken),
        access_expires_at: now + lifetime * 1000,
        access_obtained_at: now,
        account: creds.mailbox,
        scopes: creds.scope,
        credentials_version: server.updated_at,
        generation: claimed.generation + 1,
        lease_owner: null,
        lease_until: null,
        refreshed_at: now,
        refresh_error_code: null,
        refresh_error: null,
        refresh_error_at: null,
        updated_at: now,
      })
      .where("server_id", "=", serverId)
      .where("generation", "=", claimed.generation)
      .returningAll()
      .executeTakeFirst();
    if (!stored) {
      throw new DeliveryError(
        "oauth_token_unavailable",
        "transient",
        "The server changed during a token request; Mailroom retries.",
      );
    }
    this.options.onRefresh?.(serverId, "ok");
    this.ctx.log.debug(
      { serverId, provider: creds.provider.id, method: creds.method, expiresAt: iso(now + lifetime * 1000) },
      "App-only access token obtained",
    );
    return this.remember(serverId, stored);
  }

  private async failRefresh(serverId: string, claimed: TokenRow, provider: OAuthProvider, error: unknown): Promise<never> {
    const failure = describeFailure(error);
    const at = this.now();
    const kind = classify(failure, error);
    this.options.onRefresh?.(serverId, kind === "reauthorize" ? "invalid_grant" : "failed");
    const when = iso(at);
    if (kind === "reauthorize") {
      const detail =
        `${provider.label} refused the refresh token on ${when} (${failure.text}): consent was revoked, the password ` +
        `changed, the grant expired (Google apps in "Testing" lose it after 7 days, Microsoft after 90 days unused) ` +
        `or an administrator blocked it. Use 'Authorize account' again; held messages then go out.`;
      const marked = await this.db
        .updateTable("oauth_tokens")
        .set({
          lease_owner: null,
          lease_until: null,
          access_token: null,
          access_expires_at: null,
          refresh_error_code: "invalid_grant",
          refresh_error: detail,
          refresh_error_at: at,
          updated_at: at,
        })
        .where("server_id", "=", serverId)
        .where("generation", "=", claimed.generation)
        .returning("server_id")
        .executeTakeFirst();
      this.cache.delete(serverId);
      // Only the grant that failed is marked: a new authorization stored meanwhile stands.
      if (marked) {
        await this.servers.setFault(serverId, "reauthorization_required", detail);
        this.ctx.log.warn({ serverId, provider: provider.id, error: failure.error }, "OAuth grant revoked or expired");
      }
      throw new DeliveryError("oauth_reauthorization_required", "reauthorization", detail);
    }
    if (kind === "client") {
      const detail = `${provider.label} rejected the client ID or client secret on ${when} (${failure.text}): paste a valid client secret (Microsoft Entra secrets expire) and save.`;
      if (await this.releaseLease(serverId, claimed, "invalid_client", detail)) {
        await this.servers.setFault(serverId, "failing", detail);
      }
      this.ctx.log.warn({ serverId, provider: provider.id, error: failure.error }, "OAuth client rejected");
      throw new DeliveryError("oauth_invalid_client", "server", detail);
    }
    const detail = `${provider.label}'s token endpoint failed on ${when} (${failure.text}); Mailroom retries with backoff.`;
    await this.releaseLease(serverId, claimed, "transient", detail);
    this.ctx.log.warn({ serverId, provider: provider.id, status: failure.status }, "OAuth token endpoint unavailable");
    throw new DeliveryError("oauth_token_unavailable", "transient", detail);
  }

  private async releaseLease(serverId: string, claimed: TokenRow, code: string, detail: string): Promise<boolean> {
    const at = this.now();
    const row = await this.db
      .updateTable("oauth_tokens")
      .set({
        lease_owner: null,
        lease_until: null,
        refresh_error_code: code,
        refresh_error: detail,
        refresh_error_at: at,
        updated_at: at,
      })
      .where("server_id", "=", serverId)
      .where("generation", "=", claimed.generation)
      .returning("server_id")
      .executeTakeFirst();
    return row !== undefined;
  }

  private remember(serverId: string, row: TokenRow): CachedToken {
    const token: CachedToken = {
      accessToken: this.ctx.secrets.decrypt(row.access_token as string),
      expiresAt: row.access_expires_at as number,
      obtainedAt: row.access_obtained_at ?? row.refreshed_at ?? this.now(),
      generation: row.generation,
      account: row.account,
      version: versioned(row).version,
    };
    // Only the one flight of this server writes here, so what it read is the latest.
    this.cache.set(serverId, token);
    return token;
  }

  /** Fresh until `margin` before expiry; the margin is at most half the token's lifetime. */
  private isFresh(expiresAt: number, obtainedAt: number | null): boolean {
    const lifetime = Math.max(0, expiresAt - (obtainedAt ?? expiresAt));
    const margin = Math.min(this.marginMs, lifetime / 2);
    return this.now() < expiresAt - margin;
  }
}

function classify(failure: OAuthFailure, error: unknown): "reauthorize" | "client" | "transient" {
  if (failure.error && REAUTHORIZE_ERRORS.has(failure.error)) return "reauthorize";
  if (failure.error && CLIENT_ERRORS.has(failure.error)) return "client";
  // A missing client ID or secret (cleared by an admin) is the server's configuration.
  if ((error as { code?: string })?.code === "oauth_client_missing") return "client";
  // 5xx, 429, timeouts, network errors and anything unexpected: try again later, never
  // a reason to throw away the grant.
  return "transient";
}

function notAuthorized(): DeliveryError {
  return new DeliveryError(
    "oauth_not_authorized",
    "reauthorization",
    "No account is authorized for this server: use 'Authorize account'.",
  );
}

function reauthorizationError(detail: string | null): DeliveryError {
  return new DeliveryError(
    "oauth_reauthorization_required",
    "reauthorization",
    detail ?? "The account's authorization was revoked or expired: use 'Authorize account' again.",
  );
}

/** A row's account and credentials version, as bigint columns come back from either database. */
function versioned(row: TokenRow): { account: string; version: number | null } {
  const version = row.credentials_version;
  return { account: row.account, version: version === null || version === undefined ? null : Number(version) };
}

function errorFromRow(row: TokenRow): DeliveryError {
  const detail = row.refresh_error ?? "The token refresh failed.";
  if (row.refresh_error_code === "app_rejected") return new DeliveryError("oauth_app_rejected", "server", detail);
  if (row.refresh_error_code === "invalid_grant") return reauthorizationError(detail);
  if (row.refresh_error_code === "invalid_client") return new DeliveryError("oauth_invalid_client", "server", detail);
  return new DeliveryError("oauth_token_unavailable", "transient", detail);
}
