/**
 * A real SMTP server (smtp-server) for tests: STARTTLS, implicit TLS or plain text with a
 * certificate generated at test time, AUTH PLAIN/LOGIN/XOAUTH2 against an expected user,
 * password or token, scripted faults (4xx, 5xx on RCPT, 530 before STARTTLS, dropped
 * connections), and a record of everything it received, parsed with mailparser.
 *
 * Listens on port 0 (the OS picks) on 127.0.0.1 by default. Connect to host "localhost" to
 * have the generated certificate (made for "localhost") match.
 */
import { randomBytes } from "node:crypto";
import { simpleParser } from "mailparser";
import { generate } from "selfsigned";
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from "smtp-server";

export type PeerSecurity = "starttls" | "tls" | "none";
export type PeerAuthMethod = "PLAIN" | "LOGIN" | "XOAUTH2";

export interface PeerAuth {
  user: string;
  /** Accepted for PLAIN and LOGIN. */
  password?: string;
  /** Accepted access tokens for XOAUTH2 (one, or several). */
  accessToken?: string | string[];
  /** Offered methods; default PLAIN and LOGIN, plus XOAUTH2 when an access token is set. */
  methods?: PeerAuthMethod[];
  /**
   * How a rejected XOAUTH2 token is answered: "gmail" (default) as Gmail does, 334 with a
   * base64 JSON error, then 535 after the client's empty line; "535" at once; "outlook"
   * at once as Microsoft 365 does (535 5.7.3 Authentication unsuccessful).
   */
  tokenRejection?: "gmail" | "535" | "outlook";
  /** Answers each AUTH only once this resolves: orders the logins of a race. */
  hold?: (attempt: AuthAttempt) => Promise<void> | void;
  /** Let clients send without logging in (default false: MAIL before AUTH gets 530). */
  optional?: boolean;
  /** A careless server: its 535 echoes the client's AUTH PLAIN line, base64 blob and all. */
  echoRejectedAuth?: boolean;
}

export interface PeerFaults {
  /** Answer the next `times` messages at the end of DATA with this code (e.g. 451, or 421 which closes the connection). */
  failMessages?: { times: number; code: number; message?: string };
  /** Answer RCPT TO for these addresses (case-insensitive) with 550 5.1.1. */
  rejectRecipients?: string[];
  /** Answer MAIL FROM for these addresses with 553 5.7.1. */
  rejectSenders?: string[];
  /** Close the connection in the middle of DATA for the next `times` messages. */
  dropDuringData?: { times: number };
  /** Faults by chance, for drills: a share of messages answered 451, a share cut mid-DATA. */
  random?: { tempFailRate: number; dropRate: number; random?: () => number };
  /** Answer MAIL FROM with 530 5.7.0 until the client has issued STARTTLS. */
  requireStartTls?: boolean;
  /** Wait this long before the 220 greeting of each new connection, as a slow or overloaded server does. */
  greetingDelayMs?: number;
  /** Answer the end of each DATA only once this resolves: messages stay in flight until the test lets them go. */
  holdMessages?: () => Promise<void>;
}

export interface CertificateFiles {
  /** PEM of the CA that signed `cert`: what a client must trust. */
  ca: string;
  key: string;
  cert: string;
}

export interface SmtpPeerOptions {
  /** Address to listen on; default 127.0.0.1. */
  listenHost?: string;
  /** Port to listen on; default 0 (the OS picks). A drill restarts a peer on the port it had. */
  port?: number;
  /** default "starttls": STARTTLS offered; "tls": TLS from the first byte; "none": no TLS at all. */
  security?: PeerSecurity;
  /** Key and certificate; default: generated for "localhost" by a fresh test CA. */
  certificate?: CertificateFiles;
  /** Require a login (see PeerAuth). Without it, anyone may send. */
  auth?: PeerAuth;
  faults?: PeerFaults;
  /** Server name shown in the greeting; default "peer.test". */
  name?: string;
}

export interface ReceivedAttachment {
  filename?: string;
  contentType: string;
  content: Buffer;
  /** Content-ID without angle brackets, for inline parts. */
  cid?: string;
  inline: boolean;
}

