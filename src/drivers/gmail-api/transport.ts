/**
 * The Gmail API's users.messages.send (https://developers.google.com/gmail/api/reference/rest/v1/users.messages/send)
 * as the authorized account: `{raw: base64url}` as JSON for small messages, the MIME bytes
 * as `message/rfc822` to the media upload endpoint above the simple-request size, up to
 * Gmail's 35 MB. Gmail takes the recipients from the headers (Bcc included, which it removes).
 */
import { STRICT_OPERATOR } from "../../kernel/operator-policy.js";
import {
  type CheckResult,
  DeliveryError,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../../kernel/transport.js";
import {
  CheckSteps,
  callWithAccessToken,
  HttpTranscript,
  type ProviderErrorMapper,
  type ProviderRequest,
  type ProviderResponse,
  retryAfterMs,
} from "../../transport/http.js";
import { buildMime } from "../../transport/mime.js";
import { endpointUrl } from "../../transport/operator.js";
import { gmailApiCode } from "./errors.js";

export const GMAIL_API = "https://gmail.googleapis.com";
export const GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send";
/** Gmail's largest message (the media upload's limit). */
export const GMAIL_MAX_MESSAGE = 35 * 1024 * 1024;
/** Above this much MIME, the JSON body of a simple request gets too large: the media upload takes it. */
export const GMAIL_SIMPLE_LIMIT = 2 * 1024 * 1024;

export interface GmailApiOptions {
  timeoutMs?: number;
  /**
   * A service account's token, asked for with the server's from address as `sub`: `users/me`
   * is that mailbox. The app-only guard's check has already proved the token.
   */
  appOnly?: boolean;
}

interface GoogleError {
  code?: unknown;
  message?: unknown;
  status?: unknown;
  errors?: { reason?: unknown; message?: unknown }[];
}

/** Google's error body: {"error": {"code": 403, "message": "...", "errors": [{"reason": "..."}], "status": "..."}}. */
function isGoogleError(json: unknown): boolean {
  const error = (json as { error?: GoogleError } | undefined)?.error;
  return typeof error?.code === "number" && typeof error?.message === "string";
}

function googleError(response: ProviderResponse): { reasons: string[]; message: string; status: string } {
  const error = (response.json as { error?: GoogleError } | undefined)?.error;
  return {
    reasons: (error?.errors ?? []).map((e) => String(e.reason ?? "")),
    message: String(error?.message ?? ""),
    status: String(error?.status ?? ""),
  };
}

const RATE_REASONS = ["rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded", "quotaExceeded"];

/** Gmail's documented refusals; 401 (renewed by the caller) and the rest: the common mapping. */
const mapGmailError: ProviderErrorMapper = (response, remote) => {
  const { reasons, message, status } = googleError(response);
  const said = message ? `: ${message.slice(0, 300)}` : "";
  const has = (...wanted: string[]) => reasons.some((r) => wanted.includes(r));
  if (response.status === 429 || has(...RATE_REASONS)) {
    const wait = retryAfterMs(response.headers.get("retry-after"));
    const when = wait === undefined ? "" : `; it asked to wait ${Math.ceil(wait / 1000)} s`;
    return new DeliveryError(
      "provider_rate_limited",
      "rate_limited",
      `Gmail is limiting this account (${reasons[0] || response.status})${when}${said}`,
      remote,
      wait,
    );
  }
  if (response.status === 403 && (has("insufficientPermissions") || /SCOPE_INSUFFICIENT/.test(response.text))) {
    return new DeliveryError(
      gmailApiCode.gmail_api_scope_missing,
      "server",
      `The Gmail API refused the token: it lacks ${GMAIL_SEND}; authorize the account again and allow sending email${said}`,
      remote,
    );
  }
  if (response.status === 403 && (has("accessNotConfigured") || /SERVICE_DISABLED/.test(response.text))) {
    return new DeliveryError(
      gmailApiCode.gmail_api_not_enabled,
      "server",
      `The Gmail API is not enabled in the OAuth client's Google Cloud project: enable it under APIs & Services → Library${said}`,
      remote,
    );
  }
  if (response.status === 400 && /invalid (to|cc|bcc) header|recipient address required/i.test(message)) {
    return new DeliveryError("recipient_rejected", "recipient", `Gmail refused a recipient${said}`, remote);
  }
  if (response.status === 400 || response.status === 413) {
    return new DeliveryError(
      "message_rejected",
      "message",
      `Gmail refused the message (${status || response.status})${said}`,
      remote,
    );
  }
  return undefined;
};

/** Sends as the authorized account (`users/me`); the token goes only to the operator's Gmail API address. */
export function createGmailApiTransport(ctx: TransportContext, options: GmailApiOptions = {}): Transport {
  const tokens = ctx.tokens;
  if (!tokens) throw new DeliveryError("oauth_not_authorized", "server", `No account is authorized for ${ctx.serverName}.`);
  const operator = ctx.operator ?? STRICT_OPERATOR;
  const base = new URL(operator.apiUrls?.googleGmail ?? GMAIL_API);
  const request =
    (method: ProviderRequest["method"], url: URL, extra: Partial<ProviderRequest> = {}) =>
    (token: string): ProviderRequest => ({
      provider: "Gmail",
      method,
      url,
      timeoutMs: options.timeoutMs,
      secrets: [token],
      mapError: mapGmailError,
      isProviderError: isGoogleError,
      operator,
      ...extra,
      headers: { Accept: "application/json", Authorization: `Bearer ${token}`, ...extra.headers },
    });

  return {
    async send(message): Promise<SendResult> {
      const mime = await buildMime(message, { keepBcc: true });
      if (mime.length > GMAIL_MAX_MESSAGE) {
        throw new DeliveryError(
          "message_rejected",
          "message",
          `The message is ${mime.length} bytes of MIME, over Gmail's 35 MB limit: send large files as links.`,
        );
      }
      const simple = mime.length <= GMAIL_SIMPLE_LIMIT;
      const url = simple
        ? endpointUrl(base, ["gmail", "v1", "users", "me", "messages", "send"])
        : endpointUrl(base, ["upload", "gmail", "v1", "users", "me", "messages", "send"]);
      if (!simple) url.searchParams.set("uploadType", "media");
      const sent = await callWithAccessToken(
        tokens,
        request("POST", url, {
          headers: { "Content-Type": simple ? "application/json" : "message/rfc822" },
          body: simple ? JSON.stringify({ raw: mime.toString("base64url") }) : mime,
        }),
      );
      const id = (sent.json as { id?: unknown } | undefined)?.id;
      return { providerMessageId: typeof id === "string" ? id : undefined, response: `${sent.status}` };
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript([]), probe.onStep);
      let account = options.appOnly ? await tokens.user() : "";
      const ok =
        options.appOnly ||
        (await checks.run("token", async () => {
          account = await tokens.user();
          await tokens.accessToken(false);
          return `Google issued an access token for ${account}`;
        }));
      if (!ok) return checks.result();
      await checks.run("mailbox", async () => {
        try {
          const profile = await callWithAccessToken(tokens, (token) => {
            checks.transcript.secrets.push(token);
            const url = endpointUrl(base, ["gmail", "v1", "users", "me", "profile"]);
            return { ...request("GET", url)(token), transcript: checks.transcript, timeoutMs: options.timeoutMs ?? 15_000 };
          });
          const email = (profile.json as { emailAddress?: unknown } | undefined)?.emailAddress;
          return `The Gmail API answered for the mailbox ${typeof email === "string" ? email : account}`;
        } catch (err) {
          // getProfile needs a read scope (gmail.metadata or more); gmail.send alone answers 403 insufficientPermissions.
          if (err instanceof DeliveryError && err.code === gmailApiCode.gmail_api_scope_missing) {
            return `The Gmail API accepted the token for ${account}; reading the mailbox's profile needs gmail.metadata or gmail.readonly, which Mailroom does not ask for (gmail.send only): a test send proves the mailbox.`;
          }
          throw err;
        }
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}
