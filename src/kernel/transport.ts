import type { Logger } from "pino";
import type { ErrorCode } from "./errors.js";
import type { OperatorPolicy } from "./operator-policy.js";
import type { Settings } from "./settings.js";

export interface Address {
  address: string;
  name?: string;
}

export interface Attachment {
  filename: string;
  contentType: string;
  content: Buffer;
  /** For inline images referenced as cid:<contentId> in the html. */
  contentId?: string;
}

/** A message ready to hand to a driver: validated, from resolved, Message-ID assigned. */
export interface OutgoingMessage {
  /** Mailroom's id for the message. */
  id: string;
  /** The RFC 5322 Message-ID, without angle brackets. */
  messageId: string;
  from: Address;
  to: Address[];
  cc: Address[];
  bcc: Address[];
  replyTo: Address[];
  subject: string;
  text?: string;
  html?: string;
  attachments: Attachment[];
  headers: Record<string, string>;
  /**
   * The whole message as its client sent it (SMTP submission). Drivers send these bytes
   * unchanged to the envelope (to, cc and bcc); text, html, attachments and headers are
   * empty, and from, subject and messageId are what the bytes' headers say.
   */
  raw?: Buffer;
}

export interface SendResult {
  /** The provider's or remote server's id for the message, if it gave one. */
  providerMessageId?: string;
  /** The remote server's final response, e.g. "250 2.0.0 OK queued as 1234". */
  response?: string;
}

export interface TestStep {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
  /** Passed, with a risk the admin should weigh (e.g. no encryption). */
  warning?: boolean;
}

/** What `POST …/test` reports: each step, a transcript with every secret removed. */
export interface CheckResult {
  steps: TestStep[];
  transcript: string[];
  /** Set when a step failed: the catalogue code, what happened, the fix, and the server's own words. */
  error?: {
    code: ErrorCode;
    message: string;
    hint: string;
    remote?: { code?: number; command?: string; response?: string };
  };
}

/**
 * The failure policy's classes (the network mapping every driver uses: src/transport/failure.ts):
 * - recipient: a recipient is refused for good: the message fails at once;
 * - message: the message itself is refused for good (content, size, sender): fails at once;
 * - transient: a temporary failure (4xx, dropped connection, provider 5xx): retried with
 *   backoff until the message's attempts run out;
 * - rate_limited: the server asked to slow down: retried after its Retry-After (or the
 *   backoff), without using up an attempt;
 * - server: the server itself cannot be used (login, TLS, DNS, unreachable, configuration):
 *   counts toward the server's circuit breaker; once open, the server's mail is held and only
 *   probes reach the server until one passes;
 * - reauthorization: the OAuth grant is gone: mail is held until an admin authorizes again.
 */
export type FailureKind = "transient" | "rate_limited" | "recipient" | "message" | "server" | "reauthorization";

export class DeliveryError extends Error {
  override name = "DeliveryError";
  constructor(
    readonly code: ErrorCode,
    readonly kind: FailureKind,
    message: string,
    readonly remote: { code?: number; command?: string; response?: string } = {},
    /** A wait the remote asked for (Retry-After), in milliseconds. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Supplies OAuth access tokens to the SMTP path (see src/oauth). */
export interface AccessTokenProvider {
  /** The user to log in as (the authorized account). */
  user(): Promise<string>;
  /**
   * A valid access token. `renew`: the server rejected `rejected` (the last one handed out,
   * if not given); a refresh happens only if that token is still the current one.
   */
  accessToken(renew: boolean, rejected?: string): Promise<string>;
}

/** What a driver gets to build a transport for one email server. */
export interface TransportContext {
  serverId: string;
  serverName: string;
  fromAddress: string;
  settings: Settings;
  /** Decrypted secrets, for this transport only: never log or return them. */
  secrets: Record<string, string>;
  dataDir: string;
  log: Logger;
  /** Set for OAuth drivers. */
  tokens?: AccessTokenProvider;
  /** Connections to keep open per server (pooled drivers). */
  poolSize: number;
  /** PEM of extra certificate authorities to trust for TLS (MAILROOM_EXTRA_CA_FILE). */
  trustedCa?: string;
  /** What the operator allows (sendmail commands, extra endpoints); absent: nothing beyond the defaults. */
  operator?: OperatorPolicy;
  /** The longest any one wait may be, whatever the settings say (server tests cap it). */
  maxTimeoutMs?: number;
}

/** What a check probes with; `onStep` hears each step as it ends (the test endpoint streams them). */
export interface CheckProbe {
  from: string;
  to: string;
  onStep?: (step: TestStep) => void;
}

export interface Transport {
  send(message: OutgoingMessage): Promise<SendResult>;
  /** Proves connection and credentials without delivering anything. */
  check(probe: CheckProbe): Promise<CheckResult>;
  close(): Promise<void>;
}
