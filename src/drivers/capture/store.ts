/**
 * Captured messages on disk: one `.eml` file per message in `{dataDir}/capture/{serverId}/`,
 * named `{stamp}-{messageId}.eml` so that names sort by capture time. The stamp is a
 * millisecond time made strictly increasing within the process, so retention can always
 * tell the oldest apart. The API reads them through `listCaptured` and `readCaptured`.
 */
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { AddressObject, ParsedMail } from "mailparser";
import type { Address } from "../../kernel/transport.js";

const STAMP_DIGITS = 15;
const SAFE_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
const CAPTURE_ID = new RegExp(`^\\d{${STAMP_DIGITS}}-[A-Za-z0-9_-]{1,128}$`);
const EXT = ".eml";
/** Headers of a message end within this many bytes, or the list shows it without them. */
const MAX_HEADER_BYTES = 256 * 1024;

let lastStamp = 0;

/**
 * mailparser is loaded only when captured mail is read, so that sending (and the server's
 * start) never depends on it. It must be a runtime dependency for the capture viewer.
 */
async function parse(source: Buffer, options: Record<string, boolean>): Promise<ParsedMail> {
  const { simpleParser } = await import("mailparser");
  return simpleParser(source, options);
}

function nextStamp(): number {
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  return lastStamp;
}

/** The folder of one server's captured messages; refuses a server id that is not a plain name. */
export function captureFolder(dataDir: string, serverId: string): string {
  if (!SAFE_SEGMENT.test(serverId)) throw new Error(`Not a valid server id for a capture folder: ${JSON.stringify(serverId)}`);
  return path.join(dataDir, "capture", serverId);
}

/** Whether an id can name a captured message: a stamp and a plain name, nothing else (no paths). */
export function isCaptureId(id: string): boolean {
  return CAPTURE_ID.test(id);
}

function fileOf(folder: string, id: string): string | undefined {
  if (!isCaptureId(id)) return undefined;
  const file = path.join(folder, `${id}${EXT}`);
  // Belt and braces: the id pattern already excludes separators and dots.
  return path.dirname(file) === folder ? file : undefined;
}

async function capturedIds(folder: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(folder);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith(EXT))
    .map((n) => n.slice(0, -EXT.length))
    .filter(isCaptureId)
    .sort();
}

function capturedAt(id: string): string {
  return new Date(Number(id.slice(0, STAMP_DIGITS))).toISOString();
}

/**
 * Writes one message and drops the oldest beyond `retention`. The file appears whole or not at
 * all (written under a temporary name, then renamed), so a listing never shows half a message.
 */
export async function storeCaptured(
  dataDir: string,
  serverId: string,
  messageId: string,
  mime: Buffer,
  retention: number,
): Promise<string> {
  const folder = captureFolder(dataDir, serverId);
  await fs.mkdir(folder, { recursive: true, mode: 0o700 });
  const safeName = messageId.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 128) || randomUUID();
  const id = `${String(nextStamp()).padStart(STAMP_DIGITS, "0")}-${safeName}`;
  const temp = path.join(folder, `.tmp-${randomUUID()}`);
  await fs.writeFile(temp, mime, { mode: 0o600 });
  await fs.rename(temp, path.join(folder, `${id}${EXT}`));
  await applyRetention(folder, retention);
  return id;
}

async function applyRetention(folder: string, retention: number): Promise<void> {
  const ids = await capturedIds(folder);
  const excess = ids.length - Math.max(1, retention);
  for (const id of ids.slice(0, Math.max(0, excess))) {
    // Another send may be trimming at the same moment: a file already gone is fine.
    await fs.rm(path.join(folder, `${id}${EXT}`), { force: true });
  }
}

export interface CapturedSummary {
  id: string;
  capturedAt: string;
  from: Address | null;
  to: Address[];
  subject: string;
  /** Bytes of the whole MIME message. */
  size: number;
}

export interface CapturedAttachment {
  filename: string | null;
  contentType: string;
  size: number;
  contentId: string | null;
}

export interface CapturedMessage {
  id: string;
  capturedAt: string;
  size: number;
  /** The full MIME message as stored. */
  raw: string;
  parsed: {
    from: Address | null;
    to: Address[];
    cc: Address[];
    subject: string;
    text: string | null;
    html: string | null;
    /** Each header line as sent, in order (a header may repeat). */
    headers: { key: string; value: string }[];
    attachments: CapturedAttachment[];
  };
}

