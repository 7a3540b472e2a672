/**
 * Microsoft Graph's mail API with a delegated token (https://learn.microsoft.com/graph/api/user-sendmail):
 * the MIME message, base64, as `text/plain` to `POST /v1.0/users/{mailbox}/sendMail` up to
 * Graph's 4 MB request limit; above it a draft (`POST /users/{mailbox}/messages`, MIME too)
 * holding what fits, each other attachment through an upload session
 * (`…/attachments/createUploadSession`, chunked PUTs), then `POST /messages/{id}/send`.
 */
import { STRICT_OPERATOR } from "../../kernel/operator-policy.js";
import {
  type Attachment,
  type CheckResult,
  DeliveryError,
  type OutgoingMessage,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../../kernel/transport.js";
import {
  CheckSteps,
  callProvider,
  callWithAccessToken,
  HttpTranscript,
  type ProviderErrorMapper,
  type ProviderRequest,
  type ProviderResponse,
  retryAfterMs,
} from "../../transport/http.js";
import { buildMime } from "../../transport/mime.js";
import { endpointUrl } from "../../transport/operator.js";
import { microsoftGraphCode } from "./errors.js";

export const GRAPH_API = "https://graph.microsoft.com";
export const GRAPH_MAIL_SEND = "https://graph.microsoft.com/Mail.Send";
/** Graph refuses request bodies over 4 MB; the base64 MIME is the body. */
export const GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024;
/** Graph documents upload sessions for attachments from 3 MB; smaller ones stay in the draft's MIME. */
const UPLOAD_SESSION_FROM = 3 * 1024 * 1024;
/** Upload chunks must be multiples of 320 KiB; 10 of them (3.2 MB) keeps each PUT well under limits. */
export const GRAPH_CHUNK_BYTES = 10 * 320 * 1024;

export interface GraphOptions {
  timeoutMs?: number;
  chunkBytes?: number;
  /**
   * Application credentials: the token may send as any mailbox of the tenant, so each message
   * goes out as its own From mailbox (the app-only guard has already held it to the allowed
   * ones), and the guard's check has already proved the token.
   */
  appOnly?: boolean;
}

/** Graph's error body: {"error": {"code": "...", "message": "..."}}. */
function isGraphError(json: unknown): boolean {
  const error = (json as { error?: { code?: unknown } } | undefined)?.error;
  return typeof error?.code === "string";
}

function graphCode(response: ProviderResponse): { code: string; message: string } {
  const error = (response.json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return { code: String(error?.code ?? ""), message: String(error?.message ?? "") };
}

/** Graph's documented refusals; 401 (renewed by the caller), 429 and the rest: the common mapping. */
const mapGraphError: ProviderErrorMapper = (response, remote) => {
  const { code, message } = graphCode(response);
  const said = message ? `: ${message.slice(0, 300)}` : "";
  if (code === "MailboxNotEnabledForRESTAPI" || code === "MailboxNotSupportedForRESTAPI") {
    return new DeliveryError(
      microsoftGraphCode.microsoft_graph_mailbox_not_enabled,
      "server",
      `Microsoft Graph cannot send from this mailbox (${code}): it must be a licensed Exchange Online mailbox, not on-premises or inactive${said}`,
      remote,
    );
  }
  if (response.status === 403 && code === "ErrorAccessDenied") {
    return new DeliveryError(
      microsoftGraphCode.microsoft_graph_access_denied,
      "server",
      `Microsoft Graph denied access to the mailbox (ErrorAccessDenied): an application access policy or RBAC for Applications leaves it out, or the account has no Send As right on it${said}`,
      remote,
    );
  }
  if (code === "ErrorSendAsDenied") {
    return new DeliveryError(
      "sender_rejected",
      "server",
      `Microsoft Graph refused the from address (ErrorSendAsDenied): the authorized account may not send as it; give it Send As rights or use its own address${said}`,
      remote,
    );
  }
  const wait = response.headers.get("retry-after");
  if (response.status === 503 && wait !== null) {
    // Graph's throttling answers 503 with Retry-After as well as 429: both mean "slow down".
    return new DeliveryError(
      "provider_rate_limited",
      "rate_limited",
      `Microsoft Graph is throttling (HTTP 503); it asked to wait ${wait}`,
      remote,
      retryAfterMs(wait),
    );
  }
  if (response.status === 400 && /Recipient/i.test(code)) {
    return new DeliveryError("recipient_rejected", "recipient", `Microsoft Graph refused a recipient (${code})${said}`, remote);
  }
  if (response.status === 400 || response.status === 413) {
    return new DeliveryError(
      "message_rejected",
      "message",
      `Microsoft Graph refused the message (${code || response.status})${said}`,
      remote,
    );
  }
  return undefined;
};

const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);

/**
 * The attachments a draft's MIME can hold under Graph's limit: those under 3 MB, smallest
 * first, while the draft fits; the rest go through upload sessions.
 */
async function splitForDraft(message: OutgoingMessage): Promise<{ mime: Buffer; uploads: Attachment[] }> {
  const uploads = message.attachments.filter((a) => a.content.length >= UPLOAD_SESSION_FROM);
  const inline = message.attachments
    .filter((a) => a.content.length < UPLOAD_SESSION_FROM)
    .sort((a, b) => a.content.length - b.content.length);
  for (;;) {
    const mime = await buildMime({ ...message, attachments: inline }, { keepBcc: true });
    if (base64Length(mime.length) <= GRAPH_REQUEST_LIMIT) return { mime, uploads };
    const largest = inline.pop();
    if (!largest) {
      throw new DeliveryError(
        "message_rejected",
        "message",
        `The message without its attachments is ${mime.length} bytes, over Microsoft Graph's 4 MB request limit: shorten its text or html.`,
      );
    }
    uploads.push(largest);
  }
}

/**
 * Sends as the authorized account (or, app-only, as the From mailbox) through Graph; the token
 * goes only to the operator's Graph address.
 */
export function createGraphTransport(ctx: TransportContext, options: GraphOptions = {}): Transport {
  const tokens = ctx.tokens;
  if (!tokens) throw new DeliveryError("oauth_not_authorized", "server", `No account is authorized for ${ctx.serverName}.`);
  const operator = ctx.operator ?? STRICT_OPERATOR;
  const base = new URL(operator.apiUrls?.microsoftGraph ?? GRAPH_API);
  const chunkBytes = options.chunkBytes ?? GRAPH_CHUNK_BYTES;
  const request =
    (method: ProviderRequest["method"], segments: string[], extra: Partial<ProviderRequest> = {}) =>
    (token: string): ProviderRequest => ({
      provider: "Microsoft Graph",
      method,
      url: endpointUrl(base, ["v1.0", ...segments]),
      timeoutMs: options.timeoutMs,
      secrets: [token],
      mapError: mapGraphError,
      isProviderError: isGraphError,
      operator,
      ...extra,
      headers: { Accept: "application/json", Authorization: `Bearer ${token}`, ...extra.headers },
    });
  const call = async (method: ProviderRequest["method"], segments: string[], extra: Partial<ProviderRequest> = {}) =>
    callWithAccessToken(tokens, request(method, segments, extra));
  const mimeBody = (mime: Buffer) => ({ headers: { "Content-Type": "text/plain" }, body: mime.toString("base64") });

  /** PUTs one attachment in chunks to its pre-authorized upload URL (no token: Graph says never send one there). */
  async function upload(mailbox: string, draftId: string, attachment: Attachment): Promise<void> {
    const session = await call("POST", ["users", mailbox, "messages", draftId, "attachments", "createUploadSession"], {
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        AttachmentItem: {
          attachmentType: "file",
          name: attachment.filename,
          size: attachment.content.length,
          contentType: attachment.contentType,
          ...(attachment.contentId ? { isInline: true, contentId: attachment.contentId } : {}),
        },
      }),
    });
    const uploadUrl = uploadUrlOf(session, base);
    const total = attachment.content.length;
    for (let start = 0; start < total; start += chunkBytes) {
      const chunk = attachment.content.subarray(start, Math.min(start + chunkBytes, total));
      await callProvider({
        provider: "Microsoft Graph",
        method: "PUT",
        url: uploadUrl,
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `bytes ${start}-${start + chunk.length - 1}/${total}`,
        },
        body: chunk,
        timeoutMs: options.timeoutMs,
        secrets: [uploadUrl.search],
        mapError: mapGraphError,
        isProviderError: isGraphError,
        operator,
      });
    }
  }

  /** Above 4 MB: a draft, its big attachments uploaded, then sent; a failed draft is deleted, not left behind. */
  async function sendLarge(mailbox: string, message: OutgoingMessage): Promise<SendResult> {
    if (message.raw) {
      throw new DeliveryError(
        "message_rejected",
        "message",
        `The message is ${message.raw.length} bytes of MIME, over Microsoft Graph's 4 MB request limit, and a message submitted over SMTP is sent unchanged: send it through the HTTP API (whose attachments Graph uploads separately) or lower MAILROOM_SMTP_MAX_SIZE.`,
      );
    }
    const { mime, uploads } = await splitForDraft(message);
    const draft = await call("POST", ["users", mailbox, "messages"], mimeBody(mime));
    const draftId = (draft.json as { id?: unknown } | undefined)?.id;
    if (typeof draftId !== "string" || draftId === "") {
      throw new DeliveryError("provider_unavailable", "transient", "Microsoft Graph created a draft without an id.");
    }
    try {
      for (const attachment of uploads) await upload(mailbox, draftId, attachment);
      const sent = await call("POST", ["users", mailbox, "messages", draftId, "send"], { body: "" });
      return { response: `${sent.status} (draft with ${uploads.length} uploaded attachment${uploads.length === 1 ? "" : "s"})` };
    } catch (err) {
      await call("DELETE", ["users", mailbox, "messages", draftId]).catch((cleanup: unknown) => {
        ctx.log.warn({ err: String(cleanup) }, "Microsoft Graph draft not deleted after a failed send");
      });
      throw err;
    }
  }

  return {
    async send(message): Promise<SendResult> {
      const mailbox = options.appOnly ? message.from.address : await tokens.user();
      const mime = await buildMime(message, { keepBcc: true });
      if (base64Length(mime.length) > GRAPH_REQUEST_LIMIT) return sendLarge(mailbox, message);
      const sent = await call("POST", ["users", mailbox, "sendMail"], mimeBody(mime));
      // 202 Accepted, no body: Graph gives no id; the Message-ID in the MIME is what recipients see.
      return { response: `${sent.status}` };
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript([]), probe.onStep);
      // App-only: the server's from address; the guard's own step proved the token.
      let mailbox = options.appOnly ? await tokens.user() : "";
      const ok =
        options.appOnly ||
        (await checks.run("token", async () => {
          mailbox = await tokens.user();
          await tokens.accessToken(false);
          return `Microsoft issued an access token for ${mailbox}`;
        }));
      if (!ok) return checks.result();
      await checks.run("mailbox", async () => {
        try {
          const found = await callWithAccessToken(tokens, (token) => {
            checks.transcript.secrets.push(token);
            return {
              ...request("GET", ["users", mailbox])(token),
              transcript: checks.transcript,
              timeoutMs: options.timeoutMs ?? 15_000,
            };
          });
          const mail = (found.json as { mail?: unknown } | undefined)?.mail;
          return `Microsoft Graph found the mailbox ${typeof mail === "string" ? mail : mailbox}`;
        } catch (err) {
          // Reading a user needs User.Read.All, which Mailroom does not ask for: Mail.Send alone answers 403.
          if (err instanceof DeliveryError && err.remote.code === 403) {
            return `Microsoft Graph accepted the token for ${mailbox} but may not read the mailbox (User.Read.All not granted): only a send proves Mailroom can send as it.`;
          }
          throw err;
        }
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}

/**
 * Where an upload session takes its chunks: Graph answers a pre-authorized https URL (on
 * outlook.office.com). Refused otherwise, unless it is on the operator's own Graph address.
 */
function uploadUrlOf(session: ProviderResponse, base: URL): URL {
  const raw = (session.json as { uploadUrl?: unknown } | undefined)?.uploadUrl;
  let url: URL | undefined;
  try {
    url = typeof raw === "string" ? new URL(raw) : undefined;
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "https:" && url.origin !== base.origin) || url.username || url.password) {
    throw new DeliveryError(
      "provider_unavailable",
      "transient",
      "Microsoft Graph answered an upload session without a usable https uploadUrl.",
    );
  }
  return url;
}
