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
  redact,
} from "../../transport/http.js";
import { endpointUrl, providerBase } from "../../transport/operator.js";
import { postmarkCode } from "./errors.js";

/** Postmark's own API: the only address it talks to unless the operator allows another. */
export const POSTMARK_API = "https://api.postmarkapp.com";

/** Postmark's JSON error body: {"ErrorCode": n, "Message": "..."}. Anything else is shown as its status only. */
function isPostmarkError(json: unknown): boolean {
  const body = json as { ErrorCode?: unknown; Message?: unknown } | undefined;
  return typeof body?.ErrorCode === "number" && typeof body?.Message === "string";
}

export interface PostmarkOptions {
  timeoutMs?: number;
}

/** The body of Postmark's `POST /email`, as documented. */
export interface PostmarkEmail {
  From: string;
  To: string;
  Cc?: string;
  Bcc?: string;
  ReplyTo?: string;
  Subject: string;
  TextBody?: string;
  HtmlBody?: string;
  Headers: { Name: string; Value: string }[];
  Attachments: { Name: string; Content: string; ContentType: string; ContentID?: string }[];
  MessageStream: string;
}

/** "Name" <address>, quoting the name so commas and quotes in it stay part of the name. */
export function formatAddress(a: Address): string {
  if (!a.name) return a.address;
  return `"${a.name.replace(/["\\]/g, "\\$&")}" <${a.address}>`;
}

function list(addresses: Address[]): string | undefined {
  return addresses.length ? addresses.map(formatAddress).join(", ") : undefined;
}

export function toPostmarkEmail(message: OutgoingMessage, messageStream: string): PostmarkEmail {
  const email: PostmarkEmail = {
    From: formatAddress(message.from),
    To: list(message.to) ?? "",
    Subject: message.subject,
    // Postmark keeps a Message-ID given here, so the log's id is the one recipients see.
    Headers: [
      { Name: "Message-ID", Value: `<${message.messageId}>` },
      ...Object.entries(message.headers).map(([Name, Value]) => ({ Name, Value })),
    ],
    Attachments: message.attachments.map((a) => ({
      Name: a.filename,
      Content: a.content.toString("base64"),
      ContentType: a.contentType,
      ...(a.contentId ? { ContentID: `cid:${a.contentId}` } : {}),
    })),
    MessageStream: messageStream,
  };
  const cc = list(message.cc);
  const bcc = list(message.bcc);
  const replyTo = list(message.replyTo);
  if (cc) email.Cc = cc;
  if (bcc) email.Bcc = bcc;
  if (replyTo) email.ReplyTo = replyTo;
  if (message.text !== undefined) email.TextBody = message.text;
  if (message.html !== undefined) email.HtmlBody = message.html;
  return email;
}

// Headers Postmark writes from its own fields; the rest of a raw message's headers pass through.
const POSTMARK_OWN_HEADERS = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "subject",
  "date",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
]);

/**
 * Postmark has no API for raw MIME: a message received over SMTP is parsed into the fields of
 * `POST /email` (text, html, attachments, its other headers), so its MIME structure and any
 * signature over it do not survive, but its content, Message-ID and custom headers do.
 */
export async function rawToPostmarkEmail(message: OutgoingMessage, messageStream: string): Promise<PostmarkEmail> {
  const { simpleParser } = await import("mailparser");
  const parsed = await simpleParser(message.raw ?? Buffer.alloc(0), { keepCidLinks: true, skipTextToHtml: true });
  const email = toPostmarkEmail(
    {
      ...message,
      subject: parsed.subject ?? message.subject,
      text: parsed.text,
      html: typeof parsed.html === "string" ? parsed.html : undefined,
      headers: {},
      attachments: parsed.attachments.map((a) => ({
        filename: a.filename ?? "attachment",
        contentType: a.contentType,
        content: a.content,
        ...(a.contentId && a.contentDisposition === "inline" ? { contentId: a.contentId.replace(/^<|>$/g, "") } : {}),
      })),
      raw: undefined,
    },
    messageStream,
  );
  for (const h of parsed.headerLines) {
    if (POSTMARK_OWN_HEADERS.has(h.key) || h.key === "message-id") continue;
    email.Headers.push({ Name: h.line.slice(0, h.line.indexOf(":")).trim(), Value: unfold(h.line) });
  }
  return email;
}

/** A header line's value on one line. */
function unfold(line: string): string {
  return line
    .slice(line.indexOf(":") + 1)
    .replace(/\r?\n[ \t]+/g, " ")
    .trim();
}

/** Postmark's API error codes (https://postmarkapp.com/developer/api/overview#error-codes). */
const SENDER_NOT_CONFIRMED = new Set([400, 401]);
const SERVER_FAULTS = new Set([
  405, // not allowed to send (out of credits)
  412, // account pending approval: may send only to its own domain
  413, // account may not send
]);

