import { createHash } from "node:crypto";
import type { Kysely } from "kysely";
import * as oidc from "openid-client";
import { can, type Principal } from "../auth/permissions.js";
import { type Actor, writeAudit } from "../core/audit.js";
import type { AppContext } from "../core/context.js";
import type { EmailServerService, EmailServerView } from "../core/email-servers.js";
import type { Driver } from "../drivers/types.js";
import { type ErrorCode, errorCatalogue, MailroomError } from "../kernel/errors.js";
import { iso } from "../kernel/ids.js";
import type { Database, EmailServersTable, OAuthAuthorizationsTable } from "../storage/schema.js";
import { clientFor, describeFailure, type OAuthFailure, type ProviderClient, validateIdToken } from "./client.js";
import { credentialsOf, delegatedOauthOf, oauthOf, oauthScopesOf, redirectUriOf } from "./credentials.js";
import type { IdTokenClaims, OAuthProvider } from "./providers/index.js";
import type { TokenStore } from "./token-store.js";

/** How long an "Authorize account" may take, from click to callback. */
export const STATE_TTL_MS = 10 * 60_000;
/** Finished or expired authorizations are kept this long, so a late reply says "expired". */
const KEEP_MS = 24 * 60 * 60_000;

/**
 * Who is asking. `binding` is a random value kept in a short-lived cookie of the browser
 * that started the authorization (SameSite=Lax, path /oauth): the session cookie is
 * SameSite=Strict, so a browser coming back from the provider's site does not send it,
 * and the callback recognises the browser by this cookie and the user by the state.
 */
export interface Requester {
  principal: Principal | null;
  binding: string | null;
  /** Who the request is audited as until the user who started the authorization is known. */
  actor: Actor;
  /** The user behind a state, as they are now (permissions, disabled). */
  loadUser?: (userId: string) => Promise<Principal | null>;
}

export type CallbackOutcome =
  | { ok: true; serverId: string; location: string }
  | { ok: false; serverId: string | null; code: ErrorCode; message: string; location: string };

export interface DisconnectResult {
  server: EmailServerView;
  /** Whether the provider confirmed the revocation. */
  revoked: boolean;
  notice: string | null;
}

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** What the code exchange gave, with the server and client it was made for. */
interface Exchange {
  row: EmailServersTable;
  driver: Driver;
  provider: OAuthProvider;
  credentials: ReturnType<typeof credentialsOf>;
  client: ProviderClient;
  tokens: oidc.TokenEndpointResponse;
}

/** A grant that passed the checks: the account, what it allows, and the refresh token. */
interface Grant {
  account: string;
  scopes: string;
  refreshToken: string;
}

class Refusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * "Authorize account": the authorization URL (state bound to server, user and session;
 * PKCE S256), the provider's callback (checked, exchanged, stored with the grant's facts in
 * one transaction, audited) and "Disconnect".
 */
export class OAuthFlow {
  constructor(
    private readonly ctx: AppContext,
    private readonly servers: EmailServerService,
    private readonly tokens: TokenStore,
    private readonly timeoutSeconds = 20,
  ) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** Starts an authorization and returns the provider's URL for the browser. */
  async start(idOrName: string, requester: Requester): Promise<{ authorizationUrl: string; expiresAt: string }> {
    const { principal, binding } = requester;
    if (principal?.kind !== "user" || !binding) {
      throw new MailroomError(
        "oauth_session_required",
        "Authorize from the admin UI while signed in: an API token cannot finish the provider's sign-in in a browser.",
      );
    }
    const row = await this.servers.getRow(idOrName);
    const { driver, provider } = delegatedOauthOf(row);
    const scopes = oauthScopesOf(driver, provider).request.join(" ");
    const credentials = credentialsOf(this.servers, row);
    const redirectUri = redirectUriOf(driver, this.ctx.config.publicUrl);
    const client = this.client(provider, credentials);

    const state = oidc.randomState();
    const verifier = oidc.randomPKCECodeVerifier();
    const challenge = await oidc.calculatePKCECodeChallenge(verifier);
    const now = this.ctx.clock();
    const expiresAt = now + STATE_TTL_MS;
    await this.db.transaction().execute(async (trx) => {
      await trx
        .deleteFrom("oauth_authorizations")
        .where("expires_at", "<", now - KEEP_MS)
        .execute();
      await trx
        .insertInto("oauth_authorizations")
        .values({
          state_hash: sha256(state),
          server_id: row.id,
          provider: provider.id,
          user_id: principal.id,
          session_hash: sha256(binding),
          code_verifier: this.ctx.secrets.encrypt(verifier),
          redirect_uri: redirectUri,
          created_at: now,
          expires_at: expiresAt,
          used_at: null,
        })
        .execute();
      await writeAudit(trx, requester.actor, {
        action: "email_server.oauth.start",
        targetType: "email_server",
        targetId: row.id,
        after: { provider: provider.id, scopes, expiresAt: iso(expiresAt) },
      });
    });
    const url = oidc.buildAuthorizationUrl(client.config, {
      redirect_uri: redirectUri,
      scope: scopes,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
      ...provider.authorizationParameters(row.from_address || null),
    });
    return { authorizationUrl: url.href, expiresAt: iso(expiresAt) as string };
  }

