/**
 * The one place where Mailroom calls a provider's HTTP API: timeouts,
 * the mapping of statuses and network failures to delivery errors, Retry-After, and the
 * redacted transcript that `check()` shows. Drivers add only what is theirs (their
 * documented error bodies) through `mapError`.
 */
import { type ErrorCode, errorEntry } from "../kernel/errors.js";
import { type OperatorPolicy, STRICT_OPERATOR } from "../kernel/operator-policy.js";
import {
  type AccessTokenProvider,
  type CheckResult,
  DeliveryError,
  type FailureKind,
  type TestStep,
} from "../kernel/transport.js";
import { NETWORK_CLASS, networkFailure, systemCodes } from "./failure.js";
import { checkResolvedHost, urlPort } from "./operator.js";
import { Redactor } from "./transcript.js";

/** How long a provider may take to answer before the attempt counts as a timeout. */
export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;
/** The most of a response body kept in an attempt's remote response. */
const MAX_RESPONSE_CHARS = 2000;

export interface ProviderResponse {
  status: number;
  statusText: string;
  headers: Headers;
  /** The body as text (whole; provider answers are small). */
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  ms: number;
}

/** Turns a provider's own error answer into a delivery error; undefined leaves it to the common mapping. */
export type ProviderErrorMapper = (response: ProviderResponse, remote: RemoteResponse) => DeliveryError | undefined;

export interface RemoteResponse {
  code: number;
  /** The body, only when it is the provider's own error shape (redacted). */
  response?: string;
}

export interface ProviderRequest {
  /** The provider's name, for messages: "Mailgun". */
  provider: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Built with new URL(), never by concatenating settings. */
  url: URL;
  headers?: Record<string, string>;
  body?: string | FormData | Uint8Array;
  timeoutMs?: number;
  /** Values that must never appear in a transcript or a kept response (keys, tokens). */
  secrets: string[];
  mapError?: ProviderErrorMapper;
  /**
   * Whether an error body is the provider's own JSON error shape. Only then is the body
   * kept and shown: whatever else answered is reported by its status alone.
   */
  isProviderError?: (json: unknown) => boolean;
  /** Refuses link-local and metadata addresses unless the operator allowed the endpoint. */
  operator?: OperatorPolicy;
  /** When given, gets one redacted line for the request and one for its outcome. */
  transcript?: HttpTranscript;
}

/**
 * Sends one request and answers its 2xx response; anything else throws a DeliveryError:
 * 401/403 → provider_unauthorized (server), 429 → provider_rate_limited (rate_limited, with
 * Retry-After), 5xx → provider_unavailable (transient), other 4xx → message_rejected
 * (this message only) unless `mapError` knows better; network failures as ./failure.ts says.
 */
export async function callProvider(request: ProviderRequest): Promise<ProviderResponse> {
  const { provider, transcript } = request;
  const timeoutMs = request.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  const url = request.url;
  transcript?.request(request.method, url.href);
  const started = performance.now();
  let raw: Response;
  let text: string;
  try {
    await checkResolvedHost(request.operator ?? STRICT_OPERATOR, {
      protocol: url.protocol,
      host: url.hostname,
      port: urlPort(url),
    });
    raw = await fetch(url, {
      method: request.method,
      headers: request.headers,
      // A Buffer is a Uint8Array, which fetch sends as is; its types know only the ArrayBuffer-backed kind.
      body: request.body as BodyInit | undefined,
      signal: AbortSignal.timeout(timeoutMs),
      // A redirect would carry our custom auth headers elsewhere; provider APIs never redirect.
      redirect: "manual",
    });
    text = await raw.text();
  } catch (err) {
    const error = networkError(provider, err, timeoutMs);
    transcript?.failure(error.message, Math.round(performance.now() - started));
    throw error;
  }
  const ms = Math.round(performance.now() - started);
  const response: ProviderResponse = {
    status: raw.status,
    statusText: raw.statusText,
    headers: raw.headers,
    text,
    json: parseJson(text),
    ms,
  };
  transcript?.response(raw.status, raw.statusText, ms);
  if (raw.status >= 200 && raw.status < 300) return response;

  const ownShape = response.json !== undefined && request.isProviderError?.(response.json) === true;
  const redacted = ownShape ? redact(text.trim(), request.secrets) : "";
  const remote: RemoteResponse = { code: raw.status, ...(redacted ? { response: redacted.slice(0, MAX_RESPONSE_CHARS) } : {}) };
  // Drivers read the error body through the same redaction as the kept response.
  const seen: ProviderResponse = { ...response, text: redacted, json: parseJson(redacted) };
  throw request.mapError?.(seen, remote) ?? statusError(provider, seen, remote);
}

