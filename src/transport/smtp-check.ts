/**
 * Proves an SMTP server works without delivering anything: DNS, TCP, TLS, EHLO, AUTH, then
 * MAIL FROM + RCPT TO and RSET. No DATA is ever sent. Each step is timed and explained, the
 * exchange is kept as a transcript with every secret removed, and the first failure stops
 * the check with a catalogue code and its hint.
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import tls from "node:tls";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import XOAuth2, { type XOAuth2ProvisionCallback } from "nodemailer/lib/xoauth2";
import { errorEntry } from "../kernel/errors.js";
import type { OperatorPolicy } from "../kernel/operator-policy.js";
import { type CheckProbe, type CheckResult, DeliveryError, type TestStep } from "../kernel/transport.js";
import { assertAddressesAllowed } from "./operator.js";
import { type SmtpErrorContext, type SmtpSecurity, toSmtpDeliveryError } from "./smtp-errors.js";
import { SmtpTranscript } from "./transcript.js";

/** Where and how to connect, read from a server's settings. */
export interface SmtpEndpoint {
  host: string;
  port: number;
  security: SmtpSecurity;
  verifyCertificate: boolean;
  timeoutMs: number;
  /** PEM certificates trusted besides the system store (see SmtpTransportOptions.trustedCa). */
  trustedCa?: string;
}

export type SmtpLogin =
  | { kind: "password"; user: string; pass: string }
  | { kind: "oauth2"; user: string; provision: XOAuth2ProvisionCallback };

export interface SmtpCheckInput {
  endpoint: SmtpEndpoint;
  operator: OperatorPolicy;
  login?: SmtpLogin;
  probe: CheckProbe;
  errorContext: SmtpErrorContext;
}

/** The envelope probe runs as a custom SASL handler: nodemailer's only public way to send a raw command. */
const PROBE_METHOD = "X-MAILROOM-ENVELOPE-PROBE";

/** A failed step: carries the raw failure to map, and which step it belongs to. */
class StepFailure extends Error {
  constructor(
    readonly step: string,
    readonly failure: unknown,
    readonly ms = 0,
  ) {
    super(step);
  }
}

function elapsed(start: number): number {
  return Math.round(performance.now() - start);
}

async function resolveHost(host: string, timeoutMs: number): Promise<string[]> {
  if (net.isIP(host)) return [host];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error(`DNS lookup of ${host} timed out`), { code: "EAI_AGAIN" })),
      timeoutMs,
    );
  });
  try {
    const found = await Promise.race([lookup(host, { all: true }), timeout]);
    return found.map((a) => a.address);
  } finally {
    clearTimeout(timer);
  }
}

function connectTcp(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("Connection timeout"), { code: "ETIMEDOUT", timeoutType: "CONNECT_TIMEOUT" }));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/**
 * Resolves the host, refuses link-local and metadata addresses the operator has not allowed,
 * and connects to one of the addresses checked: the address checked is the one connected to.
 */
export async function connectAllowed(
  endpoint: Pick<SmtpEndpoint, "host" | "port" | "timeoutMs">,
  operator: OperatorPolicy,
): Promise<{ socket: net.Socket; address: string; addresses: string[] }> {
  const addresses = await resolveHost(endpoint.host, endpoint.timeoutMs);
  assertAddressesAllowed(operator, { host: endpoint.host, port: endpoint.port }, addresses);
  return { ...(await connectAny(addresses, endpoint.port, endpoint.timeoutMs)), addresses };
}

/** What a peer that does not greet with 220 is reported as: its bytes are never shown. */
export function notSmtpServer(endpoint: Pick<SmtpEndpoint, "host" | "port" | "security">): DeliveryError {
  const tls = endpoint.security === "tls" ? "" : " (a port that expects TLS from the first byte needs Security set to TLS)";
  return new DeliveryError(
    "not_smtp_server",
    "server",
    `${endpoint.host}:${endpoint.port} did not greet with an SMTP 220 line: it is not an SMTP server${tls}.`,
  );
}

/** nodemailer's error for a first line other than 220 (it carries the peer's bytes). */
export function isInvalidGreeting(err: unknown): boolean {
  const e = err as { code?: string; command?: string; message?: string } | undefined;
  return e?.code === "EPROTOCOL" && e.command === "CONN" && /^Invalid greeting/.test(e.message ?? "");
}