  /**
   * The provider's callback. Never throws for a refusal: the browser is sent back to the
   * server's page with the code, and the refusal is audited (as the user who started the
   * authorization, once they are known).
   */
  async complete(providerId: string, query: Record<string, unknown>, requester: Requester): Promise<CallbackOutcome> {
    let serverId: string | null = null;
    let actor = requester.actor;
    try {
      const state = stateOf(query);
      const pending = await this.findAuthorization(state);
      serverId = pending.server_id;
      await this.spendAuthorization(pending, providerId);
      const principal = await this.authorizingUser(pending, requester);
      actor = { type: "user", id: principal.id, label: principal.label, ip: requester.actor.ip };
      if (!can(principal, "email-servers.update")) {
        throw new Refusal("forbidden", "Authorizing an account needs the permission 'email-servers.update'.");
      }
      checkProviderAnswer(query);
      const exchange = await this.exchangeCode(pending, query, state);
      const grant = await this.checkGrant(exchange);
      await this.storeGrant(exchange, grant, actor);
      return { ok: true, serverId, location: `/servers/${encodeURIComponent(serverId)}?oauth=success` };
    } catch (error) {
      return this.refuse(error, providerId, serverId, actor);
    }
  }

  /** The authorization Mailroom started with this state (spent or not). */
  private async findAuthorization(state: string): Promise<OAuthAuthorizationsTable> {
    const pending = await this.db
      .selectFrom("oauth_authorizations")
      .selectAll()
      .where("state_hash", "=", sha256(state))
      .executeTakeFirst();
    if (!pending) throw new Refusal("oauth_state_invalid", "The reply's state matches no authorization Mailroom started.");
    return pending;
  }

  /** Spends the state whatever happens next; refuses one used, expired, or for another provider. */
  private async spendAuthorization(pending: OAuthAuthorizationsTable, providerId: string): Promise<void> {
    const now = this.ctx.clock();
    const claimed = await this.db
      .updateTable("oauth_authorizations")
      .set({ used_at: now })
      .where("state_hash", "=", pending.state_hash)
      .where("used_at", "is", null)
      .returning("state_hash")
      .executeTakeFirst();
    if (!claimed) throw new Refusal("oauth_state_reused", "This reply was already used once; each authorization works once.");
    if (pending.expires_at < now) {
      throw new Refusal("oauth_state_expired", "The authorization was started more than 10 minutes ago.");
    }
    if (pending.provider !== providerId) {
      throw new Refusal(
        "oauth_state_invalid",
        `The reply came to the ${providerId} callback for a ${pending.provider} authorization.`,
      );
    }
  }

  /** The browser that started the authorization, and its user as they are now. */
  private async authorizingUser(pending: OAuthAuthorizationsTable, requester: Requester): Promise<Principal> {
    if (!requester.binding || sha256(requester.binding) !== pending.session_hash) {
      throw new Refusal(
        "oauth_session_mismatch",
        "The authorization was started in another browser; use 'Authorize account' again in this one.",
      );
    }
    const signedIn = requester.principal;
    if (signedIn && (signedIn.kind !== "user" || signedIn.id !== pending.user_id)) {
      throw new Refusal(
        "oauth_session_mismatch",
        "The authorization was started by another user; finish it signed in as that user.",
      );
    }
    const principal = signedIn ?? (await requester.loadUser?.(pending.user_id)) ?? null;
    if (!principal) {
      throw new Refusal(
        "unauthenticated",
        "The user who started the authorization is disabled or gone; sign in and start again.",
      );
    }
    return principal;
  }

