/**
 * What Mailroom does to a submitted message before storing it: as little as possible. Bcc
 * header fields are taken out (the envelope already carries those recipients), a missing
 * Message-ID or Date is added at the top; every other byte stays as the client sent it.
 */
import addressparser from "nodemailer/lib/addressparser";
import { newId } from "../../kernel/ids.js";
import type { Address } from "../../kernel/transport.js";

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

/** A header value as text: unfolded, its bytes read as UTF-8 (SMTPUTF8 headers are raw UTF-8). */
function headerText(latin1Value: string): string {
  return Buffer.from(latin1Value.replace(/\r?\n(?=[ \t])/g, ""), "latin1")
    .toString("utf8")
    .trim();
}

/** RFC 2047 encoded words decoded (adjacent ones joined), for the log's subject and names. */
export function decodeWords(text: string): string {
  return text
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g, (word, charset: string, encoding: string, data: string) => {
      const bytes =
        encoding.toUpperCase() === "B"
          ? Buffer.from(data, "base64")
          : Buffer.from(
              data
                .replace(/_/g, " ")
                .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
              "latin1",
            );
      try {
        return new TextDecoder(charset.toLowerCase()).decode(bytes);
      } catch {
        return word; // a charset Node does not know: shown as sent
      }
    });
}

/** The mailboxes of an address header (groups flattened); names decoded after parsing, so a comma in one stays in it. */
function addresses(value: string | undefined): Address[] {
  if (value === undefined) return [];
  return addressparser(headerText(value), { flatten: true })
    .filter((a) => a.address)
    .map((a) => (a.name ? { address: a.address, name: decodeWords(a.name) } : { address: a.address }));
}

/** RFC 5322 date-time in UTC, e.g. "Tue, 02 Dec 2025 10:00:00 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, "+0000");
}

/**
 * Reads the headers of a submitted message (by hand: a full MIME parser costs a millisecond
 * a message, more than storing it) and sorts the envelope's recipients by the header
 * naming them: To, Cc, else Bcc. Recipients come from the envelope only; an address that
 * appears in a header but not in RCPT TO receives nothing.
 */
export function prepareSubmission(data: Buffer, rcptTo: string[], now = Date.now()): Submission {
  const { end, newline } = headerEnd(data);
  const fields = headerFields(data.subarray(0, end).toString("latin1"));
  const kept = fields.filter((f) => fieldName(f) !== "bcc");
  const names = new Set(kept.map(fieldName));

  // The first field of each name counts, as for every mail reader.
  const header = (name: string): string | undefined => {
    const field = kept.find((f) => fieldName(f) === name);
    return field === undefined ? undefined : field.slice(field.indexOf(":") + 1);
  };
  const from = addresses(header("from"))[0];
  const headerTo = addresses(header("to"));
  const headerCc = addresses(header("cc"));

  const added: string[] = [];
  const rawId = headerText(header("message-id") ?? "");
  let messageId = /<([^<>\s]+)>/.exec(rawId)?.[1] ?? rawId;
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
    replyTo: addresses(header("reply-to")),
    subject: decodeWords(headerText(header("subject") ?? "")),
    messageId,
    clientMessageId,
  };
}