/** Tries each address in turn; the last error wins. */
async function connectAny(
  addresses: string[],
  port: number,
  timeoutMs: number,
): Promise<{ socket: net.Socket; address: string }> {
  let lastError: unknown;
  for (const address of addresses) {
    try {
      return { socket: await connectTcp(address, port, timeoutMs), address };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

function tlsConnectOptions(endpoint: SmtpEndpoint): tls.ConnectionOptions {
  return {
    servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
    rejectUnauthorized: endpoint.verifyCertificate,
    minVersion: "TLSv1.2",
    ...(endpoint.trustedCa ? { ca: [...tls.rootCertificates, endpoint.trustedCa] } : {}),
  };
}

function startImplicitTls(socket: net.Socket, endpoint: SmtpEndpoint): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ ...tlsConnectOptions(endpoint), socket });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(Object.assign(new Error("TLS handshake timed out"), { code: "ETIMEDOUT", timeoutType: "UPGRADE_TIMEOUT" }));
    }, endpoint.timeoutMs);
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      secure.removeAllListeners("error");
      resolve(secure);
    });
    secure.once("error", (err) => {
      clearTimeout(timer);
      secure.destroy();
      reject(err);
    });
  });
}

/**
 * Whether the port answers a TLS handshake: tells a port that waits for TLS from the first
 * byte from one that is merely slow. The certificate is not judged here, only the protocol.
 */
async function speaksTls(address: string, endpoint: SmtpEndpoint): Promise<boolean> {
  let socket: net.Socket | undefined;
  try {
    socket = await connectTcp(address, endpoint.port, endpoint.timeoutMs);
    const secure = await startImplicitTls(socket, { ...endpoint, verifyCertificate: false });
    secure.destroy();
    return true;
  } catch {
    return false;
  } finally {
    socket?.destroy();
  }
}

/** What the admin wants to know about the TLS session and the certificate. */
function describeTls(socket: tls.TLSSocket, endpoint: SmtpEndpoint): string {
  const cert = socket.getPeerCertificate();
  const subject = cert?.subject?.CN ?? "(no name)";
  const names = cert?.subjectaltname ? ` (${cert.subjectaltname})` : "";
  const issuer = cert?.issuer?.CN ?? cert?.issuer?.O ?? "unknown issuer";
  const until = cert?.valid_to ? `, valid until ${new Date(cert.valid_to).toISOString().slice(0, 10)}` : "";
  const trust = socket.authorized
    ? "verified"
    : `NOT verified (${String(socket.authorizationError ?? "unknown reason")}); accepted because 'Verify certificate' is off`;
  const verifiedName = endpoint.verifyCertificate && socket.authorized ? ` for ${endpoint.host}` : "";
  return `${socket.getProtocol() ?? "TLS"}; certificate ${subject}${names} issued by ${issuer}${until}; ${trust}${verifiedName}`;
}

type ProbeReply = { command: string; status: number; response: string; ms: number };

/** Runs `operation`, failing if the connection errors or ends first, or after the timeout. */
function guarded<T>(
  connection: SMTPConnection,
  timeoutMs: number,
  operation: (done: (err: unknown, value?: T) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (err: unknown, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      connection.off("error", onError);
      connection.off("end", onEnd);
      if (err) reject(err);
      else resolve(value as T);
    };
    const onError = (err: unknown) => finish(err);
    const onEnd = () => finish(Object.assign(new Error("Connection closed unexpectedly"), { code: "ECONNECTION" }));
    const timer = setTimeout(
      () => finish(Object.assign(new Error("The server did not answer"), { code: "ETIMEDOUT", timeoutType: "SOCKET_TIMEOUT" })),
      timeoutMs,
    );
    connection.on("error", onError);
    connection.once("end", onEnd);
    operation(finish);
  });
}

/** Addresses go into SMTP commands verbatim: nothing that could end or bend the command. */
function safeAddress(address: string): boolean {
  return /^[^\s<>\x00-\x1f\x7f]+@[^\s<>\x00-\x1f\x7f]+$/.test(address);
}