  /** The server as it is now, and the code exchanged for tokens at its provider. */
  private async exchangeCode(
    pending: OAuthAuthorizationsTable,
    query: Record<string, unknown>,
    state: string,
  ): Promise<Exchange> {
    const row = await this.servers.getRow(pending.server_id);
    const { driver, provider } = delegatedOauthOf(row);
    if (provider.id !== pending.provider) {
      throw new Refusal("oauth_state_invalid", "The server's driver changed since the authorization started.");
    }
    const credentials = credentialsOf(this.servers, row);
    const client = this.client(provider, credentials);
    const currentUrl = new URL(pending.redirect_uri);
    for (const [key, value] of Object.entries(query)) {
      if (typeof value === "string") currentUrl.searchParams.set(key, value);
    }
    // openid-client compares an `iss` response parameter with one fixed issuer; Microsoft's
    // is per tenant, and Google's may be Google's own behind a proxy, so one of those is
    // checked here instead.
    const [before, after] = client.endpoints.issuer.split("{tenantid}");
    const iss = currentUrl.searchParams.get("iss");
    const perTenant = iss !== null && after !== undefined && iss.startsWith(before) && iss.endsWith(after);
    const accepted = iss !== null && provider.acceptsIssuer({ iss } as IdTokenClaims, client.endpoints, credentials.settings);
    if (perTenant || accepted) currentUrl.searchParams.delete("iss");
    try {
      const tokens = await oidc.authorizationCodeGrant(client.config, currentUrl, {
        pkceCodeVerifier: this.ctx.secrets.decrypt(pending.code_verifier),
        expectedState: state,
      });
      return { row, driver, provider, credentials, client, tokens };
    } catch (error) {
      throw exchangeError(provider, describeFailure(error));
    }
  }

  /** Who signed in, and whether they allowed what SMTP needs; a refused grant is revoked. */
  private async checkGrant({ row, driver, provider, credentials, client, tokens }: Exchange): Promise<Grant> {
    const discard = () => this.revokeQuietly(client, tokens.refresh_token ?? tokens.access_token);
    let claims: Partial<IdTokenClaims> = {};
    const idToken = client.takeIdToken();
    if (idToken) {
      try {
        claims = validateIdToken(provider, client.endpoints, credentials.settings, idToken, credentials.clientId);
      } catch (error) {
        await discard();
        throw new Refusal("oauth_exchange_failed", `${provider.label}'s answer was not accepted: ${(error as Error).message}.`);
      }
    }
    let account = provider.accountFrom(claims);
    if (!account && client.endpoints.userinfo) {
      try {
        const info = await oidc.fetchUserInfo(client.config, tokens.access_token, claims.sub ?? oidc.skipSubjectCheck);
        account = provider.accountFrom(info as Partial<IdTokenClaims>);
      } catch (error) {
        this.ctx.log.warn({ provider: provider.id, serverId: row.id, err: describeFailure(error).text }, "OAuth userinfo failed");
      }
    }
    if (!account) {
      await discard();
      throw new Refusal(
        "oauth_account_unknown",
        `${provider.label} did not say which mailbox signed in: allow the 'openid' and 'email' permissions and authorize again.`,
      );
    }
    const wanted = oauthScopesOf(driver, provider);
    const granted = (typeof tokens.scope === "string" && tokens.scope.trim() !== "" ? tokens.scope : wanted.request.join(" "))
      .trim()
      .split(/\s+/);
    if (!wanted.sending.some((scope) => granted.includes(scope))) {
      await discard();
      throw new Refusal(
        "oauth_scope_missing",
        `${provider.label} did not grant ${wanted.sending[0]}, which sending through ${driver.label} needs (granted: ${granted.join(" ").slice(0, 300)}). Authorize again and allow sending mail.`,
      );
    }
    if (typeof tokens.refresh_token !== "string" || tokens.refresh_token === "") {
      throw new Refusal(
        "oauth_refresh_token_missing",
        `${provider.label} gave no refresh token. Remove Mailroom's access at ${provider.accessPage}, then authorize again.`,
      );
    }
    return { account, scopes: granted.join(" "), refreshToken: tokens.refresh_token };
  }

