/**
 * SMTP submission: applications that only speak SMTP (printers, CI, ticketing, legacy apps)
 * log in with a Mailroom API token as the password and hand over a message, which enters
 * the same queue, log and permissions as POST /api/messages, its bytes kept as sent.
 *
 * One listener with STARTTLS (MAILROOM_SMTP_PORT) and one with implicit TLS
 * (MAILROOM_SMTPS_PORT), both on smtp-server. A 250 is sent only once the message is
 * committed; anything that keeps it from being stored answers 451 so the client retries.
 */
import type { Server } from "node:net";
import type { Logger } from "pino";
import {
  SMTPServer,
  type SMTPServerAuthentication,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from "smtp-server";
import { can, canUseServer, type Principal } from "../../auth/permissions.js";
import type { TokenService } from "../../auth/tokens.js";
import { type Config, ConfigError } from "../../config.js";
import type { EmailServerService } from "../../core/email-servers.js";
import type { MessageService } from "../../core/messages.js";
import type { Metrics } from "../../metrics.js";
import { AuthFailureLimiter, type Clock, ConnectionCounter } from "./limits.js";
import { prepareSubmission } from "./message.js";
import { replies, replyForError, STARTS_WITH_ENHANCED_CODE } from "./replies.js";
import { loadCertificate, type SmtpCertificate } from "./tls.js";

const AUTH_WINDOW_MS = 15 * 60 * 1000;

export interface SmtpIntakeDeps {
  config: Config;
  messages: MessageService;
  servers: EmailServerService;
  tokens: TokenService;
  metrics: Metrics;
  log: Logger;
  /** For the failed-login window (tests move it instead of waiting). */
  clock?: Clock;
  /** How long stop() lets open sessions finish before closing them (default 5 s). */
  closeTimeoutMs?: number;
  /** Whether a client address is this machine (tests stand in a remote client). */
  isLoopback?: (ip: string) => boolean;
}

/** Who logged in on a session. */
interface SessionUser {
  principal: Principal;
  /** The AUTH username: free text, recorded with each message. */
  username: string;
}

/** What a session decided at MAIL FROM, for its DATA. */
interface Transaction {
  serverId: string;
}

type Listener = "smtp" | "smtps";

function isLoopback(ip: string): boolean {
  return ip === "::1" || /^(::ffff:)?127\./.test(ip);
}

function userOf(session: SMTPServerSession): SessionUser | undefined {
  return (session.user as SessionUser | undefined) || undefined;
}

export class SmtpIntake {
  private readonly listeners = new Map<Listener, { server: SMTPServer; port: number }>();
  private readonly failures: AuthFailureLimiter;
  private readonly connections: ConnectionCounter;
  /** Sessions counted in `connections`, so a refused session is never counted out. */
  private readonly counted = new Set<string>();
  private readonly transactions = new WeakMap<SMTPServerSession, Transaction>();
  private cert?: SmtpCertificate;

  constructor(private readonly deps: SmtpIntakeDeps) {
    const limits = deps.config.smtp;
    this.failures = new AuthFailureLimiter(limits.maxAuthFailures, AUTH_WINDOW_MS, deps.clock);
    this.connections = new ConnectionCounter(limits.maxConnectionsPerIp);
  }

  /** The certificate in use (after start). */
  get certificate(): SmtpCertificate | undefined {
    return this.cert;
  }

  /** The port a listener is bound to (the OS's choice for port 0); undefined when off. */
  port(which: Listener): number | undefined {
    return this.listeners.get(which)?.port;
  }

  async start(): Promise<void> {
    const { smtp, host, publicUrl, dataDir } = this.deps.config;
    if (smtp.port === null && smtp.tlsPort === null) return;
    this.cert = await loadCertificate({
      certFile: smtp.certFile,
      keyFile: smtp.keyFile,
      dataDir,
      hostnames: [new URL(publicUrl).hostname, host],
    });
    try {
      if (smtp.port !== null) await this.listen("smtp", smtp.port);
      if (smtp.tlsPort !== null) await this.listen("smtps", smtp.tlsPort);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Reads the certificate files again (SIGHUP): new sessions use the new pair, open ones keep theirs. */
  async reloadCertificate(): Promise<SmtpCertificate> {
    const { smtp, dataDir } = this.deps.config;
    const cert = await loadCertificate({ certFile: smtp.certFile, keyFile: smtp.keyFile, dataDir, hostnames: [] });
    for (const { server } of this.listeners.values()) server.updateSecureContext({ key: cert.key, cert: cert.cert });
    this.cert = cert;
    return cert;
  }

  /** Stops listening; open sessions get `closeTimeoutMs` to finish (a DATA in progress is committed or refused). */
  async stop(): Promise<void> {
    const open = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(open.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  private async listen(which: Listener, port: number): Promise<void> {
    const server = new SMTPServer(this.options(which));
    server.on("error", (error) => this.deps.log.warn({ err: error, listener: which }, "SMTP connection error"));
    const net = await new Promise<Server>((resolve, reject) => {
      const s = server.server;
      const onError = (error: NodeJS.ErrnoException) => {
        const name = which === "smtp" ? "MAILROOM_SMTP_PORT" : "MAILROOM_SMTPS_PORT";
        if (error.code === "EADDRINUSE") {
          reject(new ConfigError(`${name}=${port} is in use by another program: set ${name} to a free port, or off.`));
        } else if (error.code === "EACCES") {
          reject(new ConfigError(`${name}=${port}: not allowed to listen there; use a port above 1023, or off.`));
        } else reject(error);
      };
      s.once("error", onError);
      s.listen(port, this.deps.config.host, () => {
        s.removeListener("error", onError);
        resolve(s);
      });
    });
    const address = net.address();
    this.listeners.set(which, { server, port: typeof address === "object" && address ? address.port : port });
  }

  private options(which: Listener): SMTPServerOptions {
    const { smtp, publicUrl } = this.deps.config;
    const cert = this.cert as SmtpCertificate;
    return {
      secure: which === "smtps",
      key: cert.key,
      cert: cert.cert,
      minVersion: "TLSv1.2",
      name: new URL(publicUrl).hostname,
      banner: "Mailroom SMTP submission",
      size: smtp.maxSize,
      rejectOversized: true,
      maxRecipients: smtp.maxRecipients,
      socketTimeout: smtp.idleTimeoutMs,
      closeTimeout: this.deps.closeTimeoutMs ?? 5000,
      authMethods: ["PLAIN", "LOGIN"],
      // Whether AUTH may be used before TLS is decided per session (onConnect).
      allowInsecureAuth: true,
      disableReverseLookup: true,
      hideENHANCEDSTATUSCODES: false,
      hideDSN: true,
      hideREQUIRETLS: true,
      logger: false,
      onConnect: (session, callback) => this.onConnect(which, session, callback),
      onSecure: (_socket, session, callback) => {
        session.disabledCommands = [];
        callback();
      },
      onAuth: (auth, session, callback) => {
        this.onAuth(auth, session).then(
          (user) => callback(null, { user }),
          (error: unknown) => callback(error as Error),
        );
      },
      onMailFrom: (_address, session, callback) => {
        this.onMailFrom(session).then(
          () => callback(),
          (error: unknown) => callback(replyForError(error)),
        );
      },
      onData: (stream, session, callback) => {
        this.onData(stream, session).then(
          (text) => callback(null, text),
          (error: unknown) => callback(error as Error),
        );
      },
      onClose: (session) => {
        if (this.counted.delete(session.id)) this.connections.close(session.remoteAddress);
      },
    };
  }

  private onConnect(which: Listener, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    this.keepEnhancedCodes(which, session);
    this.deps.metrics.smtpSessions.inc({ listener: which });
    if (!this.connections.tryOpen(session.remoteAddress)) {
      callback(replies.tooManyConnections(this.deps.config.smtp.maxConnectionsPerIp));
      return;
    }
    this.counted.add(session.id);
    // A password must not cross the network in the clear: AUTH appears after STARTTLS,
    // except for the same machine or when the operator says the network is private.
    const local = (this.deps.isLoopback ?? isLoopback)(session.remoteAddress);
    if (which === "smtp" && !local && !this.deps.config.smtp.insecureAuth) {
      session.disabledCommands = ["AUTH"];
    }
    callback();
  }

  /**
   * smtp-server derives the enhanced status code of an error reply from its numeric code
   * (550 → 5.1.1); a reply of Mailroom's carries its own (550 5.7.1), so it is sent as is.
   */
  private keepEnhancedCodes(which: Listener, session: SMTPServerSession): void {
    const listener = this.listeners.get(which);
    const connection = [...(listener?.server.connections ?? [])].find((c) => c.id === session.id);
    if (!connection) return;
    const send = connection.send.bind(connection);
    connection.send = (code, data, context) =>
      send(code, data, typeof data === "string" && STARTS_WITH_ENHANCED_CODE.test(data) ? false : context);
  }

  private async onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession): Promise<SessionUser> {
    const ip = session.remoteAddress;
    const metrics = this.deps.metrics.smtpAuthFailures;
    const wait = this.failures.retryAfterMs(ip);
    if (wait > 0) {
      metrics.inc({ reason: "rate_limited" });
      throw replies.tooManyFailures(Math.ceil(wait / 60_000));
    }
    let principal: Principal | null;
    try {
      principal = await this.deps.tokens.authenticate(auth.password ?? "");
    } catch (error) {
      this.deps.log.error({ err: error }, "SMTP AUTH could not check a token");
      throw replies.authUnavailable();
    }
    if (!principal) {
      this.failures.recordFailure(ip);
      metrics.inc({ reason: "invalid_token" });
      this.deps.log.info({ clientIp: ip, username: auth.username }, "SMTP AUTH refused: not a valid token");
      throw replies.badToken();
    }
    if (!can(principal, "messages.send")) {
      metrics.inc({ reason: "forbidden" });
      throw replies.cannotSend();
    }
    return { principal, username: auth.username ?? "" };
  }

  /**
   * Routing: the token's only server, else the default server. Decided at MAIL FROM so a
   * token that may not send anywhere hears so before it sends the message.
   */
  private async onMailFrom(session: SMTPServerSession): Promise<void> {
    const user = userOf(session);
    if (!user) throw replies.authRequired();
    const { principal } = user;
    if (principal.serverIds?.length === 1) {
      this.transactions.set(session, { serverId: principal.serverIds[0] });
      return;
    }
    const server = await this.deps.servers.getDefaultRow();
    if (!server) throw replies.storeFailed("there is no default email server; an administrator must choose one");
    if (!canUseServer(principal, server.id)) {
      throw replies.policy(
        `This token may not send through the default server '${server.name}'; limit the token to the one server it should use`,
      );
    }
    this.transactions.set(session, { serverId: server.id });
  }

  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const count = this.deps.metrics.smtpMessages;
    if (stream.sizeExceeded) {
      count.inc({ result: "too_big" });
      throw replies.tooBig(this.deps.config.smtp.maxSize);
    }
    const user = userOf(session);
    const transaction = this.transactions.get(session);
    if (!user || !transaction) throw replies.authRequired();
    try {
      const submission = prepareSubmission(
        Buffer.concat(chunks),
        session.envelope.rcptTo.map((r) => r.address),
      );
      if (!submission.from) throw replies.noFrom();
      const mailFrom = session.envelope.mailFrom;
      const result = await this.deps.messages.enqueueRaw(
        {
          server: transaction.serverId,
          mime: submission.mime,
          from: submission.from,
          to: submission.to,
          cc: submission.cc,
          bcc: submission.bcc,
          replyTo: submission.replyTo,
          subject: submission.subject,
          messageId: submission.messageId,
          idempotencyKey: submission.clientMessageId ? `smtp:${submission.messageId}` : undefined,
          source: {
            username: user.username,
            clientIp: session.remoteAddress,
            ehlo: session.hostNameAppearsAs,
            mailFrom: mailFrom ? mailFrom.address : "",
            tls: Boolean(session.secure),
          },
        },
        user.principal,
      );
      count.inc({ result: result.replayed ? "replayed" : "accepted" });
      return result.replayed
        ? `Already accepted as ${result.id} (the same Message-ID from this token within 24 hours)`
        : `Accepted: queued as ${result.id}`;
    } catch (error) {
      const reply = replyForError(error);
      count.inc({ result: reply.responseCode >= 500 ? "rejected" : "deferred" });
      if (reply.responseCode < 500)
        this.deps.log.error({ err: error, clientIp: session.remoteAddress }, "SMTP message not stored");
      throw reply;
    }
  }
}