/**
 * A call authorized by an OAuth access token (the Gmail API, Microsoft Graph). A 401 means
 * the token was revoked or expired early: it is renewed once (a single refresh, shared with
 * every other sender of the server) and the call repeated; a second 401 is the answer.
 */
export async function callWithAccessToken(
  tokens: AccessTokenProvider,
  request: (token: string) => ProviderRequest,
): Promise<ProviderResponse> {
  const token = await tokens.accessToken(false);
  try {
    return await callProvider(request(token));
  } catch (err) {
    if (!(err instanceof DeliveryError) || err.remote.code !== 401) throw err;
    return callProvider(request(await tokens.accessToken(true, token)));
  }
}

/** The common mapping of a non-2xx answer. */
export function statusError(provider: string, response: ProviderResponse, remote: RemoteResponse): DeliveryError {
  const { status } = response;
  const said = remote.response ? `: ${remote.response.slice(0, 300)}` : "";
  const fail = (code: ErrorCode, kind: FailureKind, message: string, retryAfterMs?: number) =>
    new DeliveryError(code, kind, message, remote, retryAfterMs);
  if (status === 401 || status === 403) {
    return fail("provider_unauthorized", "server", `${provider} rejected the API key or token (HTTP ${status})${said}`);
  }
  if (status === 429) {
    const wait = retryAfterMs(response.headers.get("retry-after"));
    const when = wait === undefined ? "" : `; it asked to wait ${Math.ceil(wait / 1000)} s`;
    return fail("provider_rate_limited", "rate_limited", `${provider} is rate limiting (HTTP 429)${when}`, wait);
  }
  if (status >= 500) {
    return fail(
      "provider_unavailable",
      "transient",
      `${provider} answered with a server error (HTTP ${status})${said}`,
      retryAfterMs(response.headers.get("retry-after")),
    );
  }
  if (status >= 300 && status < 400) {
    // Not the message's fault: the base URL points somewhere that moved; hold until fixed.
    // Where it points is not shown: it is whatever answered, not the provider's words.
    return fail(
      "provider_unavailable",
      "server",
      `${provider} redirected the request (HTTP ${status}): set the API base URL to the provider's API address`,
    );
  }
  return fail("message_rejected", "message", `${provider} refused the message (HTTP ${status})${said}`);
}

