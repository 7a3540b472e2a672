/**
 * The failure policy's classes, and the one mapping of network failures (DNS, refused,
 * unreachable, timeouts, resets, certificates) that every driver uses, so the same event is
 * the same class whichever driver met it. Drivers map their protocol's own answers (SMTP
 * replies, HTTP statuses, SES exceptions) to these classes; src/queue/worker.ts decides what
 * each class does (see docs/operations.md, "Failure model").
 */
import type { ErrorCode } from "../kernel/errors.js";

import type { FailureKind } from "../kernel/transport.js";

// The classes are kernel types (src/kernel/transport.ts); what each does is src/queue/worker.ts.
export type { FailureKind };

/** Certificate problems: the peer is reachable, but its certificate is not valid for this host or not trusted. */
const CERTIFICATE_CODES = new Set([
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REVOKED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
  "INVALID_CA",
]);

// Every resolver answer that means "no address for this name", now or for good: a name
// that does not resolve is the server's configuration or its DNS, whichever driver looks.
const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "ENODATA", "ESERVFAIL", "EAI_FAIL", "EAI_NONAME", "ETIMEOUT"]);
const REFUSED_CODES = new Set(["ECONNREFUSED"]);
const UNREACHABLE_CODES = new Set(["EHOSTUNREACH", "ENETUNREACH", "EHOSTDOWN", "ENETDOWN"]);
const TIMEOUT_CODES = new Set(["ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT"]);
const DROPPED_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "UND_ERR_SOCKET", "UND_ERR_CLOSED"]);

/** The class of each network failure, for every driver. */
export const NETWORK_CLASS = {
  tls_certificate_invalid: "server",
  dns_not_found: "server",
  connection_refused: "server",
  // A server that never answers is as unusable as one that refuses: the breaker decides.
  connection_timeout: "server",
  // It answered, then went away: this attempt, not the server, is what failed.
  connection_dropped: "transient",
} as const satisfies Partial<Record<ErrorCode, FailureKind>>;

export type NetworkCode = keyof typeof NETWORK_CLASS;

export interface NetworkFailure {
  code: NetworkCode;
  kind: FailureKind;
  /** What happened, to follow "<where> …" in a driver's message. */
  what: string;
  /** The system code that decided it (ENOTFOUND, ECONNREFUSED, …). */
  systemCode: string;
}

/**
 * Classes a failure below the protocol by its system codes (the error's own, an
 * `originalCode` as nodemailer keeps it, and its cause's). Undefined when none is a network
 * code: the driver's own mapping decides.
 */
export function networkFailure(codes: (string | undefined)[]): NetworkFailure | undefined {
  const known = codes.filter((c): c is string => typeof c === "string" && c !== "");
  const rules: [Set<string>, NetworkCode, string][] = [
    [CERTIFICATE_CODES, "tls_certificate_invalid", "has a certificate that was refused"],
    [DNS_CODES, "dns_not_found", "does not resolve"],
    [REFUSED_CODES, "connection_refused", "refused the connection"],
    [UNREACHABLE_CODES, "connection_timeout", "cannot be reached from here"],
    [TIMEOUT_CODES, "connection_timeout", "did not answer in time"],
    [DROPPED_CODES, "connection_dropped", "dropped the connection"],
  ];
  for (const [set, code, what] of rules) {
    const systemCode = known.find((c) => set.has(c));
    if (systemCode) return { code, kind: NETWORK_CLASS[code], what, systemCode };
  }
  return undefined;
}

/** The system codes of an error and of its cause (fetch and the AWS SDK put them there). */
export function systemCodes(err: unknown): string[] {
  const out: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 3 && current && typeof current === "object"; depth++) {
    const e = current as { code?: unknown; originalCode?: unknown; cause?: unknown };
    if (typeof e.code === "string") out.push(e.code);
    if (typeof e.originalCode === "string") out.push(e.originalCode);
    current = e.cause;
  }
  return out;
}
