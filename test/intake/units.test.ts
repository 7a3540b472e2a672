/** The SMTP settings, the failed-login window and what is done to a submitted message's headers. */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { AuthFailureLimiter, ConnectionCounter } from "../../src/intake/smtp/limits.js";
import { prepareSubmission } from "../../src/intake/smtp/message.js";
import { tempDir } from "../helpers/databases.js";

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(env)}`);
}

describe("SMTP configuration", () => {
  it("defaults: 2525 with STARTTLS, no implicit TLS, 25 MB, AUTH only over TLS or from loopback", () => {
    expect(loadConfig({}).smtp).toEqual({
      port: 2525,
      tlsPort: null,
      certFile: undefined,
      keyFile: undefined,
      maxSize: 25 * 1024 * 1024,
      maxRecipients: 100,
      maxConnectionsPerIp: 20,
      idleTimeoutMs: 300_000,
      maxAuthFailures: 10,
      insecureAuth: false,
    });
  });

  it("reads every variable; off turns a listener off; sizes take KB and MB", () => {
    const dir = tempDir();
    const cert = path.join(dir, "cert.pem");
    const key = path.join(dir, "key.pem");
    fs.writeFileSync(cert, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
    fs.writeFileSync(key, "-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n");
    expect(
      loadConfig({
        MAILROOM_SMTP_PORT: "off",
        MAILROOM_SMTPS_PORT: "465",
        MAILROOM_SMTP_TLS_CERT: cert,
        MAILROOM_SMTP_TLS_KEY: key,
        MAILROOM_SMTP_MAX_SIZE: "10MB",
        MAILROOM_SMTP_MAX_RECIPIENTS: "50",
        MAILROOM_SMTP_MAX_CONNECTIONS_PER_IP: "5",
        MAILROOM_SMTP_IDLE_TIMEOUT_SECONDS: "60",
        MAILROOM_SMTP_AUTH_FAILURES: "3",
        MAILROOM_SMTP_INSECURE_AUTH: "on",
      }).smtp,
    ).toEqual({
      port: null,
      tlsPort: 465,
      certFile: cert,
      keyFile: key,
      maxSize: 10 * 1024 * 1024,
      maxRecipients: 50,
      maxConnectionsPerIp: 5,
      idleTimeoutMs: 60_000,
      maxAuthFailures: 3,
      insecureAuth: true,
    });
    expect(loadConfig({ MAILROOM_SMTP_MAX_SIZE: "2048" }).smtp.maxSize).toBe(2048);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    [{ MAILROOM_SMTP_PORT: "smtp" }, "MAILROOM_SMTP_PORT=smtp is not a port: use a whole number from 0 to 65535, or off."],
    [{ MAILROOM_SMTPS_PORT: "70000" }, "MAILROOM_SMTPS_PORT=70000 is not a port"],
    [{ MAILROOM_SMTP_MAX_SIZE: "25GB" }, "MAILROOM_SMTP_MAX_SIZE=25GB is not a size: use bytes or e.g. 25MB"],
    [{ MAILROOM_SMTP_MAX_SIZE: "12" }, "MAILROOM_SMTP_MAX_SIZE=12 is not a size"],
    [{ MAILROOM_SMTP_INSECURE_AUTH: "yes" }, "MAILROOM_SMTP_INSECURE_AUTH=yes is not valid: use on or off."],
    [{ MAILROOM_SMTP_MAX_RECIPIENTS: "0" }, "MAILROOM_SMTP_MAX_RECIPIENTS=0 is not valid"],
    [{ MAILROOM_SMTP_TLS_CERT: "/nonexistent/cert.pem" }, "MAILROOM_SMTP_TLS_CERT=/nonexistent/cert.pem cannot be read"],
  ])("refuses %o with one line naming it", (env, message) => {
    expect(configError(env)).toContain(message);
  });

  it("wants the certificate and the key together", () => {
    const dir = tempDir();
    const cert = path.join(dir, "cert.pem");
    fs.writeFileSync(cert, "-----BEGIN CERTIFICATE-----\n");
    expect(configError({ MAILROOM_SMTP_TLS_CERT: cert })).toContain(
      "MAILROOM_SMTP_TLS_CERT and MAILROOM_SMTP_TLS_KEY go together",
    );
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("AuthFailureLimiter", () => {
  it("refuses an address after max failures in the window, and only that address", () => {
    let now = 1_000_000;
    const limiter = new AuthFailureLimiter(2, 60_000, () => now);
    limiter.recordFailure("10.0.0.1");
    expect(limiter.retryAfterMs("10.0.0.1")).toBe(0);
    now += 10_000;
    limiter.recordFailure("10.0.0.1");
    expect(limiter.retryAfterMs("10.0.0.1")).toBe(50_000);
    expect(limiter.retryAfterMs("10.0.0.2")).toBe(0);
    now += 50_001;
    expect(limiter.retryAfterMs("10.0.0.1")).toBe(0);
  });
});

describe("ConnectionCounter", () => {
  it("counts sessions per address up to the limit", () => {
    const counter = new ConnectionCounter(1);
    expect(counter.tryOpen("a")).toBe(true);
    expect(counter.tryOpen("a")).toBe(false);
    expect(counter.tryOpen("b")).toBe(true);
    counter.close("a");
    expect(counter.tryOpen("a")).toBe(true);
  });
});

describe("prepareSubmission", () => {
  const now = Date.UTC(2025, 11, 2, 10, 0, 0);

  it("sorts the envelope's recipients by header and keeps header-only addresses out", async () => {
    const data = Buffer.from(
      'From: "A, B" <a@example.com>\r\nTo: Team <to@example.com>, list@example.com\r\nCc: cc@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.com>\r\nDate: x\r\n\r\nbody\r\n',
    );
    const s = prepareSubmission(data, ["TO@example.com", "cc@example.com", "hidden@example.com"], now);
    expect(s).toMatchObject({
      from: { address: "a@example.com", name: "A, B" },
      to: [{ address: "TO@example.com", name: "Team" }],
      cc: [{ address: "cc@example.com" }],
      bcc: [{ address: "hidden@example.com" }],
      subject: "Grüße",
      messageId: "m1@example.com",
      clientMessageId: true,
    });
    expect(s.mime).toBe(data);
  });

  it("removes every Bcc field with its continuation lines, keeps LF line endings", async () => {
    const data = Buffer.from(
      "From: a@example.com\nBcc: x@example.com,\n y@example.com\nSubject: s\nbcc: z@example.com\n\nBcc: in the body stays\n",
    );
    const s = prepareSubmission(data, ["x@example.com"], now);
    const text = s.mime.toString();
    expect(text).toMatch(
      /^Message-ID: <[^>]+@example\.com>\nDate: Tue, 02 Dec 2025 10:00:00 \+0000\nFrom: a@example\.com\nSubject: s\n\nBcc: in the body stays\n$/,
    );
    expect(s.clientMessageId).toBe(false);
  });

  it("decodes encoded words and raw UTF-8 for the log; a comma inside an encoded name stays in the name", () => {
    const data = Buffer.from(
      "From: =?iso-8859-1?q?M=FCller=2C_Hans?= <h@example.com>\r\nTo: Zoë <zoë@example.org>\r\nSubject: =?utf-8?B?R3LDvMOfZQ==?=\r\n =?utf-8?q?_aus_K=C3=B6ln?=\r\n\r\nx\r\n",
    );
    const s = prepareSubmission(data, ["zoë@example.org"], now);
    expect(s.from).toEqual({ address: "h@example.com", name: "Müller, Hans" });
    expect(s.to).toEqual([{ address: "zoë@example.org", name: "Zoë" }]);
    expect(s.subject).toBe("Grüße aus Köln");
  });

  it("keeps bytes that are not UTF-8 as they were", async () => {
    const latin1 = Buffer.concat([
      Buffer.from("From: a@example.com\r\nMessage-ID: <l@x>\r\nDate: d\r\nBcc: b@example.com\r\nSubject: "),
      Buffer.from([0xe9, 0xe8]),
      Buffer.from("\r\n\r\n"),
      Buffer.from([0xff, 0x00, 0xfe]),
    ]);
    const s = prepareSubmission(latin1, ["b@example.com"], now);
    const expected = Buffer.concat([
      Buffer.from("From: a@example.com\r\nMessage-ID: <l@x>\r\nDate: d\r\nSubject: "),
      Buffer.from([0xe9, 0xe8]),
      Buffer.from("\r\n\r\n"),
      Buffer.from([0xff, 0x00, 0xfe]),
    ]);
    expect(s.mime.equals(expected)).toBe(true);
  });
});
