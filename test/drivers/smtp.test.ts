import { randomUUID } from "node:crypto";
import net from "node:net";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GMAIL_LOGIN_REJECTED } from "../../src/drivers/gmail/index.js";
import { smtpDriver } from "../../src/drivers/smtp/index.js";
import { errorCatalogue, errorEntry } from "../../src/kernel/errors.js";
import type { Settings } from "../../src/kernel/settings.js";
import { DeliveryError, type OutgoingMessage, type Transport, type TransportContext } from "../../src/kernel/transport.js";
import { createSmtpTransport, type SmtpTransportOptions } from "../../src/transport/smtp.js";
import { toSmtpDeliveryError } from "../../src/transport/smtp-errors.js";
import { Redactor } from "../../src/transport/transcript.js";
import { type CertificateFiles, generateCertificate, type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const USER = "app@example.com";
const PASSWORD = "s3cret-Pässword!";
// A 1x1 PNG, for the inline image.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);
const PDF = Buffer.from("%PDF-1.4\n% Mailroom test attachment ✓\n%%EOF\n");

function context(settings: Settings, secrets: Record<string, string> = {}): TransportContext {
  return {
    serverId: "srv_smtp_test",
    serverName: "SMTP test",
    fromAddress: "sender@example.com",
    settings: { security: "starttls", verifyCertificate: true, timeoutSeconds: 5, ...settings },
    secrets,
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 2,
  };
}

function message(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  return {
    id: "msg_test",
    messageId: `${randomUUID()}@mailroom.test`,
    from: { address: "sender@example.com", name: "Mailroom Sender" },
    to: [{ address: "rcpt@example.net", name: "Zoë Empfänger" }],
    cc: [{ address: "copy@example.net" }],
    bcc: [],
    replyTo: [],
    subject: "Grüße aus Köln – 你好 ✓",
    text: "Hällo wörld – plain text ✓\n",
    html: '<p>Hällo <b>wörld</b> ✓</p><img src="cid:logo@mailroom.test">',
    attachments: [
      { filename: "report.pdf", contentType: "application/pdf", content: PDF },
      { filename: "logo.png", contentType: "image/png", content: PNG, contentId: "logo@mailroom.test" },
    ],
    headers: { "X-Mailroom-Test": "yes" },
    ...overrides,
  };
}

async function sendError(transport: Transport, msg = message()): Promise<DeliveryError> {
  const error = await transport.send(msg).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(DeliveryError);
  return error as DeliveryError;
}

/** A port that refuses connections: bound by us, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const transports: Transport[] = [];
function open(ctx: TransportContext, options?: SmtpTransportOptions): Transport {
  const transport = createSmtpTransport(ctx, options);
  transports.push(transport);
  return transport;
}

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
});

describe("SMTP over STARTTLS with a login", () => {
  let peer: SmtpPeer;
  const settings = () => ({ host: "localhost", port: peer.port, security: "starttls", username: USER });

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "starttls", auth: { user: USER, password: PASSWORD } });
  });
  afterAll(() => peer.close());
  afterEach(() => {
    peer.setFaults({});
    peer.clear();
  });

  it("delivers UTF-8 subject, text, html, an attachment and an inline image intact", async () => {
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const sent = message();
    const result = await transport.send(sent);

    const [got] = await peer.waitForMessages(1);
    expect(got.secure).toBe(true);
    expect(got.user).toBe(USER);
    expect(got.envelope).toEqual({ from: "sender@example.com", to: ["rcpt@example.net", "copy@example.net"] });
    expect(got.messageId).toBe(`<${sent.messageId}>`);
    expect(got.from).toBe("sender@example.com");
    expect(got.fromName).toBe("Mailroom Sender");
    expect(got.to).toEqual(["rcpt@example.net"]);
    expect(got.cc).toEqual(["copy@example.net"]);
    expect(got.subject).toBe("Grüße aus Köln – 你好 ✓");
    expect(got.text).toBe("Hällo wörld – plain text ✓\n");
    expect(got.html).toBe('<p>Hällo <b>wörld</b> ✓</p><img src="cid:logo@mailroom.test">');
    expect(got.headers.get("x-mailroom-test")).toBe("yes");
    const pdf = got.attachments.find((a) => a.filename === "report.pdf");
    expect(pdf?.contentType).toBe("application/pdf");
    expect(pdf?.content.equals(PDF)).toBe(true);
    expect(pdf?.inline).toBe(false);
    const logo = got.attachments.find((a) => a.filename === "logo.png");
    expect(logo?.cid).toBe("logo@mailroom.test");
    expect(logo?.inline).toBe(true);
    expect(logo?.content.equals(PNG)).toBe(true);

    expect(result.providerMessageId).toBe(got.queueId);
    expect(result.response).toMatch(/^250 /);
  });

  it("reuses the pooled connection across messages", async () => {
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const before = peer.connections;
    await transport.send(message());
    await transport.send(message());
    await transport.send(message());
    expect(peer.received).toHaveLength(3);
    expect(peer.connections - before).toBe(1);
  });

  it("refuses a certificate that is not trusted, and sends when verification is off", async () => {
    const strict = open(context(settings(), { password: PASSWORD }));
    const error = await sendError(strict);
    expect(error.code).toBe("tls_certificate_invalid");
    expect(error.kind).toBe("server");
    expect(peer.received).toHaveLength(0);

    // Through the driver, as Mailroom builds it: 'Verify certificate' off.
    const lenient = smtpDriver.createTransport!(context({ ...settings(), verifyCertificate: false }, { password: PASSWORD }));
    transports.push(lenient);
    await lenient.send(message());
    expect(peer.received).toHaveLength(1);
    expect(peer.received[0].secure).toBe(true);
  });

  it("answers a wrong password with smtp_auth_failed and the 535 hint, for PLAIN and LOGIN", async () => {
    const transport = open(context(settings(), { password: "wrong-password" }), { trustedCa: peer.ca });
    const error = await sendError(transport);
    expect(error.code).toBe("smtp_auth_failed");
    expect(error.kind).toBe("server");
    expect(error.remote.code).toBe(535);
    expect(error.remote.command).toBe("AUTH PLAIN");
    expect(error.message).toContain(USER);
    expect(errorEntry(error.code).summary).toMatch(/535/);
    expect(JSON.stringify(error)).not.toContain("wrong-password");
    expect(peer.authAttempts.at(-1)).toMatchObject({ method: "PLAIN", user: USER, ok: false });

    const login = await startSmtpPeer({ auth: { user: USER, password: PASSWORD, methods: ["LOGIN"] } });
    try {
      const viaLogin = open(context({ ...settings(), port: login.port }, { password: "wrong-password" }), {
        trustedCa: login.ca,
      });
      const loginError = await sendError(viaLogin);
      expect(loginError.code).toBe("smtp_auth_failed");
      expect(loginError.remote).toMatchObject({ code: 535, command: "AUTH LOGIN" });
      expect(login.authAttempts).toEqual([expect.objectContaining({ method: "LOGIN", ok: false })]);
    } finally {
      await login.close();
    }
  });

  it("tells a server that requires a login from one that requires STARTTLS (530 on MAIL FROM)", async () => {
    const transport = open(context({ host: "localhost", port: peer.port }), { trustedCa: peer.ca });
    const error = await sendError(transport);
    expect(error).toMatchObject({ code: "smtp_auth_failed", kind: "server", remote: { code: 530, command: "MAIL FROM" } });
    expect(error.message).toContain("set a username and password");
    expect(peer.received).toHaveLength(0);
  });

  it("turns a 451 at the end of DATA into a transient failure, then delivers", async () => {
    peer.setFaults({ failMessages: { times: 1, code: 451 } });
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const error = await sendError(transport);
    expect(error.code).toBe("temporary_failure");
    expect(error.kind).toBe("transient");
    expect(error.remote.code).toBe(451);
    expect(error.remote.response).toMatch(/^451 /);
    expect(peer.received).toHaveLength(0);
    await transport.send(message());
    expect(peer.received).toHaveLength(1);
  });

  it("turns a 421 into a transient failure", async () => {
    peer.setFaults({ failMessages: { times: 1, code: 421 } });
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const error = await sendError(transport);
    expect(error.kind).toBe("transient");
    expect(error.remote.code).toBe(421);
    await transport.send(message());
    expect(peer.received).toHaveLength(1);
  });

  it("fails the message for the recipient on 550 at RCPT TO", async () => {
    peer.setFaults({ rejectRecipients: ["gone@example.net"] });
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const error = await sendError(transport, message({ to: [{ address: "gone@example.net" }], cc: [] }));
    expect(error.code).toBe("recipient_rejected");
    expect(error.kind).toBe("recipient");
    expect(error.remote).toMatchObject({ code: 550, command: "RCPT TO" });
    expect(error.remote.response).toContain("gone@example.net");
    expect(peer.received).toHaveLength(0);
  });

  it("holds for the server when the from address is refused", async () => {
    peer.setFaults({ rejectSenders: ["sender@example.com"] });
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const error = await sendError(transport);
    expect(error.code).toBe("sender_rejected");
    expect(error.kind).toBe("server");
    expect(error.remote).toMatchObject({ code: 553, command: "MAIL FROM" });
  });

  it("treats a connection dropped in the middle of DATA as transient, and the retry delivers once", async () => {
    peer.setFaults({ dropDuringData: { times: 1 } });
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const error = await sendError(transport);
    expect(error.kind).toBe("transient");
    expect(error.code).toBe("connection_dropped");
    expect(peer.sawData).toBe(true);
    expect(peer.received).toHaveLength(0);
    await transport.send(message());
    expect(peer.received).toHaveLength(1);
  });

  it("checks without delivering: every step, capabilities, and a transcript without secrets", async () => {
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const result = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });

    expect(result.error).toBeUndefined();
    expect(result.steps.map((s) => s.step)).toEqual(["dns", "connect", "tls", "ehlo", "auth", "mail_from", "rcpt_to", "reset"]);
    expect(result.steps.every((s) => s.ok)).toBe(true);
    const detail = Object.fromEntries(result.steps.map((s) => [s.step, s.detail]));
    expect(detail.dns).toContain("127.0.0.1");
    expect(detail.tls).toMatch(/STARTTLS: TLSv1\.[23]; certificate localhost .*verified for localhost/);
    expect(detail.ehlo).toMatch(/AUTH PLAIN LOGIN/);
    expect(detail.auth).toBe(`Logged in as ${USER} with PLAIN`);
    expect(detail.rcpt_to).toContain("rcpt@example.net");

    expect(peer.sawData).toBe(false);
    expect(peer.received).toHaveLength(0);
    expect(peer.commands.map((c) => c.split(" ")[0].toUpperCase())).toEqual([
      "EHLO",
      "STARTTLS",
      "EHLO",
      "AUTH",
      "MAIL",
      "RCPT",
      "RSET",
      "QUIT",
    ]);

    const transcript = result.transcript.join("\n");
    expect(transcript).toContain("C: STARTTLS");
    expect(transcript).toContain("C: AUTH PLAIN [redacted]");
    expect(transcript).toContain("C: MAIL FROM:<sender@example.com>");
    expect(transcript).toContain("C: RCPT TO:<rcpt@example.net>");
    expect(transcript).toContain("C: RSET");
    expect(transcript).toMatch(/S: 235 /);
    expectNoSecrets(transcript, [PASSWORD, USER]);
  });

  it("checks an AUTH LOGIN server and keeps the username and password out of the transcript", async () => {
    const login = await startSmtpPeer({ auth: { user: USER, password: PASSWORD, methods: ["LOGIN"] } });
    try {
      const transport = open(context({ ...settings(), port: login.port }, { password: PASSWORD }), { trustedCa: login.ca });
      const result = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(result.error).toBeUndefined();
      const transcript = result.transcript.join("\n");
      expect(transcript).toContain("C: AUTH LOGIN [redacted]");
      expect(transcript).toContain("S: 334 [redacted]");
      expectNoSecrets(transcript, [PASSWORD, USER]);
      expect(login.sawData).toBe(false);
    } finally {
      await login.close();
    }
  });

  it("stops the check at AUTH with the 535 hint and the server's response", async () => {
    const transport = open(context(settings(), { password: "wrong-password" }), { trustedCa: peer.ca });
    const result = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
    const last = result.steps.at(-1)!;
    expect(last).toMatchObject({ step: "auth", ok: false });
    expect(last.detail).toContain("535");
    expect(result.error).toMatchObject({
      code: "smtp_auth_failed",
      hint: errorCatalogue.smtp_auth_failed.summary,
      remote: { code: 535, command: "AUTH PLAIN" },
    });
    expectNoSecrets(result.transcript.join("\n") + JSON.stringify(result), ["wrong-password"]);
    expect(peer.sawData).toBe(false);
  });

  it("stops the check at RCPT TO when the recipient is refused, still without DATA", async () => {
    peer.setFaults({ rejectRecipients: ["gone@example.net"] });
    const transport = open(context(settings(), { password: PASSWORD }), { trustedCa: peer.ca });
    const result = await transport.check({ from: "sender@example.com", to: "gone@example.net" });
    expect(result.steps.at(-1)).toMatchObject({ step: "rcpt_to", ok: false });
    expect(result.error).toMatchObject({ code: "recipient_rejected", remote: { code: 550, command: "RCPT TO" } });
    expect(result.transcript.join("\n")).toContain("C: RSET");
    expect(peer.sawData).toBe(false);
  });
});

describe("certificates", () => {
  let peer: SmtpPeer;
  let otherName: CertificateFiles;

  beforeAll(async () => {
    otherName = await generateCertificate(["mail.example.test"]);
    peer = await startSmtpPeer({ security: "starttls", certificate: otherName });
  });
  afterAll(() => peer.close());

  it("refuses a trusted certificate issued for another name, with the hint and the names", async () => {
    const ctx = context({ host: "localhost", port: peer.port });
    const transport = open(ctx, { trustedCa: otherName.ca });
    const error = await sendError(transport);
    expect(error.code).toBe("tls_certificate_invalid");
    expect(error.kind).toBe("server");
    expect(error.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    expect(error.message).toContain("mail.example.test");
    expect(error.message).toContain("is issued for other names");
    expect(errorEntry(error.code).summary).toMatch(/host name the certificate is issued for/);

    const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
    expect(check.steps.map((s) => [s.step, s.ok])).toEqual([
      ["dns", true],
      ["connect", true],
      ["tls", false],
    ]);
    expect(check.error?.code).toBe("tls_certificate_invalid");
    expect(peer.sawData).toBe(false);
  });

  it("accepts it when verification is off, and says so in the check", async () => {
    const transport = open(context({ host: "localhost", port: peer.port, verifyCertificate: false }));
    const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
    expect(check.error).toBeUndefined();
    expect(check.steps.find((s) => s.step === "tls")?.detail).toMatch(/NOT verified .*'Verify certificate' is off/);
    await transport.send(message());
    expect(peer.received).toHaveLength(1);
  });
});

describe("implicit TLS and no TLS", () => {
  it("sends over TLS from the first byte, and checks it", async () => {
    const peer = await startSmtpPeer({ security: "tls", auth: { user: USER, password: PASSWORD } });
    try {
      const ctx = context({ host: "localhost", port: peer.port, security: "tls", username: USER }, { password: PASSWORD });
      const transport = open(ctx, { trustedCa: peer.ca });
      await transport.send(message());
      expect(peer.received[0].secure).toBe(true);
      const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.error).toBeUndefined();
      expect(check.steps.map((s) => s.step)).toEqual(["dns", "connect", "tls", "ehlo", "auth", "mail_from", "rcpt_to", "reset"]);
      expect(check.steps[2].detail).toMatch(/^TLS from the first byte: TLSv1\.[23]; .*verified for localhost/);
    } finally {
      await peer.close();
    }
  });

  it("sends without TLS when security is none", async () => {
    const peer = await startSmtpPeer({ security: "none" });
    try {
      const transport = open(context({ host: "127.0.0.1", port: peer.port, security: "none" }));
      await transport.send(message());
      expect(peer.received).toHaveLength(1);
      expect(peer.received[0].secure).toBe(false);
      expect(peer.commands).not.toContain("STARTTLS");
      const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.error).toBeUndefined();
      expect(check.steps.find((s) => s.step === "tls")).toMatchObject({ ok: true, warning: true, detail: /unencrypted/ });
      expect(check.steps.find((s) => s.step === "auth")?.detail).toMatch(/without login/);
    } finally {
      await peer.close();
    }
  });

  it("says to choose STARTTLS when TLS meets a plain SMTP port, in words rather than OpenSSL's", async () => {
    const peer = await startSmtpPeer({ security: "starttls" });
    try {
      const transport = open(context({ host: "localhost", port: peer.port, security: "tls" }), { trustedCa: peer.ca });
      const error = await sendError(transport);
      expect(error.code).toBe("port_expects_starttls");
      expect(error.kind).toBe("server");
      expect(error.message).toMatch(/answered the TLS handshake in plain text \(“wrong version number”\)/);
      expect(error.message).not.toMatch(/ssl3_get_record|openssl/);
      const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.steps.at(-1)).toMatchObject({ step: "tls", ok: false });
      expect(check.error?.code).toBe("port_expects_starttls");
      expect(check.error?.hint).toMatch(/set Security to STARTTLS/);
    } finally {
      await peer.close();
    }
  });

  it("answers 530 'must issue STARTTLS' with smtp_starttls_required", async () => {
    const peer = await startSmtpPeer({ security: "starttls", faults: { requireStartTls: true } });
    try {
      const transport = open(context({ host: "127.0.0.1", port: peer.port, security: "none" }));
      const error = await sendError(transport);
      expect(error.code).toBe("smtp_starttls_required");
      expect(error.kind).toBe("server");
      expect(error.remote).toMatchObject({ code: 530, command: "MAIL FROM" });
      const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.steps.at(-1)).toMatchObject({ step: "mail_from", ok: false });
      expect(check.error?.code).toBe("smtp_starttls_required");
      expect(check.error?.hint).toBe(errorCatalogue.smtp_starttls_required.summary);
      expect(peer.received).toHaveLength(0);
    } finally {
      await peer.close();
    }
  });

  it("answers a login over plain text to a server that wants STARTTLS first with smtp_starttls_required", async () => {
    const peer = await startSmtpPeer({ security: "starttls", auth: { user: USER, password: PASSWORD } });
    try {
      const ctx = context({ host: "127.0.0.1", port: peer.port, security: "none", username: USER }, { password: PASSWORD });
      const check = await open(ctx).check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.error).toMatchObject({ code: "smtp_starttls_required", remote: { code: 538, command: "AUTH PLAIN" } });
      expect(check.steps.at(-1)).toMatchObject({ step: "auth", ok: false });
      expect(JSON.stringify(check)).not.toContain(PASSWORD);
      const error = await sendError(open(ctx));
      expect(error).toMatchObject({ code: "smtp_starttls_required", kind: "server" });
    } finally {
      await peer.close();
    }
  });

  it("checks a server that offers no login: not used when it relays anyway, a failure when STARTTLS would unlock it", async () => {
    const relay = await startSmtpPeer({ security: "none" });
    const tlsFirst = await startSmtpPeer({ security: "starttls" });
    try {
      const ctx = (port: number) =>
        context({ host: "127.0.0.1", port, security: "none", username: USER }, { password: PASSWORD });
      const relayed = await open(ctx(relay.port)).check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(relayed.error).toBeUndefined();
      expect(relayed.steps.find((s) => s.step === "auth")?.detail).toMatch(/offers no login/);

      const locked = await open(ctx(tlsFirst.port)).check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(locked.steps.at(-1)).toMatchObject({ step: "auth", ok: false });
      expect(locked.error).toMatchObject({ code: "smtp_auth_unsupported" });
      expect(locked.error?.message).toMatch(/set Security to STARTTLS/);
      expect(JSON.stringify([relayed, locked])).not.toContain(PASSWORD);
    } finally {
      await relay.close();
      await tlsFirst.close();
    }
  });

  it("names the wrong port when STARTTLS is asked of a server that does not offer it", async () => {
    const peer = await startSmtpPeer({ security: "none" });
    try {
      const transport = open(context({ host: "127.0.0.1", port: peer.port, security: "starttls" }));
      const error = await sendError(transport);
      expect(error).toMatchObject({ code: "starttls_not_offered", kind: "server", remote: { command: "STARTTLS" } });
      expect(error.message).toContain("does not offer STARTTLS");
      const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.steps.at(-1)).toMatchObject({ step: "tls", ok: false });
      expect(check.error?.code).toBe("starttls_not_offered");
      expect(check.error?.hint).toMatch(/^Choose None or TLS/);
      expect(peer.received).toHaveLength(0);
    } finally {
      await peer.close();
    }
  });
});

describe("a port that speaks TLS from the first byte", () => {
  it("is named as such by a check, after a TLS handshake on a second connection", async () => {
    const peer = await startSmtpPeer({ security: "tls" });
    try {
      for (const security of ["starttls", "none"]) {
        const transport = open(context({ host: "127.0.0.1", port: peer.port, security, timeoutSeconds: 1 }));
        const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
        expect(check.steps.at(-1)).toMatchObject({ step: "ehlo", ok: false });
        expect(check.error).toMatchObject({ code: "port_expects_tls", hint: errorCatalogue.port_expects_tls.summary });
        expect(check.error?.message).toMatch(/speaks TLS from the first byte/);
      }
    } finally {
      await peer.close();
    }
  });
});

describe("network failures", () => {
  it("reports a closed port as connection_refused", async () => {
    const port = await closedPort();
    const transport = open(context({ host: "127.0.0.1", port, security: "none" }));
    const error = await sendError(transport);
    expect(error.code).toBe("connection_refused");
    expect(error.message).toContain(`127.0.0.1:${port}`);
    const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
    expect(check.steps.map((s) => [s.step, s.ok])).toEqual([
      ["dns", true],
      ["connect", false],
    ]);
    expect(check.error).toMatchObject({ code: "connection_refused", hint: errorCatalogue.connection_refused.summary });
  });

  it("reports a server that never greets as a timeout that mentions TLS", async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const transport = open(context({ host: "127.0.0.1", port, security: "starttls", timeoutSeconds: 1 }));
      const error = await sendError(transport);
      expect(error.code).toBe("connection_timeout");
      expect(error.kind).toBe("server");
      expect(error.message).toMatch(/no SMTP greeting.*TLS/);
      const check = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
      expect(check.steps.at(-1)).toMatchObject({ step: "ehlo", ok: false });
      expect(check.error?.code).toBe("connection_timeout");
    } finally {
      silent.close();
    }
  });
});

describe("error mapping for failures no local peer can produce", () => {
  const ctx = { host: "smtp.example.com", port: 587, security: "starttls" as const, oauth: false };
  const map = (err: object, extra: object = {}) => toSmtpDeliveryError(err, { ...ctx, redactor: new Redactor([]), ...extra });

  it.each([
    [{ code: "EDNS", originalCode: "ENOTFOUND", message: "getaddrinfo ENOTFOUND" }, "dns_not_found", "server"],
    [{ code: "EDNS", originalCode: "EAI_AGAIN", message: "getaddrinfo EAI_AGAIN" }, "dns_not_found", "server"],
    [
      { code: "ESOCKET", originalCode: "CERT_HAS_EXPIRED", message: "certificate has expired" },
      "tls_certificate_invalid",
      "server",
    ],
    [{ code: "ESOCKET", originalCode: "ECONNRESET", message: "read ECONNRESET" }, "connection_dropped", "transient"],
    [{ code: "ETIMEDOUT", timeoutType: "CONNECT_TIMEOUT", message: "Connection timeout" }, "connection_timeout", "server"],
    [
      { code: "EENVELOPE", responseCode: 552, command: "DATA", response: "552 5.3.4 Message too big" },
      "message_rejected",
      "message",
    ],
    [
      { code: "EAUTH", responseCode: 454, command: "AUTH PLAIN", response: "454 4.7.0 Try later" },
      "temporary_failure",
      "transient",
    ],
    // Postfix without a certificate: not a temporary error, STARTTLS is simply not there.
    [
      { code: "ETLS", responseCode: 454, command: "STARTTLS", response: "454 4.7.0 TLS not available due to local problem" },
      "starttls_not_offered",
      "server",
    ],
    [{ code: "ETIMEDOUT", timeoutType: "GREETING_TIMEOUT", message: "Greeting never received" }, "connection_timeout", "server"],
  ])("%o → %s (%s)", (err, code, kind) => {
    const mapped = map(err);
    expect(mapped.code).toBe(code);
    expect(mapped.kind).toBe(kind);
  });

  it("names a silent port 465 as one that speaks TLS from the first byte", () => {
    const mapped = map({ code: "ETIMEDOUT", timeoutType: "GREETING_TIMEOUT", message: "Greeting never received" }, { port: 465 });
    expect(mapped).toMatchObject({ code: "port_expects_tls", kind: "server" });
  });

  it("names why a certificate was refused in words", () => {
    const untrusted = map({ code: "ESOCKET", originalCode: "DEPTH_ZERO_SELF_SIGNED_CERT", message: "self-signed certificate" });
    expect(untrusted.message).toMatch(/not signed by an authority Mailroom trusts: it is self-signed or from a private CA/);
    expect(map({ code: "ESOCKET", originalCode: "CERT_HAS_EXPIRED", message: "certificate has expired" }).message).toMatch(
      /has expired \(CERT_HAS_EXPIRED\)/,
    );
  });

  it("gives Gmail's 535 its own hint", () => {
    const err = {
      code: "EAUTH",
      responseCode: 535,
      command: "AUTH XOAUTH2",
      response: "535 5.7.8 Username and Password not accepted",
    };
    expect(map(err, { loginRejected: GMAIL_LOGIN_REJECTED, oauth: true }).code).toBe("gmail_credentials_rejected");
  });

  it("keeps secrets out of messages and responses", () => {
    const mapped = toSmtpDeliveryError(
      { code: "EAUTH", responseCode: 535, command: "AUTH PLAIN", response: "535 bad password hunter2" },
      { ...ctx, redactor: new Redactor(["hunter2"]) },
    );
    expect(JSON.stringify(mapped) + mapped.message).not.toContain("hunter2");
  });
});

function expectNoSecrets(text: string, secrets: string[]): void {
  for (const secret of secrets) {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(Buffer.from(secret).toString("base64").replace(/=+$/, ""));
  }
}