export async function runSmtpCheck(input: SmtpCheckInput): Promise<CheckResult> {
  const { endpoint, login, probe, errorContext, operator } = input;
  const transcript = new SmtpTranscript(errorContext.redactor);
  const steps: TestStep[] = [];
  const record = (s: TestStep) => {
    steps.push(s);
    probe.onStep?.(s);
  };
  const timeoutMs = endpoint.timeoutMs;
  let connection: SMTPConnection | undefined;
  let socket: net.Socket | undefined;

  const step = async <T>(name: string, run: () => Promise<{ value: T; detail: string }>): Promise<T> => {
    const start = performance.now();
    try {
      const { value, detail } = await run();
      record({ step: name, ok: true, ms: elapsed(start), detail: errorContext.redactor.redact(detail) });
      return value;
    } catch (err) {
      throw err instanceof StepFailure ? err : new StepFailure(name, err, elapsed(start));
    }
  };

  try {
    const addresses = await step("dns", async () => {
      const found = await resolveHost(endpoint.host, timeoutMs);
      assertAddressesAllowed(operator, { host: endpoint.host, port: endpoint.port }, found);
      const detail = net.isIP(endpoint.host)
        ? `${endpoint.host} is an IP address; no lookup needed`
        : `${endpoint.host} resolves to ${found.join(", ")}`;
      return { value: found, detail };
    });

    const tcp = await step("connect", async () => {
      const connected = await connectAny(addresses, endpoint.port, timeoutMs);
      transcript.note(`Connected to ${connected.address}:${endpoint.port}`);
      return { value: connected, detail: `Connected to ${connected.address}:${endpoint.port}` };
    });
    socket = tcp.socket;

    if (endpoint.security === "tls") {
      socket = await step("tls", async () => {
        const secure = await startImplicitTls(tcp.socket, endpoint);
        const detail = `TLS from the first byte: ${describeTls(secure, endpoint)}`;
        transcript.note(detail);
        return { value: secure as net.Socket, detail };
      });
    }

    const conn = new SMTPConnection({
      host: endpoint.host,
      port: endpoint.port,
      servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
      connection: socket,
      secure: endpoint.security === "tls",
      secured: endpoint.security === "tls",
      requireTLS: endpoint.security === "starttls",
      ignoreTLS: endpoint.security === "none",
      tls: tlsConnectOptions(endpoint),
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs + 1000,
      connectionTimeout: timeoutMs,
      logger: transcript.logger(),
      transactionLog: true,
    });
    connection = conn;
    conn.on("error", () => {}); // every error is handled by the step that is waiting

    // Greeting, EHLO and (STARTTLS mode) the upgrade and the second EHLO.
    const handshakeStart = performance.now();
    try {
      await guarded<void>(conn, timeoutMs * 3, (done) => conn.connect((err) => done(err)));
    } catch (err) {
      if (transcript.notSmtp || isInvalidGreeting(err)) {
        throw new StepFailure("ehlo", notSmtpServer(endpoint), elapsed(handshakeStart));
      }
      if (endpoint.security !== "tls" && (err as { timeoutType?: string })?.timeoutType === "GREETING_TIMEOUT") {
        if (await speaksTls(tcp.address, endpoint)) {
          const where = `${endpoint.host}:${endpoint.port}`;
          const found = new DeliveryError(
            "port_expects_tls",
            "server",
            `${where} sent no SMTP greeting, but a second connection's TLS handshake succeeded: it speaks TLS from the first byte.`,
          );
          throw new StepFailure("ehlo", found, elapsed(handshakeStart));
        }
      }
      const inTls = endpoint.security === "starttls" && transcript.sentStartTls;
      throw new StepFailure(inTls ? "tls" : "ehlo", err, elapsed(handshakeStart));
    }
    const handshakeMs = elapsed(handshakeStart);
    if (endpoint.security === "starttls") {
      const tlsSocket = conn._socket instanceof tls.TLSSocket ? conn._socket : undefined;
      const detail = tlsSocket ? `STARTTLS: ${describeTls(tlsSocket, endpoint)}` : "STARTTLS";
      transcript.note(detail);
      record({ step: "tls", ok: true, ms: transcript.startTlsMs ?? 0, detail: errorContext.redactor.redact(detail) });
    } else if (endpoint.security === "none") {
      record({
        step: "tls",
        ok: true,
        warning: true,
        ms: 0,
        detail: "Security is None: the login and the mail travel unencrypted; use it only on a network you trust",
      });
    }
    const capabilities = transcript.ehloCapabilities;
    record({
      step: "ehlo",
      ok: true,
      ms: Math.max(0, handshakeMs - (transcript.startTlsMs ?? 0)),
      detail: `${transcript.greeting ?? "Greeting received"}; the server offers: ${capabilities.join(", ") || "no extensions"}`,
    });

    await step("auth", async () => {
      if (!login) return { value: undefined, detail: "No username set: sending without login" };
      if (!conn.allowsAuth) {
        // As nodemailer does when sending: no AUTH offered, no login tried. The envelope
        // probe then shows whether the server relays without one.
        if (!capabilities.some((c) => /^STARTTLS\b/i.test(c))) {
          return { value: undefined, detail: `The server offers no login (AUTH); ${login.user} is not used` };
        }
        throw new DeliveryError(
          "smtp_auth_unsupported",
          "server",
          `${endpoint.host}:${endpoint.port} offers no login before STARTTLS: set Security to STARTTLS so that ${login.user} can log in.`,
        );
      }
      const auth =
        login.kind === "password"
          ? { user: login.user, pass: login.pass }
          : {
              user: login.user,
              method: "XOAUTH2",
              oauth2: new XOAuth2({ user: login.user, provisionCallback: login.provision }),
            };
      await guarded<void>(conn, timeoutMs, (done) => conn.login(auth, (err) => done(err)));
      return { value: undefined, detail: `Logged in as ${login.user} with ${transcript.authMethod ?? "AUTH"}` };
    });

    const replies = await runEnvelopeProbe(conn, transcript, probe, timeoutMs);
    const commands: [string, string, string][] = [
      ["mail_from", "MAIL FROM", `The server accepts ${probe.from} as the sender`],
      ["rcpt_to", "RCPT TO", `The server accepts ${probe.to} as a recipient`],
    ];
    for (const [name, command, detail] of commands) {
      const reply = replies.find((r) => r.command === command);
      if (!reply) break;
      if (reply.status >= 400 || reply.status < 200) {
        throw new StepFailure(name, {
          message: `${command} failed`,
          code: "EENVELOPE",
          command,
          response: reply.response,
          responseCode: reply.status,
        });
      }
      record({ step: name, ok: true, ms: reply.ms, detail: `${detail}: ${reply.response}` });
    }
    const reset = replies.find((r) => r.command === "RSET");
    await step("reset", async () => {
      await quit(conn, timeoutMs);
      return { value: undefined, detail: `RSET${reset ? ` (${reset.response})` : ""} and QUIT: nothing was sent` };
    });
    return { steps, transcript: transcript.lines() };
  } catch (err) {
    const failure = err instanceof StepFailure ? err : new StepFailure("check", err);
    const mapped = toSmtpDeliveryError(failure.failure, errorContext);
    const remote = mapped.remote.response ? ` The server said: ${mapped.remote.response}` : "";
    record({ step: failure.step, ok: false, ms: failure.ms, detail: `${mapped.message}${remote}` });
    return { steps, transcript: transcript.lines(), error: errorOf(mapped) };
  } finally {
    connection?.close();
    socket?.destroy();
  }
}

