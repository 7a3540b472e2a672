/**
 * What `POST …/test` shows of a protocol exchange: the lines, with every secret removed.
 * Layers, because each alone can miss something: every AUTH exchange is replaced whole
 * (its base64 blobs hide secrets that no substring search finds), a base64 token after an
 * AUTH verb in any line is replaced (a server may echo the client's AUTH PLAIN line in its
 * 535), every known secret is replaced wherever it appears, raw or encoded, and so is every
 * base64 token that decodes to text containing one.
 */

export const REDACTED = "[redacted]";

/**
 * "AUTH <mechanism> <blob>": a SASL mechanism name (upper case, or a common one in lower
 * case), then any base64-looking token that is not itself a mechanism name, so an EHLO
 * line's "AUTH PLAIN LOGIN XOAUTH2" and prose such as "SMTP AUTH is enabled" stay readable.
 */
const AUTH_BLOB =
  /\b((?:AUTH|auth)\s+(?:[A-Z0-9_-]{2,}|plain|login|xoauth2|oauthbearer))\s+(?![A-Z0-9_-]+(?![A-Za-z0-9+/=]))[A-Za-z0-9+/_-]{4,}={0,2}/g;
/** A token that may be base64 (or base64url) of something worth checking. */
const BASE64_TOKEN = /[A-Za-z0-9+/_-]{8,}={0,2}/g;
/** Shorter secrets would match inside unrelated decoded bytes. */
const MIN_DECODED_MATCH = 4;

/** Replaces known secrets (and their encoded forms) in any text. */
export class Redactor {
  private readonly needles = new Set<string>();
  private readonly secrets = new Set<string>();

  constructor(secrets: Iterable<string | undefined> = []) {
    for (const secret of secrets) this.add(secret);
  }

  /** Remembers a secret from now on (e.g. an access token handed out during a check). */
  add(secret: string | undefined): void {
    if (!secret) return;
    if (secret.length >= MIN_DECODED_MATCH) this.secrets.add(secret);
    const forms = [
      secret,
      encodeURIComponent(secret),
      Buffer.from(secret).toString("base64"),
      Buffer.from(secret).toString("base64url"),
    ];
    // A base64 form with its padding stripped still appears inside longer blobs.
    for (const form of forms) {
      this.needles.add(form);
      const trimmed = form.replace(/=+$/, "");
      if (trimmed.length >= 4) this.needles.add(trimmed);
    }
  }

  redact(text: string): string {
    let out = text.replace(AUTH_BLOB, (_match, verb: string) => `${verb} ${REDACTED}`);
    // Whole tokens first: a needle replaced inside a blob would leave the rest of it behind.
    if (this.secrets.size > 0) {
      out = out.replace(BASE64_TOKEN, (token) => (this.decodesToSecret(token) ? REDACTED : token));
    }
    // Longest first, so a secret's base64 form is not half-replaced by a shorter secret.
    for (const needle of [...this.needles].sort((a, b) => b.length - a.length)) {
      if (out.includes(needle)) out = out.split(needle).join(REDACTED);
    }
    return out;
  }

  private decodesToSecret(token: string): boolean {
    // Node's base64 decoder reads the url-safe alphabet too.
    const decoded = Buffer.from(token, "base64").toString("latin1");
    const utf8 = Buffer.from(token, "base64").toString("utf8");
    for (const secret of this.secrets) {
      if (decoded.includes(secret) || utf8.includes(secret)) return true;
    }
    return false;
  }
}

/**
 * Collects an SMTP exchange line by line. Client lines are prefixed "C: ", server lines
 * "S: ", Mailroom's own notes "* ".
 */
export class SmtpTranscript {
  private readonly out: string[] = [];
  private inAuth = false;
  private lastClientCommand = "";
  private masked: string[] = [];
  /** The last reply to EHLO, one capability per line (without the greeting line). */
  ehloCapabilities: string[] = [];
  /** The server's first line. */
  greeting?: string;
  /**
   * The peer's first line was not an SMTP 220 greeting: it is something else (a database, a
   * message broker), and nothing it says is recorded, so a test cannot read other services.
   */
  notSmtp = false;
  /** The SASL method of the last AUTH command. */
  authMethod?: string;
  /** Whether the client asked for STARTTLS, and how long the upgrade took (until the next EHLO). */
  sentStartTls = false;
  startTlsMs?: number;
  private startTlsAt?: number;

  constructor(readonly redactor: Redactor) {}

  note(text: string): void {
    this.out.push(`* ${this.redactor.redact(text)}`);
  }

  /**
   * nodemailer logs commands sent by a custom SASL handler as "/* secret *\/"; the envelope
   * probe uses that channel for MAIL FROM and RCPT TO, so it names the real line here first.
   */
  expectMasked(line: string): void {
    this.masked.push(line);
  }

  client(raw: string): void {
    let line = raw;
    if (line === "/* secret */" && this.masked.length > 0) line = this.masked.shift()!;
    const command = line.split(" ")[0].toUpperCase();
    if (command === "STARTTLS") {
      this.sentStartTls = true;
      this.startTlsAt = performance.now();
    } else if (command === "EHLO" && this.startTlsAt !== undefined && this.startTlsMs === undefined) {
      this.startTlsMs = Math.round(performance.now() - this.startTlsAt);
    }
    if (command === "AUTH") {
      this.inAuth = true;
      const method = line.split(/\s+/)[1] ?? "";
      this.authMethod = method.toUpperCase();
      this.out.push(`C: AUTH ${method.toUpperCase()} ${REDACTED}`.replace(/ +$/, ""));
    } else if (this.inAuth) {
      // A continuation of the AUTH exchange: a username, password or token, base64-encoded.
      this.out.push(`C: ${REDACTED}`);
    } else {
      this.out.push(`C: ${this.redactor.redact(line)}`);
    }
    this.lastClientCommand = command;
  }

  server(raw: string): void {
    if (this.notSmtp) return;
    const lines = raw.split(/\r?\n/).filter((l) => l !== "");
    if (this.greeting === undefined && lines[0]) {
      if (!/^220(?:[ -]|$)/.test(lines[0])) {
        this.notSmtp = true;
        this.out.push("* The peer did not greet with an SMTP 220 line; what it sent is not shown");
        return;
      }
      this.greeting = this.redactor.redact(lines[0]);
    }
    if (this.inAuth) {
      const code = lines[0]?.slice(0, 3) ?? "";
      if (code === "334") {
        // A challenge, or Gmail's base64 JSON error: part of the AUTH exchange.
        this.out.push(`S: 334 ${REDACTED}`);
        return;
      }
      this.inAuth = false;
    }
    if (this.lastClientCommand === "EHLO" && lines[0]?.startsWith("250")) {
      this.ehloCapabilities = lines.slice(1).map((l) => l.replace(/^\d{3}[ -]/, "").trim());
    }
    for (const l of lines) this.out.push(`S: ${this.redactor.redact(l)}`);
  }

  /** A bunyan-style logger for nodemailer's SMTPConnection (`transactionLog: true`). */
  logger(): Record<"trace" | "debug" | "info" | "warn" | "error" | "fatal", (...args: unknown[]) => void> {
    const capture = (entry: unknown, message: unknown) => {
      const tnx = (entry as { tnx?: string } | undefined)?.tnx;
      if (typeof message !== "string") return;
      if (tnx === "client") this.client(message);
      else if (tnx === "server") this.server(message);
    };
    const ignore = () => {};
    return { trace: ignore, debug: capture, info: ignore, warn: ignore, error: ignore, fatal: ignore };
  }

  lines(): string[] {
    return this.out.slice();
  }
}
