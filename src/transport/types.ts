import type { Logger } from "pino";
import type { ErrorCode } from "../core/errors.js";
import type { Settings } from "../core/settings.js";
import type { FailureKind } from "./failure.js";

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

// The classes and what each does: ./failure.ts.
export type { FailureKind } from "./failure.js";

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
  /** A valid access token; `renew` forces a refresh after the server rejected the last one. */
  accessToken(renew: boolean): Promise<string>;
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