  /** The tokens, the grant's facts on the server and the audit entry: all stored, or none. */
  private async storeGrant({ row, provider, tokens }: Exchange, grant: Grant, actor: Actor): Promise<void> {
    const authorizedAt = this.ctx.clock();
    const grantLeft = tokens.refresh_token_expires_in;
    const grantExpiresAt = typeof grantLeft === "number" && grantLeft > 0 ? authorizedAt + grantLeft * 1000 : null;
    const { account, scopes } = grant;
    await this.db.transaction().execute(async (trx) => {
      await this.tokens.storeGrant(trx, row.id, {
        provider: provider.id,
        account,
        scopes,
        refreshToken: grant.refreshToken,
        accessToken: tokens.access_token,
        expiresInSeconds: tokens.expires_in,
        grantExpiresAt,
      });
      await this.servers.recordGrant(trx, row.id, { account, scopes, authorizedAt, expiresAt: grantExpiresAt });
      await writeAudit(trx, actor, {
        action: "email_server.oauth.authorize",
        targetType: "email_server",
        targetId: row.id,
        before: { account: row.oauth_account },
        after: { provider: provider.id, account, scopes, expiresAt: iso(grantExpiresAt) },
      });
    });
    this.tokens.forget(row.id);
    this.ctx.log.info({ serverId: row.id, provider: provider.id, account }, "OAuth account authorized");
  }

  /** A refused callback: logged (in full when unexpected), audited, and worded for the server's page. */
  private async refuse(error: unknown, providerId: string, serverId: string | null, actor: Actor): Promise<CallbackOutcome> {
    const refusal =
      error instanceof Refusal
        ? error
        : error instanceof MailroomError
          ? new Refusal(error.code, error.message)
          : new Refusal("internal_error", errorCatalogue.internal_error.summary);
    if (!(error instanceof Refusal) && !(error instanceof MailroomError)) {
      this.ctx.log.error({ err: describeFailure(error).text, provider: providerId, serverId }, "OAuth callback failed");
    }
    await this.auditRefusal(actor, serverId, providerId, refusal);
    this.ctx.log.info({ provider: providerId, serverId, code: refusal.code }, "OAuth authorization refused");
    const page = serverId ? `/servers/${encodeURIComponent(serverId)}` : "/servers";
    return {
      ok: false,
      serverId,
      code: refusal.code,
      message: refusal.message,
      location: `${page}?oauth=error&code=${refusal.code}`,
    };
  }

  /** Revokes the grant at the provider where possible, and forgets the tokens. */
  async disconnect(idOrName: string, actor: Actor): Promise<DisconnectResult> {
    const row = await this.servers.getRow(idOrName);
    const { provider } = oauthOf(row);
    const stored = await this.tokens.readRow(row.id);
    let revoked = false;
    let notice: string | null = null;
    if (!stored) {
      notice = "No account was authorized; there was nothing to revoke.";
    } else {
      const outcome = await this.revoke(provider, row, stored.refresh_token);
      revoked = outcome === null;
      notice = outcome;
    }
    const next = await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("oauth_tokens").where("server_id", "=", row.id).execute();
      // An authorization still in progress is cancelled too.
      await trx.deleteFrom("oauth_authorizations").where("server_id", "=", row.id).where("used_at", "is", null).execute();
      const updated = await this.servers.recordGrant(trx, row.id, null);
      await writeAudit(trx, actor, {
        action: "email_server.oauth.disconnect",
        targetType: "email_server",
        targetId: row.id,
        before: { account: row.oauth_account },
        after: { provider: provider.id, revoked },
      });
      return updated;
    });
    this.tokens.forget(row.id);
    return { server: this.servers.toView(next), revoked, notice };
  }

  /** null when revoked; otherwise what the admin should do by hand. */
  private async revoke(provider: OAuthProvider, row: EmailServersTable, refreshToken: string): Promise<string | null> {
    const manual = `Remove Mailroom's access at ${provider.accessPage} to end it at ${provider.label} too.`;
    const endpoints = provider.endpoints(this.ctx.config.oauth, JSON.parse(row.settings));
    if (!endpoints.revocation) return `${provider.label} offers no revocation endpoint; Mailroom forgot the tokens. ${manual}`;
    try {
      const client = this.client(provider, credentialsOf(this.servers, row));
      await oidc.tokenRevocation(client.config, this.ctx.secrets.decrypt(refreshToken), { token_type_hint: "refresh_token" });
      return null;
    } catch (error) {
      const why = error instanceof MailroomError ? error.message : describeFailure(error).text;
      this.ctx.log.warn({ serverId: row.id, provider: provider.id, err: why }, "OAuth revocation failed");
      return `${provider.label} did not confirm the revocation (${why}); Mailroom forgot the tokens anyway. ${manual}`;
    }
  }

  private async revokeQuietly(client: ProviderClient, token: string | undefined): Promise<void> {
    if (!token || !client.endpoints.revocation) return;
    await oidc.tokenRevocation(client.config, token).catch(() => {});
  }

  private client(provider: OAuthProvider, credentials: ReturnType<typeof credentialsOf>): ProviderClient {
    return clientFor(provider, this.ctx.config.oauth, credentials.settings, {
      clientId: credentials.clientId,
      clientSecret: credentials.clientSecret,
      timeoutSeconds: this.timeoutSeconds,
    });
  }

  private async auditRefusal(actor: Actor, serverId: string | null, providerId: string, refusal: Refusal): Promise<void> {
    try {
      await writeAudit(this.db, actor, {
        action: "email_server.oauth.refused",
        targetType: "email_server",
        targetId: serverId,
        after: { provider: providerId.slice(0, 20), code: refusal.code, reason: refusal.message },
      });
    } catch (error) {
      this.ctx.log.error({ err: (error as Error).message }, "could not audit an OAuth refusal");
    }
  }
}

