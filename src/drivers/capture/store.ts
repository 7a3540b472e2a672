/**
 * Captured messages on disk: one `.eml` file per message in `{dataDir}/capture/{serverId}/`,
 * named `{stamp}-{messageId}.eml` so that names sort by capture time. The stamp is a
 * millisecond time made strictly increasing within the process, so retention can always
 * tell the oldest apart. The API reads them through `listCaptured` and `readCaptured`.
 *
 * Once Mailroom's retention removed a message's body, its copy keeps only the headers that
 * name the message (from, to, cc, reply-to, subject, date, message-id) and the date of the
 * removal, under `{stamp}-{messageId}.body-removed.eml`: the name says so, so that a header
 * an application sent cannot make a whole copy pass for a trimmed one.
 */
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import type { AddressObject, ParsedMail } from "mailparser";
import type { Address } from "../../kernel/transport.js";
import type { KeptCopy } from "../types.js";

const STAMP_DIGITS = 15;
const SAFE_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
const CAPTURE_ID = new RegExp(`^\\d{${STAMP_DIGITS}}-[A-Za-z0-9_-]{1,128}$`);
const EXT = ".eml";
const TRIMMED_EXT = ".body-removed.eml";
/** The header, first in a trimmed copy, that dates the removal of its body. */
const REMOVED_HEADER = "X-Mailroom-Body-Removed";
/** What a trimmed copy keeps: the headers that name the message, as the delivery log keeps them. */
const KEPT_HEADERS = new Set(["from", "to", "cc", "reply-to", "subject", "date", "message-id"]);
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

/** A captured message's file, whole or trimmed (see the top); undefined when the id is not one. */
function fileOf(folder: string, id: string, trimmed = false): string | undefined {
  if (!isCaptureId(id)) return undefined;
  const file = path.join(folder, `${id}${trimmed ? TRIMMED_EXT : EXT}`);
  // Belt and braces: the id pattern already excludes separators and dots.
  return path.dirname(file) === folder ? file : undefined;
}

interface CapturedEntry {
  id: string;
  /** Retention removed its body: the file named with TRIMMED_EXT holds what is kept. */
  bodyRemoved: boolean;
  /** The whole copy is (still) there: alone, or beside a trimmed one when a trim stopped halfway. */
  whole: boolean;
}

