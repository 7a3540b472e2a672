/**
 * A Mailroom on a fresh database with SMTP submission on port 0 (STARTTLS and implicit TLS),
 * a clock the failed-login window reads, and a switch that makes 127.0.0.1 count as a remote
 * client. Plus `dialog`, a line-level SMTP client for what real clients hide (EHLO lists,
 * the exact reply to each command).
 */
import { accessSync, constants } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import type { Permission } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { SmtpIntake } from "../../src/intake/smtp/server.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import type { Dialect } from "../helpers/databases.js";

export interface IntakeHarness {
  t: TestApp;
  intake: SmtpIntake;
  /** STARTTLS port and implicit TLS port. */
  port: number;
  tlsPort: number;
  /** The listener's certificate (self-signed, for "localhost" and 127.0.0.1): what clients trust. */
  ca: string;
  /** Moves the clock the failed-login window reads. */
  advance(ms: number): void;
  /** Treat connections from 127.0.0.1 as coming from another machine. */
  remote: boolean;
  /** A token with these permissions (default messages.send), limited to these servers. */
  token(name?: string, options?: { permissions?: Permission[]; serverIds?: string[] }): Promise<string>;
  close(): Promise<void>;
}

export async function startIntake(dialect: Dialect, env: Record<string, string> = {}): Promise<IntakeHarness> {
  return attachIntake(await startTestApp(dialect, { MAILROOM_SMTP_PORT: "0", MAILROOM_SMTPS_PORT: "0", ...env }));
}

/** SMTP submission for a test app started elsewhere (e.g. the OAuth harness); close() closes both. */
export async function attachIntake(t: TestApp): Promise<IntakeHarness> {
  let now = Date.now();
  const h = {
    remote: false,
  } as IntakeHarness;
  const m = t.mailroom;
  const intake = new SmtpIntake({
    config: m.ctx.config,
    messages: m.messages,
    servers: m.servers,
    tokens: m.tokens,
    metrics: m.metrics,
    log: m.ctx.log.child({ component: "smtp" }),
    clock: () => now,
    closeTimeoutMs: 500,
    isLoopback: (ip) => !h.remote && (ip === "::1" || /^(::ffff:)?127\./.test(ip)),
  });
  await intake.start();
  // The app's own routes (GET /api/smtp-submission) and close() then see this listener.
  m.smtp = intake;
  let tokens = 0;
  return Object.assign(h, {
    t,
    intake,
    port: intake.port("smtp") as number,
    tlsPort: intake.port("smtps") as number,
    ca: intake.certificate?.cert as string,
    advance(ms: number) {
      now += ms;
    },
    async token(name = `app-${++tokens}`, options: { permissions?: Permission[]; serverIds?: string[] } = {}) {
      const { token } = await m.tokens.create(
        { name, permissions: options.permissions ?? ["messages.send"], serverIds: options.serverIds },
        systemActor,
        null,
      );
      return token;
    },
    async close() {
      await intake.stop();
      await t.close();
    },
  });
}

/**
 * What a calendar app or a signing relay sends: a DKIM-Signature over headers and body, a
 * multipart/mixed with a text/calendar part, 8-bit UTF-8 in a header and the body, and
 * folding and spacing a re-composition would change.
 */
export const SIGNED_INVITE = Buffer.from(
  [
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel1;",
    "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;",
    "\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSwgYnV0IGl0IG11c3Qgc3Vydml2ZQ==",
    'From: "Zoë Planner" <sender@example.com>',
    "To: rcpt@example.org",
    "Subject: Einladung: Planung  (zwei Leerzeichen) ✓",
    "Date: Tue, 02 Dec 2025 10:00:00 +0100",
    "Message-ID: <invite-42@example.com>",
    "X-Custom:   kept   as   is",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="=_b1"',
    "",
    "--=_b1",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
    "",
    "Grüße — bitte annehmen.",
    "--=_b1",
    "Content-Type: text/calendar; charset=utf-8; method=REQUEST",
    "Content-Transfer-Encoding: 8bit",
    "",
    "BEGIN:VCALENDAR",
    "METHOD:REQUEST",
    "BEGIN:VEVENT",
    "UID:42@example.com",
    "SUMMARY:Planung ✓",
    "DTSTART:20251210T090000Z",
    "END:VEVENT",
    "END:VCALENDAR",
    "--=_b1--",
    "",
  ].join("\r\n"),
);