export interface ReceivedMessage {
  /** The id the peer gave the message in its 250 reply ("queued as <id>"). */
  queueId: string;
  envelope: { from: string; to: string[] };
  /** The user the client logged in as, if any. */
  user?: string;
  /** Whether the message came over TLS. */
  secure: boolean;
  raw: Buffer;
  messageId?: string;
  from?: string;
  fromName?: string;
  to: string[];
  cc: string[];
  subject?: string;
  text?: string;
  /** The html body with cid: links kept. */
  html?: string;
  headers: Map<string, unknown>;
  attachments: ReceivedAttachment[];
}

export interface AuthAttempt {
  method: string;
  user?: string;
  password?: string;
  accessToken?: string;
  ok: boolean;
}

export interface SmtpPeer {
  /** The address listened on (127.0.0.1); connect to "localhost" for the certificate to match. */
  host: string;
  port: number;
  security: PeerSecurity;
  /** The CA a client must trust to verify the peer's certificate. */
  ca: string;
  received: ReceivedMessage[];
  /** Every AUTH attempt, with the credentials given (test data only). */
  authAttempts: AuthAttempt[];
  /** Every command line received, credentials hidden by smtp-server ("AUTH PLAIN /* secured *\/"). */
  commands: string[];
  /** Connections accepted so far. */
  connections: number;
  /** True once any client issued DATA. */
  readonly sawData: boolean;
  /** Replace the scripted faults (counters restart from the new values). */
  setFaults(faults: PeerFaults): void;
  /** Replace the expected credentials and methods. Whether AUTH is offered at all (and required) is fixed at start. */
  setAuth(auth: PeerAuth | undefined): void;
  /** Closes every open connection, as a server's idle timeout does: clients connect and log in again. */
  disconnectAll(): void;
  /** Resolves once `count` messages have been received, or rejects after `timeoutMs`. */
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  /** Forget what was received and seen (messages, AUTH attempts, commands, the connection count). */
  clear(): void;
  close(): Promise<void>;
}

type EcCertificateOptions = NonNullable<Parameters<typeof generate>[1]>;

const ecOptions: EcCertificateOptions = { keyType: "ec", curve: "P-256", algorithm: "sha256" };

let sharedCa: Promise<{ key: string; cert: string }> | undefined;

/** A test CA, made once per test file. */
export function testCa(): Promise<{ key: string; cert: string }> {
  sharedCa ??= generate([{ name: "commonName", value: "Mailroom Test CA" }], {
    ...ecOptions,
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  }).then((pems) => ({ key: pems.private, cert: pems.cert }));
  return sharedCa;
}

/** A server certificate for these host names (and 127.0.0.1), signed by the test CA. */
export async function generateCertificate(hostnames: string[] = ["localhost"]): Promise<CertificateFiles> {
  const ca = await testCa();
  const pems = await generate([{ name: "commonName", value: hostnames[0] }], {
    ...ecOptions,
    ca,
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: hostnames.map((value) => ({ type: 2 as const, value })) },
    ],
  });
  return { ca: ca.cert, key: pems.private, cert: pems.cert };
}