/** The captured messages in a folder, oldest first; one entry an id, trimmed if a trimmed file exists. */
async function capturedEntries(folder: string): Promise<CapturedEntry[]> {
  let names: string[];
  try {
    names = await fs.readdir(folder);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const entries = new Map<string, CapturedEntry>();
  for (const name of names) {
    const trimmed = name.endsWith(TRIMMED_EXT);
    if (!trimmed && !name.endsWith(EXT)) continue;
    const id = name.slice(0, -(trimmed ? TRIMMED_EXT : EXT).length);
    if (!isCaptureId(id)) continue;
    // Both files for a moment while a copy is trimmed (or after a crash then): one entry, trimmed.
    const entry = entries.get(id) ?? { id, bodyRemoved: false, whole: false };
    if (trimmed) entry.bodyRemoved = true;
    else entry.whole = true;
    entries.set(id, entry);
  }
  return [...entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

async function capturedIds(folder: string): Promise<string[]> {
  return (await capturedEntries(folder)).map((e) => e.id);
}

/** The file that holds a captured message now, or undefined when there is none. */
async function existingFile(folder: string, id: string): Promise<{ file: string; bodyRemoved: boolean } | undefined> {
  for (const trimmed of [true, false]) {
    const file = fileOf(folder, id, trimmed);
    if (!file) return undefined;
    try {
      await fs.access(file);
      return { file, bodyRemoved: trimmed };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return undefined;
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
    await fs.rm(path.join(folder, `${id}${TRIMMED_EXT}`), { force: true });
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
  /** When Mailroom's retention removed the body (only the headers that name it are kept); null while kept. */
  bodyRemovedAt: string | null;
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
  /** See CapturedSummary. */
  bodyRemovedAt: string | null;
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

/** When a trimmed copy's body was removed, from the header retention wrote; null for a whole copy. */
function removedAt(parsed: ParsedMail, bodyRemoved: boolean): string | null {
  if (!bodyRemoved) return null;
  const value = parsed.headers.get(REMOVED_HEADER.toLowerCase());
  const time = typeof value === "string" ? Date.parse(value) : Number.NaN;
  // A trimmed copy without a readable date still says its body is gone.
  return Number.isNaN(time) ? new Date(0).toISOString() : new Date(time).toISOString();
}

/** One message's summary from its header section; undefined when it is gone (retention, delete). */
async function summaryOf(folder: string, entry: CapturedEntry): Promise<CapturedSummary | undefined> {
  const { id } = entry;
  const file = fileOf(folder, id, entry.bodyRemoved) as string;
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
    bodyRemovedAt: removedAt(parsed, entry.bodyRemoved),
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
  const entries = (await capturedEntries(folder)).reverse();
  const offset = Math.max(0, page.offset ?? 0);
  const limit = Math.max(0, page.limit ?? 50);
  const words = (page.q ?? "").toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) {
    const items: CapturedSummary[] = [];
    for (const entry of entries.slice(offset, offset + limit)) {
      const summary = await summaryOf(folder, entry);
      if (summary) items.push(summary);
    }
    return { items, total: entries.length };
  }
  // A search reads every header section: bounded by the server's retention (1,000 by default).
  const found: CapturedSummary[] = [];
  for (const entry of entries) {
    const summary = await summaryOf(folder, entry);
    if (summary && matches(summary, words)) found.push(summary);
  }
  return { items: found.slice(offset, offset + limit), total: found.length };
}

/** The stored MIME bytes of one captured message; undefined when there is none with that id. */
export async function readCapturedRaw(dataDir: string, serverId: string, id: string): Promise<Buffer | undefined> {
  return (await readCapturedFile(dataDir, serverId, id))?.raw;
}

async function readCapturedFile(
  dataDir: string,
  serverId: string,
  id: string,
): Promise<{ raw: Buffer; bodyRemoved: boolean } | undefined> {
  const folder = captureFolder(dataDir, serverId);
  // Twice: a copy being trimmed changes its file between the look and the read.
  for (let tries = 0; tries < 2; tries++) {
    const found = await existingFile(folder, id);
    if (!found) return undefined;
    try {
      return { raw: await fs.readFile(found.file), bodyRemoved: found.bodyRemoved };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return undefined;
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
      bodyRemovedAt: string | null;
    }
  | undefined
> {
  const found = await readCapturedFile(dataDir, serverId, id);
  if (!found) return undefined;
  const parsed = await parse(found.raw, { keepCidLinks: true });
  return {
    bodyRemovedAt: removedAt(parsed, found.bodyRemoved),
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

/** Deletes one captured message (whole or trimmed); false when there was none with that id. */
export async function deleteCaptured(dataDir: string, serverId: string, id: string): Promise<boolean> {
  const folder = captureFolder(dataDir, serverId);
  let deleted = false;
  for (const trimmed of [false, true]) {
    const file = fileOf(folder, id, trimmed);
    if (!file) return false;
    try {
      await fs.rm(file);
      deleted = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return deleted;
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
  const found = await readCapturedFile(dataDir, serverId, id);
  if (!found) return undefined;
  const { raw } = found;
  // Keep cid: links as sent, so a viewer can match them to the inline attachments.
  const parsed = await parse(raw, { keepCidLinks: true });
  return {
    id,
    capturedAt: capturedAt(id),
    size: raw.length,
    bodyRemovedAt: removedAt(parsed, found.bodyRemoved),
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
  for (const { id, bodyRemoved } of await capturedEntries(folder)) {
    const file = fileOf(folder, id, bodyRemoved) as string;
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

/** Every captured copy of a server, oldest first, read from the file names alone. */
export async function capturedCopies(dataDir: string, serverId: string): Promise<KeptCopy[]> {
  return (await capturedEntries(captureFolder(dataDir, serverId))).map(({ id, bodyRemoved, whole }) => ({
    id,
    // The file is named after the message it holds (storeCaptured).
    messageId: id.slice(STAMP_DIGITS + 1),
    keptAt: Number(id.slice(0, STAMP_DIGITS)),
    // A trim that stopped before the whole copy went is not done: the next purge finishes it.
    bodyRemoved: bodyRemoved && !whole,
  }));
}

/** The header fields of a header section, each with its folded continuation lines. */
function headerFields(head: string): { key: string; lines: string }[] {
  const fields: { key: string; lines: string }[] = [];
  for (const line of head.split(/\r?\n/)) {
    if (line === "") break;
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1].lines += `\r\n${line}`;
    else
      fields.push({
        key: line
          .slice(0, Math.max(0, line.indexOf(":")))
          .trim()
          .toLowerCase(),
        lines: line,
      });
  }
  return fields;
}

/**
 * Retention: replaces a copy by its trimmed form (the headers that name the message, and when
 * its body was removed), written whole under its own name before the full copy goes, so a
 * reader sees one or the other. False when there was nothing to do: the copy is gone or
 * already trimmed (a second run did it; one that stopped halfway is finished). Purges take turns (retention's lease), so two never
 * trim the same copy at once.
 */
export async function removeCapturedBody(dataDir: string, serverId: string, id: string, removedAt: number): Promise<boolean> {
  const folder = captureFolder(dataDir, serverId);
  const whole = fileOf(folder, id);
  const trimmed = fileOf(folder, id, true);
  if (!whole || !trimmed) return false;
  if ((await existingFile(folder, id))?.bodyRemoved) {
    // Trimmed before: only a whole copy left by a trim that stopped halfway is still to go.
    try {
      await fs.rm(whole);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }
  let head: Buffer;
  try {
    head = await readHeaderSection(whole);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  const kept = headerFields(head.toString("utf8")).filter((f) => KEPT_HEADERS.has(f.key));
  const text = [`${REMOVED_HEADER}: ${new Date(removedAt).toISOString()}`, ...kept.map((f) => f.lines)].join("\r\n");
  const temp = path.join(folder, `.tmp-${randomUUID()}`);
  await fs.writeFile(temp, `${text}\r\n\r\n`, { mode: 0o600 });
  await fs.rename(temp, trimmed);
  try {
    await fs.rm(whole);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    // Deleted meanwhile (an erasure, an admin's delete, the count limit): that wins, the trim goes too.
    await fs.rm(trimmed, { force: true });
    return false;
  }
  return true;
}
