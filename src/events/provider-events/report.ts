/**
 * What Mailroom keeps of a provider's webhook: one report per message and recipient, the same
 * shape whichever provider sent it. Parsers (mailgun.ts, postmark.ts, ses.ts) read only the
 * documented fields they need and clean what they keep: a provider's text reaches the
 * database and the UI as one line of printable text, never a control character.
 */
import { MailroomError } from "../../kernel/errors.js";
import { isEmailAddress } from "../../kernel/validate.js";
import type { EventProvider, ProviderEventType } from "../../storage/schema.js";

export interface ProviderReport {
  /** The provider's id for this event (and recipient): the same report twice is stored once. */
  providerEventId: string;
  /** The provider's id for the message, as its send API answered it (angle brackets removed). */
  providerMessageId: string;
  type: ProviderEventType;
  bounceKind: "hard" | "soft" | null;
  /** Lower case; null when the provider gave no valid address. */
  recipient: string | null;
  diagnostic: string | null;
  /** Epoch milliseconds: when the provider says it happened. */
  at: number;
}

/** What one webhook request carried: reports, and how many events were of kinds Mailroom does not keep (opens, clicks…). */
export interface ParsedEvents {
  reports: ProviderReport[];
  ignored: number;
}

export const PROVIDER_LABELS: Record<EventProvider, string> = {
  mailgun: "Mailgun",
  postmark: "Postmark",
  ses: "Amazon SES (SNS)",
};

const MAX_DIAGNOSTIC = 1000;
const MAX_ID = 200;

/** A provider's text as one printable line of at most 1,000 characters, or null. */
export function cleanText(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const text = value
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  return text ? text.slice(0, MAX_DIAGNOSTIC) : null;
}

/** Several texts joined with " · " (e.g. a description and the SMTP reply), or null. */
export function joinTexts(...values: unknown[]): string | null {
  const texts = values.map(cleanText).filter((t): t is string => t !== null);
  return cleanText([...new Set(texts)].join(" · "));
}

/** A message id without the angle brackets of a Message-ID header: "<a@b>" and "a@b" are one id. */
export function normaliseMessageId(value: unknown): string | null {
  const id = cleanText(value)?.replace(/^<|>$/g, "").trim();
  return id ? id.slice(0, MAX_ID) : null;
}

export function cleanId(value: unknown): string | null {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  const id = cleanText(value);
  return id ? id.slice(0, MAX_ID) : null;
}

export function cleanAddress(value: unknown): string | null {
  const address = cleanText(value)?.toLowerCase();
  return address && isEmailAddress(address) ? address : null;
}

/** An ISO time or epoch seconds as epoch milliseconds; `fallback` when it is neither. */
export function parseTime(value: unknown, fallback: number): number {
  if (typeof value === "number" && Number.isFinite(value)) return Math.round(value * 1000);
  if (typeof value === "string") {
    const ms = Date.parse(value);
    if (!Number.isNaN(ms)) return ms;
  }
  return fallback;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The credentials were right, the body is not the provider's documented payload. */
export function invalidPayload(provider: EventProvider, what: string): MailroomError {
  return new MailroomError("provider_event_invalid", `This is not ${PROVIDER_LABELS[provider]}'s webhook payload: ${what}.`);
}
