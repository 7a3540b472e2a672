import addressparser from "nodemailer/lib/addressparser";
import { type FieldProblem, fieldError, MailroomError } from "../kernel/errors.js";
import type { Address, Attachment } from "../kernel/transport.js";
import { hasControlCharacters, isEmailAddress } from "../kernel/validate.js";

/** What an application sends to POST /api/messages (after JSON schema checks). */
export interface MessageInput {
  server?: string;
  from?: string | Address;
  to?: AddressInput;
  cc?: AddressInput;
  bcc?: AddressInput;
  replyTo?: AddressInput;
  subject?: string;
  text?: string;
  html?: string;
  attachments?: { filename: string; contentType?: string; content: string; contentId?: string }[];
  headers?: Record<string, string>;
  idempotencyKey?: string;
  /** Routes may match on it (src/core/routes.ts). */
  tag?: string;
}

export type AddressInput = string | Address | (string | Address)[];

/** A message checked and normalized, ready to store. */
export interface CheckedMessage {
  from?: Address;
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

export const MAX_RECIPIENTS = 500;
export const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;

// Headers Mailroom writes itself: a caller setting them would produce a second, conflicting copy.
const RESERVED_HEADERS = new Set([
  "from",
  "to",
  "cc",
  "bcc",
  "reply-to",
  "subject",
  "message-id",
  "date",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "sender",
  "return-path",
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,76}$/;
const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/;

function parseAddressList(field: string, value: AddressInput | undefined, problems: FieldProblem[]): Address[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  const out: Address[] = [];
  for (const [i, item] of items.entries()) {
    const where = Array.isArray(value) ? `${field}[${i}]` : field;
    if (typeof item === "string") {
      if (/[\r\n]/.test(item)) {
        problems.push({ field: where, message: "must not contain CR or LF" });
        continue;
      }
      const parsed = addressparser(item, { flatten: true });
      if (parsed.length === 0) problems.push({ field: where, message: "is empty; give an address like name@example.com" });
      for (const p of parsed) {
        if (!p.address || !isEmailAddress(p.address)) {
          problems.push({ field: where, message: `'${item}' is not an address like "Name <name@example.com>"` });
        } else out.push(p.name ? { address: p.address, name: p.name } : { address: p.address });
      }
    } else {
      if (hasControlCharacters(item.name ?? "") || hasControlCharacters(item.address)) {
        problems.push({ field: where, message: "must not contain control characters such as CR or LF" });
      } else if (!isEmailAddress(item.address)) {
        problems.push({ field: `${where}.address`, message: `'${item.address}' is not an address like name@example.com` });
      } else out.push(item.name ? { address: item.address, name: item.name } : { address: item.address });
    }
  }
  return out;
}

/**
 * Checks one message: addresses (RFC 5322, IDN allowed), no CR/LF in any header value,
 * at most 500 recipients, a subject or a body, attachments in base64. Throws one
 * catalogue error naming the field; nothing is stored on failure.
 */
export function checkMessage(input: MessageInput, prefix = ""): CheckedMessage {
  const problems: FieldProblem[] = [];
  const injection: FieldProblem[] = [];
  const p = (f: string) => `${prefix}${f}`;

  const crlf = (field: string, value: string | undefined) => {
    if (value !== undefined && /[\r\n]/.test(value)) injection.push({ field: p(field), message: "must not contain CR or LF" });
  };
  crlf("subject", input.subject);
  if (typeof input.from === "string") crlf("from", input.from);
  else if (input.from) {
    crlf("from.name", input.from.name);
    crlf("from.address", input.from.address);
  }
  for (const field of ["to", "cc", "bcc", "replyTo"] as const) {
    const v = input[field];
    for (const item of v === undefined ? [] : Array.isArray(v) ? v : [v]) {
      if (typeof item === "string") crlf(field, item);
      else {
        crlf(`${field}.name`, item.name);
        crlf(`${field}.address`, item.address);
      }
    }
  }
  for (const [name, value] of Object.entries(input.headers ?? {})) crlf(`headers.${name}`, value);
  for (const [i, a] of (input.attachments ?? []).entries()) {
    crlf(`attachments[${i}].filename`, a.filename);
    crlf(`attachments[${i}].contentType`, a.contentType);
    crlf(`attachments[${i}].contentId`, a.contentId);
  }
  if (injection.length) throw fieldError("header_injection", injection);

  let from: Address | undefined;
  if (input.from !== undefined) {
    const parsed = parseAddressList("from", input.from, problems);
    if (parsed.length > 1) problems.push({ field: p("from"), message: "must be one address" });
    from = parsed[0];
  }
  const to = parseAddressList(p("to"), input.to, problems);
  const cc = parseAddressList(p("cc"), input.cc, problems);
  const bcc = parseAddressList(p("bcc"), input.bcc, problems);
  const replyTo = parseAddressList(p("replyTo"), input.replyTo, problems);
  if (problems.length) throw fieldError("invalid_address", problems);

  const count = to.length + cc.length + bcc.length;
  if (count === 0)
    throw fieldError("invalid_address", [{ field: p("to"), message: "give at least one recipient in to, cc or bcc" }]);
  if (count > MAX_RECIPIENTS) {
    throw new MailroomError(
      "too_many_recipients",
      `${prefix}The message has ${count} recipients; at most ${MAX_RECIPIENTS} are allowed.`,
    );
  }
  const subject = input.subject ?? "";
  if (subject.trim() === "" && !input.text && !input.html) {
    throw new MailroomError("empty_message", `${prefix}Give the message a subject, text or html.`);
  }

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.headers ?? {})) {
    if (!HEADER_NAME.test(name)) {
      problems.push({ field: p(`headers.${name}`), message: "is not a valid header name (letters, digits and - only)" });
    } else if (RESERVED_HEADERS.has(name.toLowerCase())) {
      problems.push({ field: p(`headers.${name}`), message: "is set by Mailroom; use the message's own field instead" });
    } else if (hasControlCharacters(value.replace(/\t/g, ""))) {
      problems.push({ field: p(`headers.${name}`), message: "must not contain control characters" });
    } else headers[name] = value;
  }
  if (problems.length) throw fieldError("validation_failed", problems);

