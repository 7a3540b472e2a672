/**
 * What Mailroom does to a submitted message before storing it: as little as possible. Bcc
 * header fields are taken out (the envelope already carries those recipients), a missing
 * Message-ID or Date is added at the top; every other byte stays as the client sent it.
 */
import type { AddressObject } from "mailparser";
import { newId } from "../../core/ids.js";
import type { Address } from "../../transport/types.js";

export interface Submission {
  /** The bytes to store and send. */
  mime: Buffer;
  /** The first address of the From header; undefined when the message has none. */
  from?: Address;
  to: Address[];
  cc: Address[];
  bcc: Address[];
  replyTo: Address[];
  subject: string;
  /** Without angle brackets. */
  messageId: string;
  /** Whether the client gave the Message-ID (only then does it make the message idempotent). */
  clientMessageId: boolean;
}

/** Where the header section ends: the index of the empty line's first byte, or the length. */
function headerEnd(data: Buffer): { end: number; newline: string } {
  const crlf = data.indexOf("\r\n\r\n");
  const lf = data.indexOf("\n\n");
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { end: crlf + 2, newline: "\r\n" };
  if (lf >= 0) return { end: lf + 1, newline: "\n" };
  return { end: data.length, newline: data.includes("\r\n") ? "\r\n" : "\n" };
}

/** Header fields as latin1 text (lossless for any byte), each with its continuation lines. */
function headerFields(section: string): string[] {
  const fields: string[] = [];
  for (const line of section.match(/[^\n]*\n|[^\n]+$/g) ?? []) {
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += line;
    else fields.push(line);
  }
  return fields;
}

const fieldName = (field: string) =>
  field
    .slice(0, Math.max(0, field.indexOf(":")))
    .trim()
    .toLowerCase();

function addresses(field: AddressObject | AddressObject[] | undefined): Address[] {
  const objects = field === undefined ? [] : Array.isArray(field) ? field : [field];
  return objects.flatMap((o) =>
    o.value
      .flatMap((a) => (a.group?.length ? a.group : [a]))
      .filter((a) => a.address)
      .map((a) => (a.name ? { address: a.address as string, name: a.name } : { address: a.address as string })),
  );
}

/** RFC 5322 date-time in UTC, e.g. "Tue, 02 Dec 2025 10:00:00 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, "+0000");
}

/**
 * Reads the headers of a submitted message and sorts the envelope's recipients by the header
 * naming them: To, Cc, else Bcc. Recipients come from the envelope only; an address that
 * appears in a header but not in RCPT TO receives nothing.
 */
export async function prepareSubmission(data: Buffer, rcptTo: string[], now = Date.now()): Promise<Submission> {
  const { end, newline } = headerEnd(data);
  const fields = headerFields(data.subarray(0, end).toString("latin1"));
  const kept = fields.filter((f) => fieldName(f) !== "bcc");
  const names = new Set(kept.map(fieldName));

  const { simpleParser } = await import("mailparser");
  const parsed = await simpleParser(Buffer.from(`${kept.join("")}${newline}`, "latin1"), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipTextLinks: true,
  });
  const from = addresses(parsed.from)[0];
  const headerTo = addresses(parsed.to);
  const headerCc = addresses(parsed.cc);

  const added: string[] = [];
  let messageId = names.has("message-id") ? (parsed.messageId ?? "").replace(/^<|>$/g, "").trim() : "";
  const clientMessageId = messageId !== "";
  if (!clientMessageId) {
    const domain = from?.address.split("@")[1] ?? "mailroom.localhost";
    messageId = `${newId()}@${domain}`;
    added.push(`Message-ID: <${messageId}>${newline}`);
  }
  if (!names.has("date")) added.push(`Date: ${rfc5322Date(now)}${newline}`);

  const mime =
    added.length === 0 && kept.length === fields.length
      ? data
      : Buffer.concat([Buffer.from(added.join("") + kept.join(""), "latin1"), data.subarray(end)]);

  const find = (list: Address[], address: string) => list.find((a) => a.address.toLowerCase() === address);
  const to: Address[] = [];
  const cc: Address[] = [];
  const bcc: Address[] = [];
  for (const rcpt of rcptTo) {
    const lower = rcpt.toLowerCase();
    const inTo = find(headerTo, lower);
    const inCc = find(headerCc, lower);
    if (inTo) to.push({ ...inTo, address: rcpt });
    else if (inCc) cc.push({ ...inCc, address: rcpt });
    else bcc.push({ address: rcpt });
  }
  return {
    mime,
    from,
    to,
    cc,
    bcc,
    replyTo: addresses(parsed.replyTo),
    subject: parsed.subject ?? "",
    messageId,
    clientMessageId,
  };
}