/** The state of the provider's reply: present and of a sane length. */
function stateOf(query: Record<string, unknown>): string {
  const state = typeof query.state === "string" ? query.state : "";
  if (state === "" || state.length > 512) {
    throw new Refusal("oauth_state_invalid", "The provider's reply carries no state Mailroom issued.");
  }
  return state;
}

/** The provider's own answer: an error it names, or else a code to exchange. */
function checkProviderAnswer(query: Record<string, unknown>): void {
  if (typeof query.error === "string" && query.error !== "") {
    throw authorizationError(query.error, query.error_description);
  }
  if (typeof query.code !== "string" || query.code === "") {
    throw new Refusal("oauth_provider_error", "The provider's reply has neither an authorization code nor an error.");
  }
}

function clipText(value: unknown): string {
  if (typeof value !== "string") return "";
  const flat = value.replace(/[\r\n\t]+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}

/** An `error` in the provider's redirect (the user declined, the request was refused). */
function authorizationError(error: string, description: unknown): Refusal {
  const code = clipText(error).slice(0, 80);
  const said = clipText(description);
  const detail = `${code}${said ? `: ${said}` : ""}`;
  switch (error) {
    case "access_denied":
    case "consent_required":
    case "interaction_required":
    case "login_required":
      return new Refusal(
        "oauth_access_denied",
        `Access was not granted (${detail}). Authorize again and allow every permission, or ask an administrator to approve the app.`,
      );
    case "invalid_client":
    case "unauthorized_client":
      return new Refusal("oauth_invalid_client", `The provider rejected the OAuth client (${detail}).`);
    case "redirect_uri_mismatch":
      return new Refusal("oauth_redirect_uri_mismatch", `The provider rejected the redirect URI (${detail}).`);
    case "invalid_scope":
      return new Refusal("oauth_scope_missing", `The provider refused the requested permissions (${detail}).`);
    default:
      return new Refusal("oauth_provider_error", `The provider refused the authorization (${detail}).`);
  }
}

/** A failed code exchange at the token endpoint. */
function exchangeError(provider: OAuthProvider, failure: OAuthFailure): Refusal {
  const said = `${provider.label} answered ${failure.text}`;
  const description = failure.description ?? "";
  if (failure.unreachable || (failure.status !== null && failure.status >= 500) || failure.status === 429) {
    return new Refusal(
      "oauth_exchange_failed",
      `${provider.label}'s token endpoint failed: ${failure.text}. Try again in a moment.`,
    );
  }
  if (failure.error === "invalid_client" || failure.error === "unauthorized_client") {
    return new Refusal("oauth_invalid_client", `${said}: check the client ID and client secret.`);
  }
  if (failure.error === "redirect_uri_mismatch") {
    return new Refusal("oauth_redirect_uri_mismatch", `${said}: register the server's Redirect URI exactly.`);
  }
  if (failure.error === "invalid_grant" || /code[_ ]?verifier|code_challenge|pkce/i.test(description)) {
    return new Refusal("oauth_code_rejected", `${said}: start again with 'Authorize account'.`);
  }
  if (/redirect[_ ]?uri|reply (url|address)/i.test(description)) {
    return new Refusal("oauth_redirect_uri_mismatch", `${said}: register the server's Redirect URI exactly.`);
  }
  return new Refusal("oauth_exchange_failed", `${said}.`);
}
