import { STRICT_OPERATOR } from "../../kernel/operator-policy.js";
import {
  type Address,
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
  HttpTranscript,
  type ProviderErrorMapper,
  type ProviderResponse,
} from "../../transport/http.js";
import { endpointUrl, providerBase } from "../../transport/operator.js";

/** Resend's own API: the only address it talks to unless the operator allows another. */
export const RESEND_API = "https://api.resend.com";

export interface ResendOptions {
  timeoutMs?: number;
}

/** The body of Resend's `POST /emails` (https://resend.com/docs/api-reference/emails/send-email). */
export interface ResendEmail {
  from: string;
  to: string[];
  cc?: string[];
  bcc?: string[];
  reply_to?: string[];
  subject: string;
  html?: string;
  text?: string;
  headers: Record<string, string>;
  attachments: { filename: string; content: string; content_type?: string; content_id?: string }[];
}

/** Resend's JSON error body: {"statusCode": n, "name": "...", "message": "..."}. */
function isResendError(json: unknown): boolean {
  const body = json as { name?: unknown; message?: unknown } | undefined;
  return typeof body?.name === "string" && typeof body?.message === "string";
}

/** "Name" <address>, quoting the name so commas and quotes in it stay part of the name. */
function formatAddress(a: Address): string {
  if (!a.name) return a.address;
  return `"${a.name.replace(/["\\]/g, "\\$&")}" <${a.address}>`;
}

export function toResendEmail(message: OutgoingMessage): ResendEmail {
  const email: ResendEmail = {
    from: formatAddress(message.from),
    to: message.to.map(formatAddress),
    subject: message.subject,
    // Resend keeps a Message-ID given as a header, so the log's id is the one recipients see.
    headers: { ...message.headers, "Message-ID": `<${message.messageId}>` },
    attachments: message.attachments.map((a) => ({
      filename: a.filename,
      content: a.content.toString("base64"),
      content_type: a.contentType,
      ...(a.contentId ? { content_id: a.contentId } : {}),
    })),
  };
  if (message.cc.length) email.cc = message.cc.map(formatAddress);
  if (message.bcc.length) email.bcc = message.bcc.map(formatAddress);
  if (message.replyTo.length) email.reply_to = message.replyTo.map(formatAddress);
  if (message.text !== undefined) email.text = message.text;
  if (message.html !== undefined) email.html = message.html;
  return email;
}

// Headers Resend writes from its own fields; a raw message's other headers pass through.
const RESEND_OWN_HEADERS = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "subject",
  "date",
  "message-id",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
]);

/**
 * Resend has no API for raw MIME: a message received over SMTP is parsed into the fields of
 * `POST /emails`, so its MIME structure and any signature over it do not survive, but its
 * content, Message-ID and custom headers do.
 */
async function rawToResendEmail(message: OutgoingMessage): Promise<ResendEmail> {
  const { simpleParser } = await import("mailparser");
  const parsed = await simpleParser(message.raw ?? Buffer.alloc(0), { keepCidLinks: true, skipTextToHtml: true });
  const headers: Record<string, string> = {};
  for (const h of parsed.headerLines) {
    if (RESEND_OWN_HEADERS.has(h.key)) continue;
    const colon = h.line.indexOf(":");
    headers[h.line.slice(0, colon).trim()] = h.line
      .slice(colon + 1)
      .replace(/\r?\n[ \t]+/g, " ")
      .trim();
  }
  return toResendEmail({
    ...message,
    subject: parsed.subject ?? message.subject,
    text: parsed.text,
    html: typeof parsed.html === "string" ? parsed.html : undefined,
    headers,
    attachments: parsed.attachments.map((a) => ({
      filename: a.filename ?? "attachment",
      contentType: a.contentType,
      content: a.content,
      ...(a.contentId && a.contentDisposition === "inline" ? { contentId: a.contentId.replace(/^<|>$/g, "") } : {}),
    })),
    raw: undefined,
  });
}

/** Resend's validation answers (400/422) name what is wrong with this message; the rest is the common mapping. */
const mapResendError: ProviderErrorMapper = (response, remote) => {
  if (response.status !== 400 && response.status !== 422) return undefined;
  const body = response.json as { name?: unknown; message?: unknown } | undefined;
  if (typeof body?.message !== "string") return undefined;
  return new DeliveryError(
    "message_rejected",
    "message",
    `Resend refused the message (${String(body.name)}): ${body.message}`,
    remote,
  );
};

/** Sends through Resend's JSON API; attachments base64. */
export function createResendTransport(ctx: TransportContext, options: ResendOptions = {}): Transport {
  const apiKey = ctx.secrets.apiKey ?? "";
  const operator = ctx.operator ?? STRICT_OPERATOR;
  const base = providerBase("Resend", String(ctx.settings.baseUrl || RESEND_API), [RESEND_API], operator);
  const secrets = [apiKey];
  const headers = { Accept: "application/json", Authorization: `Bearer ${apiKey}` };
  const call = (method: "GET" | "POST", segments: string[], extra: Partial<Parameters<typeof callProvider>[0]> = {}) =>
    callProvider({
      provider: "Resend",
      method,
      url: endpointUrl(base, segments),
      headers,
      timeoutMs: options.timeoutMs,
      secrets,
      mapError: mapResendError,
      isProviderError: isResendError,
      operator,
      ...extra,
    });

  return {
    async send(message): Promise<SendResult> {
      const email = message.raw ? await rawToResendEmail(message) : toResendEmail(message);
      const response = await call("POST", ["emails"], {
        // A retried attempt of the same message is not sent twice (Resend keeps keys for 24 h).
        headers: { ...headers, "Content-Type": "application/json", "Idempotency-Key": message.messageId },
        body: JSON.stringify(email),
      });
      const id = (response.json as { id?: unknown } | undefined)?.id;
      return { providerMessageId: typeof id === "string" ? id : undefined, response: `${response.status}` };
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript(secrets), probe.onStep);
      let domains: ProviderResponse | undefined;
      let failure: unknown;
      try {
        domains = await call("GET", ["domains"], { timeoutMs: options.timeoutMs ?? 15_000, transcript: checks.transcript });
      } catch (err) {
        failure = err;
      }
      if (!domains && !(failure instanceof DeliveryError && failure.remote.code !== undefined)) {
        checks.fail("connect", failure);
        return checks.result();
      }
      await checks.run("connect", async () => `Resend answered at ${base.href.replace(/\/$/, "")}`);
      // A sending-access key may not list domains: Resend says so, which proves the key is real.
      const restricted = failure instanceof DeliveryError && /restricted_api_key/.test(failure.remote.response ?? "");
      await checks.run("authenticate", async () => {
        if (restricted) return "Resend accepted the API key (sending access only: domains not listed)";
        if (failure) throw failure;
        return "Resend accepted the API key";
      });
      if (restricted) return checks.result();
      await checks.run("domains", async () => {
        const list = (domains?.json as { data?: { name?: unknown; status?: unknown }[] } | undefined)?.data ?? [];
        const names = list.map((d) => `${String(d.name)} (${String(d.status)})`);
        return names.length
          ? `Resend sends for ${names.join(", ")}`
          : "Resend knows no domain for this key yet: it sends only from a verified domain";
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}