function smtpError(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

function listOf(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function addresses(header: unknown): { address: string; name: string }[] {
  const objects = Array.isArray(header) ? header : header ? [header] : [];
  return objects.flatMap((o: { value?: { address?: string; name?: string }[] }) =>
    (o.value ?? []).map((v) => ({ address: v.address ?? "", name: v.name ?? "" })),
  );
}

export async function startSmtpPeer(options: SmtpPeerOptions = {}): Promise<SmtpPeer> {
  const security = options.security ?? "starttls";
  const certificate = options.certificate ?? (await generateCertificate(["localhost"]));
  let auth = options.auth;
  let faults: PeerFaults = { ...options.faults };
  const received: ReceivedMessage[] = [];
  const authAttempts: AuthAttempt[] = [];
  const commands: string[] = [];
  const waiters: (() => void)[] = [];
  let connections = 0;

  const notify = () => {
    for (const w of waiters.splice(0)) w();
  };

  const authMethods = (a: PeerAuth | undefined): PeerAuthMethod[] =>
    a?.methods ?? (a?.accessToken !== undefined ? ["PLAIN", "LOGIN", "XOAUTH2"] : ["PLAIN", "LOGIN"]);

  const server = new SMTPServer({
    name: options.name ?? "peer.test",
    secure: security === "tls",
    key: certificate.key,
    cert: certificate.cert,
    // "none" offers no STARTTLS at all; otherwise STARTTLS is offered on the plain port.
    disabledCommands: [...(security === "none" ? ["STARTTLS"] : []), ...(auth ? [] : ["AUTH"])],
    authMethods: authMethods(auth),
    authOptional: !auth || auth.optional === true,
    // A peer with security "none" and a login is a plain-text server that allows it.
    allowInsecureAuth: security === "none",
    disableReverseLookup: true,
    socketTimeout: 30_000,
    closeTimeout: 1_000,
    logger: {
      // smtp-server logs each command line (credentials already hidden) as "C:", line.
      debug(entry: { tnx?: string }, _format: string, line?: string) {
        if (entry?.tnx === "command" && typeof line === "string") commands.push(line);
      },
      info() {},
      warn() {},
      error() {},
      trace() {},
      fatal() {},
    },
    onConnect(_session, callback) {
      connections++;
      if (faults.greetingDelayMs) setTimeout(callback, faults.greetingDelayMs);
      else callback();
    },
    onAuth(attempt: SMTPServerAuthentication, _session: SMTPServerSession, callback) {
      const expected = auth;
      const record: AuthAttempt = { method: attempt.method, user: attempt.username, ok: false };
      if (attempt.method === "XOAUTH2") {
        record.accessToken = attempt.accessToken;
        record.ok =
          !!expected && attempt.username === expected.user && listOf(expected.accessToken).includes(attempt.accessToken ?? "");
        authAttempts.push(record);
        const answer = () => {
          if (record.ok) return callback(null, { user: attempt.username });
          if (expected?.tokenRejection === "535") {
            return callback(smtpError(535, "5.7.8 Username and Password not accepted"));
          }
          if (expected?.tokenRejection === "outlook") {
            return callback(smtpError(535, "5.7.3 Authentication unsuccessful [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]"));
          }
          // Gmail's answer: 334 <base64 JSON>, then 535 once the client sends an empty line.
          return callback(null, {
            data: { status: "401", schemes: "bearer", scope: "https://mail.google.com/" },
          });
        };
        if (!expected?.hold) return answer();
        return void Promise.resolve(expected.hold(record)).then(answer, answer);
      }
      record.password = attempt.password ?? undefined;
      record.ok =
        !!expected &&
        expected.password !== undefined &&
        attempt.username === expected.user &&
        attempt.password === expected.password;
      authAttempts.push(record);
      if (record.ok) return callback(null, { user: attempt.username });
      if (expected?.echoRejectedAuth && attempt.method === "PLAIN") {
        // What the client sent: base64 of "\0user\0password" (no authorization identity).
        const blob = Buffer.from(`\u0000${attempt.username}\u0000${attempt.password ?? ""}`).toString("base64");
        return callback(smtpError(535, `5.7.8 Error: authentication failed: AUTH PLAIN ${blob}`));
      }
      return callback(smtpError(535, "5.7.8 Error: authentication failed: Invalid credentials"));
    },
    onMailFrom(address, session, callback) {
      if (faults.requireStartTls && !session.secure) {
        return callback(smtpError(530, "5.7.0 Must issue a STARTTLS command first"));
      }
      if (faults.rejectSenders?.some((s) => s.toLowerCase() === address.address.toLowerCase())) {
        return callback(smtpError(553, `5.7.1 <${address.address}>: Sender address rejected: not owned by user`));
      }
      callback();
    },
    onRcptTo(address, _session, callback) {
      if (faults.rejectRecipients?.some((r) => r.toLowerCase() === address.address.toLowerCase())) {
        return callback(smtpError(550, `5.1.1 <${address.address}>: Recipient address rejected: User unknown`));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      const chance = faults.random ? (faults.random.random ?? Math.random) : undefined;
      const scripted = faults.dropDuringData && faults.dropDuringData.times > 0;
      if (scripted && faults.dropDuringData) faults.dropDuringData.times--;
      const drop = scripted || (chance !== undefined && chance() < (faults.random?.dropRate ?? 0));
      const tempFail = !drop && chance !== undefined && chance() < (faults.random?.tempFailRate ?? 0);
      stream.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        if (drop) {
          // Cut the connection with the message half-sent, as a crashing server would.
          for (const connection of server.connections) {
            if (connection.session === session) connection._socket.destroy();
          }
        }
      });
      stream.on("end", () => {
        if (drop) return;
        const held = faults.holdMessages;
        if (held) return void held().then(finish, finish);
        finish();
      });
      const finish = () => {
        if (tempFail) return callback(smtpError(451, "4.3.0 Temporary failure (drill), try again later"));
        const fail = faults.failMessages;
        if (fail && fail.times > 0) {
          fail.times--;
          const text =
            fail.message ??
            (fail.code === 421 ? "4.3.2 Service shutting down, try again later" : "4.3.0 Temporary failure, try again later");
          return callback(smtpError(fail.code, text));
        }
        const raw = Buffer.concat(chunks);
        simpleParser(raw, { keepCidLinks: true })
          .then((parsed) => {
            const queueId = randomBytes(6).toString("hex").toUpperCase();
            const from = addresses(parsed.from)[0];
            received.push({
              queueId,
              envelope: {
                from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
                to: session.envelope.rcptTo.map((r) => r.address),
              },
              user: typeof session.user === "string" ? session.user : undefined,
              secure: session.secure,
              raw,
              messageId: parsed.messageId,
              from: from?.address,
              fromName: from?.name,
              to: addresses(parsed.to).map((a) => a.address),
              cc: addresses(parsed.cc).map((a) => a.address),
              subject: parsed.subject,
              text: parsed.text,
              html: parsed.html === false ? undefined : parsed.html,
              headers: parsed.headers as Map<string, unknown>,
              attachments: parsed.attachments.map((a) => ({
                filename: a.filename,
                contentType: a.contentType,
                content: a.content,
                cid: a.cid ?? a.contentId?.replace(/^<|>$/g, ""),
                inline: a.contentDisposition === "inline" || a.related === true,
              })),
            });
            notify();
            callback(null, `2.0.0 Ok: queued as ${queueId}`);
          })
          .catch((err: Error) => callback(smtpError(554, `5.6.0 Message could not be parsed: ${err.message}`)));
      };
    },
  });

  const listenHost = options.listenHost ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, listenHost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // A failing connection must not crash the test run; tests look at what the client saw.
  server.on("error", () => {});
  const address = server.server.address();
  if (!address || typeof address === "string") throw new Error("SMTP peer did not get a port");

  const peer: SmtpPeer = {
    host: listenHost,
    port: address.port,
    security,
    ca: certificate.ca,
    received,
    authAttempts,
    commands,
    get connections() {
      return connections;
    },
    get sawData() {
      return commands.some((c) => /^DATA\b/i.test(c.trim()));
    },
    setFaults(next) {
      faults = { ...next };
    },
    setAuth(next) {
      auth = next;
      server.options.authMethods = authMethods(next);
    },
    disconnectAll() {
      for (const connection of server.connections) connection._socket.destroy();
    },
    waitForMessages(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`SMTP peer received ${received.length} of ${count} messages in ${timeoutMs} ms`)),
          timeoutMs,
        );
        const check = () => {
          if (received.length >= count) {
            clearTimeout(timer);
            resolve(received.slice());
          } else waiters.push(check);
        };
        check();
      });
    },
    clear() {
      connections = 0;
      received.length = 0;
      authAttempts.length = 0;
      commands.length = 0;
    },
    close() {
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return peer;
}