  const attachments: Attachment[] = [];
  for (const [i, a] of (input.attachments ?? []).entries()) {
    const where = p(`attachments[${i}]`);
    if (!a.filename?.trim() || hasControlCharacters(a.filename)) {
      problems.push({ field: `${where}.filename`, message: "is required, without control characters" });
    } else if (!BASE64.test(a.content)) {
      problems.push({ field: `${where}.content`, message: "must be base64" });
    } else {
      attachments.push({
        filename: a.filename,
        contentType: a.contentType || "application/octet-stream",
        content: Buffer.from(a.content, "base64"),
        ...(a.contentId ? { contentId: a.contentId } : {}),
      });
    }
  }
  if (problems.length) throw fieldError("invalid_attachment", problems);

  const size =
    Buffer.byteLength(subject) +
    Buffer.byteLength(input.text ?? "") +
    Buffer.byteLength(input.html ?? "") +
    attachments.reduce((n, a) => n + a.content.length, 0);
  if (size > MAX_MESSAGE_BYTES) {
    throw new MailroomError(
      "body_too_large",
      `${prefix}The message is ${size} bytes; at most ${MAX_MESSAGE_BYTES} (10 MB) are allowed.`,
    );
  }
  return { from, to, cc, bcc, replyTo, subject, text: input.text, html: input.html, attachments, headers };
}

/** Whether a server may send as `address`: its own from address, or one its allow-list permits (`*@domain` wildcards). */
export function fromAllowed(address: string, serverFrom: string, allowed: string[]): boolean {
  const a = address.toLowerCase();
  if (a === serverFrom.toLowerCase()) return true;
  return allowed.some((rule) => {
    const r = rule.trim().toLowerCase();
    return r.startsWith("*@") ? a.endsWith(r.slice(1)) : a === r;
  });
}
