/**
 * Mailgun's webhooks (documentation.mailgun.com, "Webhooks" and "Securing webhooks"): a JSON
 * body `{signature: {timestamp, token, signature}, "event-data": {...}}`. The signature is the
 * hex HMAC-SHA256, keyed with the domain's webhook signing key, of timestamp + token. A
 * timestamp more than 15 minutes from now, or a token seen before, is a replay.
 *
 * Events kept: `delivered`; `failed` (severity `permanent`: a hard bounce; `temporary`: a soft
 * one, which Mailgun retries); `complained`. Others (opened, clicked, accepted…) are ignored.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { MailroomError } from "../../kernel/errors.js";
import {
  cleanAddress,
  cleanId,
  invalidPayload,
  isObject,
  joinTexts,
  normaliseMessageId,
  type ParsedEvents,
  parseTime,
} from "./report.js";

/** How far a signed timestamp may be from now. */
export const MAILGUN_MAX_AGE_MS = 15 * 60 * 1000;

export interface MailgunSignature {
  timestamp: string;
  token: string;
  signature: string;
}

/** The signature block, or a refusal when it is missing or malformed (no signature: no trust). */
export function mailgunSignatureOf(body: unknown): MailgunSignature {
  const s = isObject(body) && isObject(body.signature) ? body.signature : null;
  const fields = s ? [s.timestamp, s.token, s.signature] : [];
  if (!s || !fields.every((v) => typeof v === "string" && v.length > 0 && v.length <= 200)) {
    throw new MailroomError(
      "provider_event_unauthorized",
      "The request has no Mailgun signature (signature.timestamp, token and signature): only Mailgun's signed webhooks are taken.",
    );
  }
  return { timestamp: String(s.timestamp), token: String(s.token), signature: String(s.signature) };
}

/** Checks the HMAC in constant time, then the timestamp's age. Throws the refusal's code. */
export function verifyMailgun(sig: MailgunSignature, signingKey: string, now: number): void {
  const expected = createHmac("sha256", signingKey)
    .update(sig.timestamp + sig.token)
    .digest();
  const given = /^[0-9a-f]{64}$/i.test(sig.signature) ? Buffer.from(sig.signature, "hex") : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new MailroomError(
      "provider_event_unauthorized",
      "The Mailgun signature does not match: paste the domain's webhook signing key again under the server's 'Bounces and deliveries'.",
    );
  }
  const seconds = Number(sig.timestamp);
  if (!/^\d{1,12}$/.test(sig.timestamp) || Math.abs(now - seconds * 1000) > MAILGUN_MAX_AGE_MS) {
    throw new MailroomError(
      "provider_event_replayed",
      "The Mailgun signature's timestamp is more than 15 minutes from now: refused as a replay (check this machine's clock if Mailgun's own events are refused).",
    );
  }
}

/** The report in a verified body's event-data. */
export function parseMailgun(body: unknown, now: number): ParsedEvents {
  const data = isObject(body) ? body["event-data"] : undefined;
  if (!isObject(data) || typeof data.event !== "string") throw invalidPayload("mailgun", "it has no event-data.event");
  const type =
    data.event === "delivered"
      ? "delivered"
      : data.event === "failed"
        ? "bounced"
        : data.event === "complained"
          ? "complained"
          : null;
  if (!type) return { reports: [], ignored: 1 };
  const message = isObject(data.message) ? data.message : {};
  const headers = isObject(message.headers) ? message.headers : {};
  const providerMessageId = normaliseMessageId(headers["message-id"]);
  const providerEventId = cleanId(data.id);
  if (!providerMessageId || !providerEventId)
    throw invalidPayload("mailgun", "event-data has no id or message.headers.message-id");
  const status = isObject(data["delivery-status"]) ? data["delivery-status"] : {};
  const code = typeof status.code === "number" ? String(status.code) : null;
  return {
    reports: [
      {
        providerEventId,
        providerMessageId,
        type,
        bounceKind: type === "bounced" ? (data.severity === "temporary" ? "soft" : "hard") : null,
        recipient: cleanAddress(data.recipient),
        diagnostic:
          type === "delivered"
            ? null
            : joinTexts(code && status.message ? `${code} ${status.message}` : status.message, status.description, data.reason),
        at: parseTime(data.timestamp, now),
      },
    ],
    ignored: 0,
  };
}
