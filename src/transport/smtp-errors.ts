/**
 * Turns whatever nodemailer (or the network, or TLS) threw into a DeliveryError with a
 * catalogue code, a FailureKind that tells the queue what to do, and the server's own
 * response. The message names the host and what went wrong; the catalogue summary is the hint.
 */
import type { ErrorCode } from "../kernel/errors.js";
import { DeliveryError, type FailureKind } from "../kernel/transport.js";
import { NETWORK_CLASS, networkFailure } from "./failure.js";
import type { Redactor } from "./transcript.js";

export type SmtpSecurity = "starttls" | "tls" | "none";
/**
 * What a driver says when its provider's server rejects the login: the provider knowledge
 * (Gmail's 535 has its own code; Microsoft 365 needs SMTP AUTH on the mailbox) stays in the
 * driver's folder. `who` is " of <user>" or "".
 */
export interface LoginRejection {
  code: ErrorCode;
  message(where: string, who: string): string;
}

export interface SmtpErrorContext {
  host: string;
  port: number;
  security: SmtpSecurity;
  /** The driver's own words for a rejected login; the default names the host. */
  loginRejected?: LoginRejection;
  oauth: boolean;
  user?: string;
  redactor: Redactor;
}

/** The fields nodemailer puts on its errors (see nodemailer's NodemailerError). */
interface SmtpFailure {
  message?: string;
  code?: string;
  originalCode?: string;
  errno?: number;
  command?: string;
  response?: string;
  responseCode?: number;
  timeoutType?: string;
  reason?: string;
  cause?: unknown;
}

/** Marks an error that came from the AccessTokenProvider, so nodemailer's relabelling (EAUTH) does not hide it. */
const PROVIDER_ERROR = Symbol("mailroom.providerError");

export function wrapProviderError(err: unknown): Error {
  const wrapper = new Error(err instanceof Error ? err.message : String(err));
  Object.defineProperty(wrapper, PROVIDER_ERROR, { value: err, enumerable: false });
  return wrapper;
}

function providerError(err: unknown): unknown {
  return err && typeof err === "object" ? (err as { [PROVIDER_ERROR]?: unknown })[PROVIDER_ERROR] : undefined;
}

const DROPPED_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ECONNECTION", "EPROTOCOL", "ESOCKET"]);

/** OpenSSL's words for a handshake answered in plain text, as shown to the admin. */
const OPENSSL_MISMATCH = /wrong version number|packet length too long|unknown protocol|http request|record layer failure/i;

/** A TLS handshake that met something that does not speak TLS: plain SMTP on a TLS port, or the reverse. */
function isProtocolMismatch(codes: string[], message: string): boolean {
  return (
    codes.some((c) => c.startsWith("ERR_SSL_") && c !== "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN") ||
    OPENSSL_MISMATCH.test(message)
  );
}

/** What was wrong with a refused certificate, in words (the system code follows in the message). */
function certificateProblem(systemCode: string, reason: string): string {
  switch (systemCode) {
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "CERT_UNTRUSTED":
    case "INVALID_CA":
      return "is not signed by an authority Mailroom trusts: it is self-signed or from a private CA";
    case "CERT_HAS_EXPIRED":
      return "has expired";
    case "CERT_NOT_YET_VALID":
      return "is not valid yet (check this machine's clock)";
    case "ERR_TLS_CERT_ALTNAME_INVALID":
    case "HOSTNAME_MISMATCH":
      return `is issued for other names: ${reason}`;
    default:
      return `was refused: ${reason}`;
  }
}

function failureCodes(e: SmtpFailure): string[] {
  const codes = [e.code, e.originalCode];
  const cause = e.cause as SmtpFailure | undefined;
  if (cause && typeof cause === "object") codes.push(cause.code, cause.originalCode);
  return codes.filter((c): c is string => typeof c === "string");
}