const mapPostmarkError: ProviderErrorMapper = (response, remote) => {
  const body = response.json as { ErrorCode?: unknown; Message?: unknown } | undefined;
  const code = typeof body?.ErrorCode === "number" ? body.ErrorCode : undefined;
  if (code === undefined) return undefined;
  const said = typeof body?.Message === "string" ? body.Message : response.text.trim();
  const message = `Postmark refused (ErrorCode ${code}): ${said}`;
  if (code === 100) return new DeliveryError("provider_unavailable", "transient", message, remote); // maintenance
  if (code === 10) return new DeliveryError("provider_unauthorized", "server", message, remote);
  if (SENDER_NOT_CONFIRMED.has(code))
    return new DeliveryError(postmarkCode.postmark_sender_not_confirmed, "server", message, remote);
  if (code === 406) return new DeliveryError("recipient_rejected", "recipient", message, remote);
  if (code === 300) {
    const code300 = /'(To|Cc|Bcc)' address/i.test(said) ? "recipient_rejected" : "message_rejected";
    return new DeliveryError(code300, code300 === "recipient_rejected" ? "recipient" : "message", message, remote);
  }
  // A missing or wrong message stream is the server's configuration, not this message.
  if (SERVER_FAULTS.has(code) || /message stream/i.test(said))
    return new DeliveryError("message_rejected", "server", message, remote);
  return undefined;
};

/** Sends through Postmark's JSON API; attachments base64, inline images by ContentID. */
export function createPostmarkTransport(ctx: TransportContext, options: PostmarkOptions = {}): Transport {
  const token = ctx.secrets.serverToken ?? "";
  const stream =
    typeof ctx.settings.messageStream === "string" && ctx.settings.messageStream ? ctx.settings.messageStream : "outbound";
  const operator = ctx.operator ?? STRICT_OPERATOR;
  const base = providerBase("Postmark", String(ctx.settings.baseUrl || POSTMARK_API), [POSTMARK_API], operator);
  const secrets = [token];
  const headers = { Accept: "application/json", "X-Postmark-Server-Token": token };

  return {
    async send(message): Promise<SendResult> {
      const response = await callProvider({
        provider: "Postmark",
        method: "POST",
        url: endpointUrl(base, ["email"]),
        headers: { ...headers, "Content-Type": "application/json" },
        body: JSON.stringify(message.raw ? await rawToPostmarkEmail(message, stream) : toPostmarkEmail(message, stream)),
        timeoutMs: options.timeoutMs,
        secrets,
        mapError: mapPostmarkError,
        isProviderError: isPostmarkError,
        operator,
      });
      const json = response.json as { MessageID?: unknown; ErrorCode?: unknown; Message?: unknown } | undefined;
      const remote = { code: response.status, response: redact(response.text.trim(), secrets).slice(0, 2000) };
      // Postmark documents ErrorCode 0 for success; anything else in a 200 is still a refusal.
      if (typeof json?.ErrorCode === "number" && json.ErrorCode !== 0) {
        throw (
          mapPostmarkError(response, remote) ?? new DeliveryError("message_rejected", "message", String(json.Message), remote)
        );
      }
      return {
        providerMessageId: typeof json?.MessageID === "string" ? json.MessageID : undefined,
        response: `${response.status} ${typeof json?.Message === "string" ? json.Message : ""}`.trim(),
      };
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript(secrets), probe.onStep);
      let server: ProviderResponse | undefined;
      let failure: unknown;
      try {
        server = await callProvider({
          provider: "Postmark",
          method: "GET",
          url: endpointUrl(base, ["server"]),
          headers,
          timeoutMs: options.timeoutMs ?? 15_000,
          secrets,
          mapError: mapPostmarkError,
          isProviderError: isPostmarkError,
          operator,
          transcript: checks.transcript,
        });
      } catch (err) {
        failure = err;
      }
      if (!server && !(failure instanceof DeliveryError && failure.remote.code !== undefined)) {
        checks.fail("connect", failure);
        return checks.result();
      }
      await checks.run("connect", async () => `Postmark answered at ${base.href.replace(/\/$/, "")}`);
      if (failure && !(failure instanceof DeliveryError && failure.code === "provider_unauthorized")) {
        checks.fail("request", failure);
        return checks.result();
      }
      await checks.run("authenticate", async () => {
        if (failure) throw failure;
        // The answer also lists the server's API tokens: only its name and id are used.
        const info = server?.json as { Name?: unknown; ID?: unknown } | undefined;
        const name = typeof info?.Name === "string" ? `"${info.Name}"` : "the server";
        return `Postmark accepted the server token for ${name}${info?.ID !== undefined ? ` (ID ${String(info.ID)})` : ""}`;
      });
      await checks.run("message stream", async () => {
        try {
          const found = await callProvider({
            provider: "Postmark",
            method: "GET",
            url: endpointUrl(base, ["message-streams", stream]),
            headers,
            timeoutMs: options.timeoutMs ?? 15_000,
            secrets,
            isProviderError: isPostmarkError,
            operator,
            transcript: checks.transcript,
          });
          const info = found.json as { MessageStreamType?: unknown; ArchivedAt?: unknown } | undefined;
          if (info?.ArchivedAt) {
            throw new DeliveryError(
              "invalid_setting",
              "server",
              `The message stream '${stream}' is archived: use an active stream`,
            );
          }
          const type = typeof info?.MessageStreamType === "string" ? ` (${info.MessageStreamType})` : "";
          return `Mail goes out on the '${stream}' stream${type}`;
        } catch (err) {
          if (err instanceof DeliveryError && (err.remote.code === 404 || err.remote.code === 422)) {
            throw new DeliveryError(
              "invalid_setting",
              "server",
              `This Postmark server has no message stream '${stream}': set Message stream to one of its stream IDs`,
              err.remote,
            );
          }
          throw err;
        }
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}