export function networkError(provider: string, err: unknown, timeoutMs: number): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const name = err instanceof Error ? err.name : "";
  if (name === "TimeoutError" || name === "AbortError") {
    return new DeliveryError(
      "connection_timeout",
      NETWORK_CLASS.connection_timeout,
      `${provider} did not answer within ${timeoutMs} ms`,
    );
  }
  const cause = err instanceof Error ? (err.cause as { message?: string } | undefined) : undefined;
  const detail = cause?.message ?? (err instanceof Error ? err.message : String(err));
  const codes = systemCodes(err);
  const network = networkFailure(codes);
  if (network?.code === "dns_not_found") {
    return new DeliveryError(network.code, network.kind, `${provider}'s API host does not resolve (${detail})`);
  }
  if (network?.code === "tls_certificate_invalid" || codes.some((c) => c.startsWith("ERR_TLS") || c.includes("CERT"))) {
    return new DeliveryError(
      "tls_certificate_invalid",
      NETWORK_CLASS.tls_certificate_invalid,
      `${provider}'s certificate was not accepted (${detail})`,
    );
  }
  if (network) return new DeliveryError(network.code, network.kind, `${provider} ${network.what} (${detail})`);
  return new DeliveryError(
    "connection_dropped",
    NETWORK_CLASS.connection_dropped,
    `The connection to ${provider} failed (${codes[0] || detail})`,
  );
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Removes every secret (raw, URL-encoded, base64, inside any base64 token) and every AUTH
 * blob from a text. A driver that sends a secret in another form (e.g. Basic credentials
 * `user:key`) lists that form among its secrets too.
 */
export function redact(text: string, secrets: string[]): string {
  // A 1-3 character "secret" would shred the text.
  return new Redactor(secrets.filter((s) => s && s.length >= 4)).redact(text);
}

/** A URL fit for a transcript: no user or password, secrets removed from path and query. */
export function redactUrl(url: string, secrets: string[]): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return redact(parsed.toString(), secrets);
  } catch {
    return redact(url, secrets);
  }
}

/**
 * The transcript of `check()` for HTTP drivers: method, URL, status and time per request.
 * Headers and bodies are never written, so the Authorization header, keys and tokens (and
 * anything a provider echoes back, such as Postmark's ApiTokens) cannot appear.
 */
export class HttpTranscript {
  readonly lines: string[] = [];

  constructor(readonly secrets: string[]) {}

  request(method: string, url: string): void {
    this.lines.push(`> ${method} ${redactUrl(url, this.secrets)}`);
  }

  response(status: number, statusText: string, ms: number): void {
    this.lines.push(`< ${status}${statusText ? ` ${statusText}` : ""} (${ms} ms)`);
  }

  failure(message: string, ms: number): void {
    this.lines.push(`! ${redact(message, this.secrets)} (${ms} ms)`);
  }

  note(line: string): void {
    this.lines.push(redact(line, this.secrets));
  }
}

/**
 * Builds a CheckResult step by step: each step is timed; the first failure ends the check
 * with its catalogue code and hint. Used by the API drivers and Capture.
 */
export class CheckSteps {
  readonly steps: TestStep[] = [];
  private error: CheckResult["error"];

  constructor(
    readonly transcript: HttpTranscript,
    private readonly onStep?: (step: TestStep) => void,
  ) {}

  private record(step: TestStep): void {
    this.steps.push(step);
    this.onStep?.(step);
  }

  /** Runs one step; `work` answers the step's detail. Answers false once a step has failed. */
  async run(step: string, work: () => Promise<string>): Promise<boolean> {
    if (this.error) return false;
    const started = performance.now();
    try {
      const detail = await work();
      this.record({ step, ok: true, ms: Math.round(performance.now() - started), detail });
      return true;
    } catch (err) {
      this.fail(step, err, Math.round(performance.now() - started));
      return false;
    }
  }

  /** Records a failed step from an error (a DeliveryError keeps its code and remote response). */
  fail(step: string, err: unknown, ms = 0): void {
    const delivery = err instanceof DeliveryError ? err : undefined;
    const code: ErrorCode = delivery?.code ?? "internal_error";
    const message = redact(err instanceof Error ? err.message : String(err), this.transcript.secrets);
    this.record({ step, ok: false, ms, detail: message });
    const remote = delivery && Object.keys(delivery.remote).length > 0 ? delivery.remote : undefined;
    this.error = { code, message, hint: errorEntry(code).summary, ...(remote ? { remote } : {}) };
  }

  result(): CheckResult {
    return { steps: this.steps, transcript: this.transcript.lines, ...(this.error ? { error: this.error } : {}) };
  }
}
