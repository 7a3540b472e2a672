/**
 * The SMTP transport shared by the smtp, gmail and microsoft365 drivers: a nodemailer pool
 * per email server, password or XOAUTH2 login, every failure mapped to a DeliveryError,
 * and a check that proves the connection without delivering anything (smtp-check.ts).
 */
import { rootCertificates } from "node:tls";
import { createTransport } from "nodemailer";
import type { SMTPPoolOptions } from "nodemailer/lib/smtp-pool";
import type { XOAuth2ProvisionCallback, XOAuth2ProvisionResultCallback } from "nodemailer/lib/xoauth2";
import { errorEntry } from "../kernel/errors.js";
import { STRICT_OPERATOR } from "../kernel/operator-policy.js";
import {
  type AccessTokenProvider,
  type CheckProbe,
  type CheckResult,
  DeliveryError,
  type OutgoingMessage,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../kernel/transport.js";
import { toNodemailerMail } from "./mime.js";
import {
  connectAllowed,
  isInvalidGreeting,
  notSmtpServer,
  runSmtpCheck,
  type SmtpEndpoint,
  type SmtpLogin,
} from "./smtp-check.js";
import {
  type LoginRejection,
  type SmtpErrorContext,
  type SmtpSecurity,
  toSmtpDeliveryError,
  wrapProviderError,
} from "./smtp-errors.js";
import { Redactor } from "./transcript.js";

export type { SmtpEndpoint } from "./smtp-check.js";
export type { LoginRejection, SmtpSecurity } from "./smtp-errors.js";

export interface SmtpTransportOptions {
  /** The driver's own words for a rejected login (Gmail's 535). */
  loginRejected?: LoginRejection;
  /** Log in with XOAUTH2 using ctx.tokens instead of a username and password. */
  oauth?: boolean;
  /**
   * A PEM CA to trust in addition to the system store. Not a setting: an admin with a
   * private CA sets NODE_EXTRA_CA_CERTS for the process. Tests generate their CA at run
   * time, after Node has read that variable, so they pass it here to prove that a
   * verified certificate is accepted.
   */
  trustedCa?: string;
}

const SECURITY_MODES: readonly SmtpSecurity[] = ["starttls", "tls", "none"];

/** A server's SMTP settings with their defaults (gmail and microsoft365 lack some fields). */
export function smtpEndpoint(ctx: TransportContext, trustedCa?: string): SmtpEndpoint {
  const s = ctx.settings;
  const security = SECURITY_MODES.includes(s.security as SmtpSecurity) ? (s.security as SmtpSecurity) : "starttls";
  const port = Number(s.port) || (security === "tls" ? 465 : 587);
  const timeoutSeconds = Number(s.timeoutSeconds) || 30;
  return {
    host: String(s.host ?? "").trim(),
    port,
    security,
    verifyCertificate: s.verifyCertificate !== false,
    timeoutMs: Math.min(timeoutSeconds * 1000, ctx.maxTimeoutMs ?? Number.POSITIVE_INFINITY),
    trustedCa: trustedCa ?? ctx.trustedCa,
  };
}

/** TLS options for nodemailer: the system store plus any extra CA, verification as configured. */
export function tlsOptions(endpoint: SmtpEndpoint): { rejectUnauthorized: boolean; ca?: string[]; minVersion: "TLSv1.2" } {
  return {
    rejectUnauthorized: endpoint.verifyCertificate,
    // `ca` replaces Node's default store, so the system roots are listed too.
    ...(endpoint.trustedCa ? { ca: [...rootCertificates, endpoint.trustedCa] } : {}),
    minVersion: "TLSv1.2",
  };
}

/** nodemailer's connection options for a security mode. */
export function securityOptions(security: SmtpSecurity): { secure: boolean; requireTLS?: boolean; ignoreTLS?: boolean } {
  if (security === "tls") return { secure: true };
  if (security === "none") return { secure: false, ignoreTLS: true };
  return { secure: false, requireTLS: true };
}

/**
 * Hands ctx.tokens to nodemailer's XOAUTH2 provision callback. A rejected token is renewed
 * once per message, and once per expiry across the pool: every renewal names the token the
 * server refused, so a connection refused a token another connection has already replaced
 * takes the replacement instead of refreshing again.
 */
export class OAuthTokenBridge {
  /** Renewals nodemailer asked for within a session (the server answered 334, then 535). */
  sessionRenewals = 0;
  /** Tokens handed out so far; marks a point in time for tokenHandedOutSince. */
  handedOut = 0;
  private readonly recent: { n: number; token: string }[] = [];
  /** Tokens a server refused: never offered again. */
  private readonly refused: string[] = [];
  private pendingRefusal: string | undefined;
  private readonly listeners = new Set<(token: string) => void>();

  /** nodemailer's XOAUTH2 provision callback. */
  readonly provision: XOAuth2ProvisionCallback;

  constructor(readonly tokens: AccessTokenProvider) {
    const provide = (connection: XOAuth2Login | undefined, renew: boolean, callback: XOAuth2ProvisionResultCallback) =>
      this.provide(connection, renew, callback);
    // nodemailer calls it as a method of the connection's XOAuth2 object (`this`), whose
    // accessToken is, when it asks to renew, the token the server just refused.
    this.provision = function (this: XOAuth2Login | undefined, _user, renew, callback) {
      provide(this, renew, callback);
    };
  }

  /** A server refused `token` at once (535, no 334): the next login renews it, unless it was replaced already. */
  refuse(token: string): void {
    this.noteRefused(token);
    this.pendingRefusal = token;
  }

  private noteRefused(token: string): void {
    if (!this.refused.includes(token)) this.refused.push(token);
    if (this.refused.length > 5) this.refused.shift();
  }

  /**
   * The token a login that failed since `mark` used: the first handed out since then (the
   * current one at the time), as no login of this message can be older.
   */
  tokenHandedOutSince(mark: number): string | undefined {
    return (this.recent.find((r) => r.n > mark) ?? this.recent.at(-1))?.token;
  }

  /** Tokens handed out lately: what error messages and transcripts must never show. */
  recentTokens(): string[] {
    return this.recent.map((r) => r.token);
  }

  onToken(listener: (token: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private provide(connection: XOAuth2Login | undefined, renew: boolean, callback: XOAuth2ProvisionResultCallback): void {
    let rejected: string | undefined;
    if (renew) {
      this.sessionRenewals++;
      rejected = connection?.accessToken || undefined;
      if (rejected) this.noteRefused(rejected);
    } else {
      rejected = this.pendingRefusal;
      this.pendingRefusal = undefined;
    }
    this.obtain(renew || rejected !== undefined, rejected).then(
      (token) => {
        this.recent.push({ n: ++this.handedOut, token });
        if (this.recent.length > 20) this.recent.shift();
        for (const listener of this.listeners) listener(token);
        callback(null, token);
      },
      (err: unknown) => callback(wrapProviderError(err)),
    );
  }

  private async obtain(renew: boolean, rejected: string | undefined): Promise<string> {
    const token = await this.tokens.accessToken(renew, rejected);
    // Refused on another connection while this one was being handed it.
    return this.refused.includes(token) ? this.tokens.accessToken(true, token) : token;
  }
}

/** What the bridge reads of nodemailer's XOAuth2 object: the token it last logged in with. */
interface XOAuth2Login {
  accessToken?: string | false;
}

/** nodemailer gives Microsoft's and SES's ids as serverMessageId; others say "queued as <id>". */
function providerMessageId(info: { serverMessageId?: string; response?: string }): string | undefined {
  if (info.serverMessageId) return info.serverMessageId.replace(/^<|>$/g, "");
  return info.response?.match(/queued as ([A-Za-z0-9._@-]+)/i)?.[1];
}

/** A login the server refused (not a token the provider could not give). */
function isRejectedLogin(err: unknown): boolean {
  const e = err as { code?: string; responseCode?: number; command?: string };
  return e?.code === "EAUTH" && (e.responseCode === 535 || e.responseCode === 534) && !(err instanceof DeliveryError);
}

interface SentInfo {
  serverMessageId?: string;
  response?: string;
}

type PoolMailer = ReturnType<typeof createTransport<unknown, SMTPPoolOptions>>;

export class SmtpTransport implements Transport {
  private readonly endpoint: SmtpEndpoint;
  private readonly loginRejected?: LoginRejection;
  private readonly oauth?: OAuthTokenBridge;
  private pool?: { user?: string; mailer: PoolMailer };
  private closed = false;

  constructor(
    private readonly ctx: TransportContext,
    options: SmtpTransportOptions = {},
  ) {
    this.endpoint = smtpEndpoint(ctx, options.trustedCa);
    this.loginRejected = options.loginRejected;
    if (options.oauth) {
      if (!ctx.tokens) {
        throw new DeliveryError("oauth_not_authorized", "server", `No account is authorized for ${ctx.serverName}.`);
      }
      this.oauth = new OAuthTokenBridge(ctx.tokens);
    }
  }

  private username(): string | undefined {
    const user = this.ctx.settings.username;
    return typeof user === "string" && user.trim() !== "" ? user.trim() : undefined;
  }

  private redactor(): Redactor {
    return new Redactor([this.ctx.secrets.password, ...(this.oauth?.recentTokens() ?? [])]);
  }

  private errorContext(user: string | undefined): SmtpErrorContext {
    return { ...this.endpoint, loginRejected: this.loginRejected, oauth: !!this.oauth, user, redactor: this.redactor() };
  }

  private async oauthUser(): Promise<string> {
    try {
      return await this.oauth!.tokens.user();
    } catch (err) {
      throw toSmtpDeliveryError(wrapProviderError(err), this.errorContext(undefined));
    }
  }

  /** The pool, built on first use and rebuilt if the authorized account changed. */
  private async mailer(): Promise<{ user?: string; mailer: PoolMailer }> {
    const user = this.oauth ? await this.oauthUser() : this.username();
    if (this.pool && this.pool.user === user) return this.pool;
    this.pool?.mailer.close();
    const { endpoint } = this;
    const options: SMTPPoolOptions = {
      pool: true,
      maxConnections: Math.max(1, Math.floor(this.ctx.poolSize) || 1),
      // Our queue retries and records each attempt; the pool must not resend on its own.
      maxRequeues: 0,
      host: endpoint.host,
      port: endpoint.port,
      ...securityOptions(endpoint.security),
      tls: tlsOptions(endpoint),
      connectionTimeout: endpoint.timeoutMs,
      greetingTimeout: endpoint.timeoutMs,
      // Idle-socket timeout a little longer than the phase timeouts, so that a server that
      // never greets is reported as such, not as a silent socket.
      socketTimeout: endpoint.timeoutMs + 1000,
      dnsTimeout: endpoint.timeoutMs,
      logger: false,
      // Our own resolution and connection, so link-local and metadata addresses are refused
      // at connect time (nodemailer still does TLS, with the host name for verification).
      getSocket: (_options, callback) => {
        connectAllowed(endpoint, this.ctx.operator ?? STRICT_OPERATOR).then(
          ({ socket }) => callback(null, { connection: socket }),
          (err: unknown) => callback(err as Error),
        );
      },
    };
    if (this.oauth) {
      options.auth = { type: "OAuth2", user, provisionCallback: this.oauth.provision };
    } else if (user) {
      options.auth = { user, pass: this.ctx.secrets.password ?? "" };
    }
    const mailer = createTransport(options);
    // Each send gets its own error; an 'error' event without a listener would end the process.
    mailer.on("error", (err: Error & { code?: string }) => {
      this.ctx.log.warn({ code: err.code, err: this.redactor().redact(err.message) }, "SMTP pool error");
    });
    this.pool = { user, mailer };
    return this.pool;
  }

  /** One try through the pool; a failure comes back (not thrown) with the user it logged in as. */
  private async deliver(message: OutgoingMessage): Promise<{ info: SentInfo } | { failure: unknown; user?: string }> {
    const { user, mailer } = await this.mailer();
    try {
      return { info: (await mailer.sendMail(toNodemailerMail(message))) as SentInfo };
    } catch (failure) {
      return { failure, user };
    }
  }

  async send(message: OutgoingMessage): Promise<SendResult> {
    if (this.closed) throw new DeliveryError("connection_dropped", "transient", "The transport was closed.");
    const sessionRenewalsBefore = this.oauth?.sessionRenewals ?? 0;
    const mark = this.oauth?.handedOut ?? 0;
    let attempt = await this.deliver(message);
    // Gmail answers a stale token with 334 + 535 and nodemailer renews within the session.
    // A server that answers 535 at once (Outlook) gets no renewal from nodemailer: renew the
    // refused token here and send once more. Where nodemailer renewed (a 334 server), the
    // renewed token was refused too and another try would only repeat that.
    if (
      "failure" in attempt &&
      this.oauth &&
      isRejectedLogin(attempt.failure) &&
      this.oauth.sessionRenewals === sessionRenewalsBefore
    ) {
      const refused = this.oauth.tokenHandedOutSince(mark);
      if (refused) this.oauth.refuse(refused);
      attempt = await this.deliver(message);
    }
    if ("failure" in attempt) {
      // nodemailer's message for a bad greeting carries the peer's bytes: none are kept.
      if (isInvalidGreeting(attempt.failure)) throw notSmtpServer(this.endpoint);
      throw toSmtpDeliveryError(attempt.failure, this.errorContext(attempt.user));
    }
    return { providerMessageId: providerMessageId(attempt.info), response: attempt.info.response };
  }

  async check(probe: CheckProbe): Promise<CheckResult> {
    let login: SmtpLogin | undefined;
    const redactor = this.redactor();
    let stopListening = () => {};
    if (this.oauth) {
      let user: string;
      try {
        user = await this.oauthUser();
      } catch (err) {
        const e = err as DeliveryError;
        const step = { step: "auth", ok: false, ms: 0, detail: e.message };
        probe.onStep?.(step);
        return {
          steps: [step],
          transcript: [],
          error: { code: e.code, message: e.message, hint: hintFor(e) },
        };
      }
      stopListening = this.oauth.onToken((token) => redactor.add(token));
      login = { kind: "oauth2", user, provision: this.oauth.provision };
    } else {
      const user = this.username();
      if (user) login = { kind: "password", user, pass: this.ctx.secrets.password ?? "" };
    }
    try {
      return await runSmtpCheck({
        endpoint: this.endpoint,
        operator: this.ctx.operator ?? STRICT_OPERATOR,
        login,
        probe,
        errorContext: { ...this.errorContext(login?.user), redactor },
      });
    } finally {
      stopListening();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pool?.mailer.close();
    this.pool = undefined;
  }
}

function hintFor(e: DeliveryError): string {
  return errorEntry(e.code).summary;
}

/** The transport of the smtp driver, and of gmail and microsoft365 with `oauth`. */
export function createSmtpTransport(ctx: TransportContext, options: SmtpTransportOptions = {}): SmtpTransport {
  return new SmtpTransport(ctx, options);
}