function addresses(field: AddressObject | AddressObject[] | undefined): Address[] {
  const objects = field === undefined ? [] : Array.isArray(field) ? field : [field];
  return objects.flatMap((o) =>
    o.value.flatMap((a) => {
      // A group ("Team: a@x, b@x;") lists its members.
      const members = a.group?.length ? a.group : [a];
      return members
        .filter((m) => m.address)
        .map((m) => (m.name ? { address: m.address!, name: m.name } : { address: m.address! }));
    }),
  );
}

/** The bytes of a message's header section, read without loading its body. */
async function readHeaderSection(file: string): Promise<Buffer> {
  const handle = await fs.open(file, "r");
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < MAX_HEADER_BYTES) {
      const chunk = Buffer.alloc(16 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      const sofar = Buffer.concat(chunks);
      const end = sofar.indexOf("\r\n\r\n");
      if (end >= 0) return sofar.subarray(0, end + 4);
      const endLf = sofar.indexOf("\n\n");
      if (endLf >= 0) return sofar.subarray(0, endLf + 2);
    }
    return Buffer.concat(chunks);
  } finally {
    await handle.close();
  }
}

/** One message's summary from its header section; undefined when it is gone (retention, delete). */
async function summaryOf(folder: string, id: string): Promise<CapturedSummary | undefined> {
  const file = path.join(folder, `${id}${EXT}`);
  let size: number;
  let head: Buffer;
  try {
    size = (await fs.stat(file)).size;
    head = await readHeaderSection(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const parsed = await parse(head, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
  return {
    id,
    capturedAt: capturedAt(id),
    from: addresses(parsed.from)[0] ?? null,
    to: addresses(parsed.to),
    subject: parsed.subject ?? "",
    size,
  };
}

function matches(summary: CapturedSummary, words: string[]): boolean {
  const text = [summary.subject, ...[summary.from, ...summary.to].flatMap((a) => (a ? [a.address, a.name ?? ""] : []))]
    .join("\n")
    .toLowerCase();
  return words.every((w) => text.includes(w));
}

/**
 * One server's captured messages, newest first, `{items, total}` like every list of the API.
 * `q` keeps those whose subject, from or to hold every word of it (case-insensitive).
 */
export async function listCaptured(
  dataDir: string,
  serverId: string,
  page: { limit?: number; offset?: number; q?: string } = {},
): Promise<{ items: CapturedSummary[]; total: number }> {
  const folder = captureFolder(dataDir, serverId);
  const ids = (await capturedIds(folder)).reverse();
  const offset = Math.max(0, page.offset ?? 0);
  const limit = Math.max(0, page.limit ?? 50);
  const words = (page.q ?? "").toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) {
    const items: CapturedSummary[] = [];
    for (const id of ids.slice(offset, offset + limit)) {
      const summary = await summaryOf(folder, id);
      if (summary) items.push(summary);
    }
    return { items, total: ids.length };
  }
  // A search reads every header section: bounded by the server's retention (1,000 by default).
  const found: CapturedSummary[] = [];
  for (const id of ids) {
    const summary = await summaryOf(folder, id);
    if (summary && matches(summary, words)) found.push(summary);
  }
  return { items: found.slice(offset, offset + limit), total: found.length };
}

/** The stored MIME bytes of one captured message; undefined when there is none with that id. */
export async function readCapturedRaw(dataDir: string, serverId: string, id: string): Promise<Buffer | undefined> {
  const file = fileOf(captureFolder(dataDir, serverId), id);
  if (!file) return undefined;
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** One attachment of a captured message, by its position; undefined when there is none. */
export async function readCapturedAttachment(
  dataDir: string,
  serverId: string,
  id: string,
  index: number,
): Promise<{ filename: string | null; contentType: string; content: Buffer } | undefined> {
  const raw = await readCapturedRaw(dataDir, serverId, id);
  if (!raw) return undefined;
  const attachment = (await parse(raw, { keepCidLinks: true })).attachments[index];
  return (
    attachment && { filename: attachment.filename ?? null, contentType: attachment.contentType, content: attachment.content }
  );
}

/** What sending a captured message on needs: its addresses and parts, attachments as base64. */
export async function readCapturedContent(
  dataDir: string,
  serverId: string,
  id: string,
): Promise<
  | {
      from: Address | null;
      to: Address[];
      cc: Address[];
      subject: string;
      text: string | null;
      html: string | null;
      attachments: { filename: string; contentType: string; content: string; contentId?: string }[];
    }
  | undefined
> {
  const raw = await readCapturedRaw(dataDir, serverId, id);
  if (!raw) return undefined;
  const parsed = await parse(raw, { keepCidLinks: true });
  return {
    from: addresses(parsed.from)[0] ?? null,
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    subject: parsed.subject ?? "",
    text: parsed.text ?? null,
    html: typeof parsed.html === "string" ? parsed.html : null,
    attachments: parsed.attachments.map((a, i) => ({
      filename: a.filename ?? `attachment-${i}`,
      contentType: a.contentType,
      content: a.content.toString("base64"),
      ...(a.contentId ? { contentId: a.contentId.replace(/^<|>$/g, "") } : {}),
    })),
  };
}

/** Deletes one captured message; false when there was none with that id. */
export async function deleteCaptured(dataDir: string, serverId: string, id: string): Promise<boolean> {
  const file = fileOf(captureFolder(dataDir, serverId), id);
  if (!file) return false;
  try {
    await fs.rm(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Deletes every captured message of a server (the folder stays); returns how many went. */
export async function deleteAllCaptured(dataDir: string, serverId: string): Promise<number> {
  const folder = captureFolder(dataDir, serverId);
  let deleted = 0;
  for (const id of await capturedIds(folder)) {
    if (await deleteCaptured(dataDir, serverId, id)) deleted++;
  }
  return deleted;
}

/**
 * A header value as its reader sees it: RFC 2047 encoded words ("=?UTF-8?B?...?=") decoded,
 * the space between two adjacent encoded words dropped as the RFC says. A word in a charset
 * this Node.js does not know stays as it was.
 */
export function decodeHeaderValue(value: string): string {
  return value.replace(
    /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=(?:\s+(?==\?[^?\s]+\?[BbQq]\?))?/g,
    (word, charset, encoding, text) => {
      const bytes =
        encoding.toUpperCase() === "B"
          ? Buffer.from(text, "base64")
          : Buffer.from(
              text
                .replace(/_/g, " ")
                .replace(/=([0-9A-Fa-f]{2})/g, (_: string, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
              "latin1",
            );
      try {
        // "UTF-8*en" names a language after the star (RFC 2231): the charset is before it.
        return new TextDecoder(charset.split("*")[0]).decode(bytes);
      } catch {
        return word;
      }
    },
  );
}

/** One captured message, raw and parsed; undefined when no message has that id (or the id is not one). */
export async function readCaptured(dataDir: string, serverId: string, id: string): Promise<CapturedMessage | undefined> {
  const raw = await readCapturedRaw(dataDir, serverId, id);
  if (!raw) return undefined;
  // Keep cid: links as sent, so a viewer can match them to the inline attachments.
  const parsed = await parse(raw, { keepCidLinks: true });
  return {
    id,
    capturedAt: capturedAt(id),
    size: raw.length,
    raw: raw.toString("utf8"),
    parsed: {
      from: addresses(parsed.from)[0] ?? null,
      to: addresses(parsed.to),
      cc: addresses(parsed.cc),
      subject: parsed.subject ?? "",
      text: parsed.text ?? null,
      html: typeof parsed.html === "string" ? parsed.html : null,
      headers: parsed.headerLines.map((h) => ({
        key: h.key,
        value: decodeHeaderValue(
          h.line
            .slice(h.line.indexOf(":") + 1)
            .replace(/\r?\n[ \t]+/g, " ")
            .trim(),
        ),
      })),
      attachments: parsed.attachments.map((a) => ({
        filename: a.filename ?? null,
        contentType: a.contentType,
        size: a.size,
        contentId: a.contentId ? a.contentId.replace(/^<|>$/g, "") : null,
      })),
    },
  };
}

/**
 * Erasure: deletes the captured copies of `messageIds` (a file is named after the message it
 * holds) and every other one whose header section names `address` (a message captured and
 * since dropped from the log, say). Bcc recipients appear in no header: their copies are found
 * by id. Returns how many files went.
 */
export async function eraseCapturedFor(
  dataDir: string,
  serverId: string,
  address: string,
  messageIds: ReadonlySet<string>,
): Promise<number> {
  const folder = captureFolder(dataDir, serverId);
  const wanted = address.toLowerCase();
  let erased = 0;
  for (const id of await capturedIds(folder)) {
    const file = path.join(folder, `${id}${EXT}`);
    let names = messageIds.has(id.slice(STAMP_DIGITS + 1));
    if (!names) {
      try {
        names = (await readHeaderSection(file)).toString("utf8").toLowerCase().includes(wanted);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
    }
    if (names && (await deleteCaptured(dataDir, serverId, id))) erased++;
  }
  return erased;
}

/** Forgets every captured message of a server (for when the server is deleted). */
export async function removeCaptured(dataDir: string, serverId: string): Promise<void> {
  await fs.rm(captureFolder(dataDir, serverId), { recursive: true, force: true });
}