function make(code: ErrorCode, kind: FailureKind, message: string, e: SmtpFailure, ctx: SmtpErrorContext): DeliveryError {
  const remote: { code?: number; command?: string; response?: string } = {};
  if (typeof e.responseCode === "number") remote.code = e.responseCode;
  if (e.command && e.command !== "CONN" && e.command !== "API") remote.command = e.command;
  if (e.response) remote.response = ctx.redactor.redact(e.response.trim());
  return new DeliveryError(code, kind, ctx.redactor.redact(message), remote);
}

/** nodemailer appends ": <response>" to its messages; the response is reported separately. */
function reason(e: SmtpFailure): string {
  const message = e.message ?? "unknown error";
  return e.response && message.endsWith(`: ${e.response}`) ? message.slice(0, -(e.response.length + 2)) : message;
}

export function toSmtpDeliveryError(err: unknown, ctx: SmtpErrorContext): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const fromProvider = providerError(err);
  if (fromProvider instanceof DeliveryError) return fromProvider;
  const e: SmtpFailure = err && typeof err === "object" ? (err as SmtpFailure) : { message: String(err) };
  const where = `${ctx.host}:${ctx.port}`;
  if (fromProvider !== undefined) {
    return make(
      "oauth_token_unavailable",
      "transient",
      `No access token for ${ctx.user ?? "the account"}: ${fromProvider instanceof Error ? fromProvider.message : String(fromProvider)}`,
      {},
      ctx,
    );
  }
  const codes = failureCodes(e);
  const message = e.message ?? "";
  const status = e.responseCode;
  const command = (e.command ?? "").toUpperCase();
  const response = e.response?.trim() ?? "";

  // Network and TLS, before any SMTP reply: classed as for every driver (./failure.ts).
  const network = networkFailure(codes);
  if (network?.code === "tls_certificate_invalid") {
    const what = certificateProblem(network.systemCode, reason(e).replace(/^Error initiating TLS - /, ""));
    return make(network.code, network.kind, `The TLS certificate of ${where} ${what} (${network.systemCode}).`, e, ctx);
  }
  if (network?.code === "dns_not_found" || codes.includes("EDNS")) {
    return make("dns_not_found", NETWORK_CLASS.dns_not_found, `The host name ${ctx.host} does not resolve: ${reason(e)}`, e, ctx);
  }
  if (network?.code === "connection_refused") {
    return make(network.code, network.kind, `Nothing accepts connections on ${where} (connection refused).`, e, ctx);
  }
  if (network?.code === "connection_timeout" && !codes.includes("ETIMEDOUT") && !e.timeoutType) {
    return make(network.code, network.kind, `${where} cannot be reached from here: ${reason(e)}`, e, ctx);
  }
  if (isProtocolMismatch(codes, message) && ctx.security === "tls") {
    const said = OPENSSL_MISMATCH.exec(message)?.[0];
    return make(
      "port_expects_starttls",
      "server",
      `${where} answered the TLS handshake in plain text${said ? ` (“${said}”)` : ""}: it does not speak TLS from the first byte.`,
      e,
      ctx,
    );
  }
  if (isProtocolMismatch(codes, message)) {
    const expected = ctx.security === "tls" ? "TLS from the first byte" : "STARTTLS";
    return make(
      "tls_wrong_port",
      "server",
      `The TLS handshake with ${where} failed: the port does not speak ${expected} (${reason(e)}).`,
      e,
      ctx,
    );
  }
  if (codes.includes("ETIMEDOUT") || e.timeoutType) {
    if (e.timeoutType === "GREETING_TIMEOUT" && ctx.security !== "tls") {
      // A TLS port waits for our handshake while we wait for its greeting.
      return make(
        ctx.port === 465 ? "port_expects_tls" : "connection_timeout",
        ctx.port === 465 ? "server" : NETWORK_CLASS.connection_timeout,
        `${where} accepted the connection but sent no SMTP greeting; if this port expects TLS from the first byte (465), set Security to TLS.`,
        e,
        ctx,
      );
    }
    const phase =
      e.timeoutType === "CONNECT_TIMEOUT"
        ? "to accept the connection"
        : e.timeoutType === "UPGRADE_TIMEOUT"
          ? "to finish the TLS handshake"
          : "to answer";
    return make("connection_timeout", NETWORK_CLASS.connection_timeout, `${where} took too long ${phase}.`, e, ctx);
  }

  // STARTTLS refused or not offered: a 454 ("TLS not available") is no more temporary than a 502.
  if (command === "STARTTLS" && status !== undefined && status >= 400 && status !== 421) {
    return make("starttls_not_offered", "server", `${where} does not offer STARTTLS.`, e, ctx);
  }

  // SMTP replies.
  if (status === 421) {
    return make("temporary_failure", "transient", `${where} is closing the connection for now.`, e, ctx);
  }
  if (status === 538 || (status === 530 && /starttls|\btls\b|encrypt/i.test(response))) {
    return make(
      "smtp_starttls_required",
      "server",
      `${where} requires STARTTLS before ${command.startsWith("AUTH") ? "login" : "sending"}.`,
      e,
      ctx,
    );
  }
  if (status === 530) {
    const fix = ctx.user
      ? "but offered no login on this connection; many servers offer it only after STARTTLS, so check Security"
      : "set a username and password";
    return make("smtp_auth_failed", "server", `${where} requires a login before sending: ${fix}.`, e, ctx);
  }
  const isAuth = command.startsWith("AUTH") || codes.includes("EAUTH");
  if (isAuth) {
    if (status !== undefined && status >= 400 && status < 500) {
      return make("temporary_failure", "transient", `${where} could not check the login for now.`, e, ctx);
    }
    if (status === 504 || (status === undefined && /unknown authentication method/i.test(message))) {
      return make(
        "smtp_auth_unsupported",
        "server",
        `${where} does not accept the login method ${command.replace(/^AUTH /, "") || "offered"}.`,
        e,
        ctx,
      );
    }
    if (status === undefined && /missing credentials/i.test(message)) {
      return make("smtp_auth_failed", "server", `No password is set for ${ctx.user ?? "the username"}.`, e, ctx);
    }
    const who = ctx.user ? ` of ${ctx.user}` : "";
    if (ctx.loginRejected) return make(ctx.loginRejected.code, "server", ctx.loginRejected.message(where, who), e, ctx);
    const detail = ctx.oauth ? " with its access token" : "";
    return make("smtp_auth_failed", "server", `${where} rejected the login${who}${detail}.`, e, ctx);
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return make(
      "temporary_failure",
      "transient",
      `${where} answered ${command || "the message"} with a temporary error.`,
      e,
      ctx,
    );
  }
  if (status !== undefined && status >= 500 && status !== 503) {
    if (command.startsWith("MAIL")) {
      return make("sender_rejected", "server", `${where} refused the from address.`, e, ctx);
    }
    if (command.startsWith("RCPT")) {
      return make("recipient_rejected", "recipient", `${where} refused the recipient.`, e, ctx);
    }
    return make("message_rejected", "message", `${where} refused the message.`, e, ctx);
  }
  if (codes.includes("EENVELOPE")) {
    return make("recipient_rejected", "recipient", `The envelope is not valid: ${reason(e)}`, e, ctx);
  }
  if (codes.includes("EMESSAGE")) {
    return make("message_rejected", "message", `The message cannot be sent: ${reason(e)}`, e, ctx);
  }
  if (codes.includes("ETLS")) {
    return make(
      "connection_dropped",
      NETWORK_CLASS.connection_dropped,
      `The TLS upgrade with ${where} failed: ${reason(e)}`,
      e,
      ctx,
    );
  }
  if (codes.some((c) => DROPPED_CODES.has(c)) || /closed|pool was closed/i.test(message) || status === 503) {
    return make(
      "connection_dropped",
      NETWORK_CLASS.connection_dropped,
      `The connection to ${where} was lost: ${reason(e)}`,
      e,
      ctx,
    );
  }
  return make("internal_error", "transient", `Sending through ${where} failed: ${reason(e)}`, e, ctx);
}