export const MSMTP = "/usr/bin/msmtp";

/** Whether Debian's msmtp is here; CI installs it, so there its absence fails instead of skipping. */
export function msmtpAvailable(): boolean {
  try {
    accessSync(MSMTP, constants.X_OK);
    return true;
  } catch {
    if (process.env.CI) throw new Error(`CI needs ${MSMTP} (Debian package msmtp)`);
    console.warn(`[skip] ${MSMTP} is not installed: the msmtp tests need Debian's msmtp ('apt-get install msmtp').`);
    return false;
  }
}

/** One SMTP conversation, a command at a time; each reply is returned whole ("250-…\r\n250 …"). */
export interface Dialog {
  /** The greeting. */
  greeting: string;
  send(line: string): Promise<string>;
  /** Writes several commands at once (PIPELINING) and reads one reply per command. */
  pipeline(lines: string[]): Promise<string[]>;
  /** Writes raw bytes and reads one reply (the end of DATA). */
  data(bytes: Buffer | string): Promise<string>;
  startTls(ca: string): Promise<void>;
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
  close(): void;
}

export async function dialog(port: number, options: { tls?: { ca: string } } = {}): Promise<Dialog> {
  let socket: net.Socket = options.tls
    ? tls.connect({ port, host: "127.0.0.1", servername: "localhost", ca: options.tls.ca })
    : net.connect({ port, host: "127.0.0.1" });
  let buffer = "";
  let waiting: (() => void) | null = null;
  let ended = false;
  const attach = (s: net.Socket) => {
    s.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      waiting?.();
    });
    s.on("error", () => {});
  };
  attach(socket);
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      ended = true;
      waiting?.();
      resolve();
    }),
  );

  /** Takes one complete reply (its last line has a space after the code) off the buffer. */
  const nextReply = async (): Promise<string> => {
    for (;;) {
      const match = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(buffer);
      if (match) {
        buffer = buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (ended) return buffer ? buffer.trimEnd() : "(connection closed)";
      await new Promise<void>((resolve) => {
        waiting = resolve;
      });
      waiting = null;
    }
  };

  const greeting = await nextReply();
  const d: Dialog = {
    greeting,
    async send(line) {
      socket.write(`${line}\r\n`);
      return nextReply();
    },
    async pipeline(lines) {
      socket.write(lines.map((l) => `${l}\r\n`).join(""));
      const out: string[] = [];
      for (const _ of lines) out.push(await nextReply());
      return out;
    },
    async data(bytes) {
      socket.write(bytes);
      return nextReply();
    },
    async startTls(ca) {
      const reply = await d.send("STARTTLS");
      if (!reply.startsWith("220")) throw new Error(`STARTTLS refused: ${reply}`);
      const plain = socket;
      plain.removeAllListeners("data");
      socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ socket: plain, servername: "localhost", ca }, () => resolve(s));
        s.once("error", reject);
      });
      attach(socket);
    },
    closed,
    close() {
      socket.destroy();
    },
  };
  return d;
}

/** AUTH PLAIN's initial response for a username and password. */
export function plain(username: string, password: string): string {
  return Buffer.from(`\0${username}\0${password}`).toString("base64");
}

/** A complete message in wire form, CRLF line endings, ending without the final dot. */
export function rfc822(headers: Record<string, string>, body = "Hello from a test.\r\n"): string {
  return `${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n${body}`;
}