function errorOf(e: DeliveryError): NonNullable<CheckResult["error"]> {
  const hasRemote = e.remote.code !== undefined || e.remote.response !== undefined;
  return {
    code: e.code,
    message: e.message,
    hint: errorEntry(e.code).summary,
    ...(hasRemote ? { remote: e.remote } : {}),
  };
}

/** MAIL FROM, RCPT TO, RSET; stops after a refusal (then RSET) or a 421. */
async function runEnvelopeProbe(
  conn: SMTPConnection,
  transcript: SmtpTranscript,
  probe: { from: string; to: string },
  timeoutMs: number,
): Promise<ProbeReply[]> {
  for (const [field, address] of [
    ["from", probe.from],
    ["to", probe.to],
  ]) {
    if (!safeAddress(address)) {
      throw new StepFailure(field === "from" ? "mail_from" : "rcpt_to", {
        message: `${address} is not an address the check can use`,
        code: "EENVELOPE",
      });
    }
  }
  const replies: ProbeReply[] = [];
  // login() with the probe "method" runs our handler, which gets a raw command channel.
  conn.customAuth.set(PROBE_METHOD, async ({ sendCommand }) => {
    const send = async (command: string, line: string) => {
      const start = performance.now();
      transcript.expectMasked(line);
      const reply = await sendCommand(line);
      replies.push({ command, status: reply.status, response: reply.response.trim(), ms: elapsed(start) });
      return reply.status;
    };
    const mail = await send("MAIL FROM", `MAIL FROM:<${probe.from}>`);
    if (mail === 421) return;
    if (mail < 400) {
      const rcpt = await send("RCPT TO", `RCPT TO:<${probe.to}>`);
      if (rcpt === 421) return;
    }
    await send("RSET", "RSET");
  });
  try {
    await guarded<void>(conn, timeoutMs * 3, (done) => conn.login({ method: PROBE_METHOD, user: "probe" }, (err) => done(err)));
  } catch (err) {
    const last = replies.at(-1);
    const step = last?.command === "MAIL FROM" || !last ? "mail_from" : "rcpt_to";
    throw new StepFailure(step, err);
  }
  return replies;
}

function quit(conn: SMTPConnection, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.min(timeoutMs, 2000));
    conn.once("end", () => {
      clearTimeout(timer);
      resolve();
    });
    conn.quit();
  });
}
