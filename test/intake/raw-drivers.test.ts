/**
 * A message received over SMTP goes out as its client sent it: the same bytes reach the SMTP
 * peer (smtp driver and, through msmtp, the sendmail driver), Mailgun's messages.mime, SES's
 * Content.Raw and the Capture folder, each with the Bcc recipient in the envelope only.
 * Postmark has no raw-MIME API: there the message arrives as its parsed fields.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { listCaptured, readCaptured } from "../../src/drivers/capture/store.js";
import { createCaptureTransport } from "../../src/drivers/capture/transport.js";
import { createMailgunTransport } from "../../src/drivers/mailgun/transport.js";
import { createPostmarkTransport } from "../../src/drivers/postmark/transport.js";
import { sendmailDriver } from "../../src/drivers/sendmail/index.js";
import { createSesTransport } from "../../src/drivers/ses/transport.js";
import type { OutgoingMessage, TransportContext } from "../../src/kernel/transport.js";
import { createSmtpTransport } from "../../src/transport/smtp.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { type SesPeer, startSesPeer } from "../peers/ses-peer.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { MSMTP, msmtpAvailable, SIGNED_INVITE } from "./harness.js";

function rawMessage(): OutgoingMessage {
  return {
    id: "raw-1",
    messageId: "invite-42@example.com",
    from: { address: "sender@example.com", name: "Zoë Planner" },
    to: [{ address: "rcpt@example.org" }],
    cc: [],
    bcc: [{ address: "hidden@example.org" }],
    replyTo: [],
    subject: "Einladung: Planung  (zwei Leerzeichen) ✓",
    attachments: [],
    headers: {},
    raw: SIGNED_INVITE,
  };
}

/** What the operator declares, as the environment would: msmtp as a sendmail command, the peers as endpoints. */
function operator(endpoints: string[]): TransportContext["operator"] {
  return loadConfig({
    MAILROOM_SENDMAIL_COMMANDS: JSON.stringify({ msmtp: [MSMTP, "-i", "-C", path.join(dir, "msmtprc")] }),
    MAILROOM_ALLOWED_ENDPOINTS: endpoints.join(","),
  }).operator;
}

function context(
  settings: Record<string, unknown>,
  secrets: Record<string, string> = {},
  dataDir = "/nonexistent",
  endpoints = [provider.url],
): TransportContext {
  return {
    operator: operator(endpoints),
    serverId: "srv-raw",
    serverName: "Raw",
    fromAddress: "sender@example.com",
    settings: settings as TransportContext["settings"],
    secrets,
    dataDir,
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

let dir: string;
let smtp: SmtpPeer;
let provider: ProviderPeer;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "mailroom-raw-"));
  smtp = await startSmtpPeer({ security: "starttls", auth: { user: "relay", password: "relay-password" } });
  provider = await startProviderPeer({
    mailgun: { apiKey: "key-raw", domains: ["mg.example.com"] },
    postmark: { serverToken: "pm-raw", confirmedSenders: ["sender@example.com"] },
  });
});
afterAll(async () => {
  await smtp?.close();
  await provider?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

describe("raw MIME through every driver", () => {
  it("smtp: the same bytes reach the server, Bcc only in the envelope", async () => {
    smtp.clear();
    const transport = createSmtpTransport(
      context({ host: "localhost", port: smtp.port, security: "starttls", username: "relay" }, { password: "relay-password" }),
      { trustedCa: smtp.ca },
    );
    try {
      await transport.send(rawMessage());
    } finally {
      await transport.close();
    }
    const [got] = await smtp.waitForMessages(1);
    expect(got.raw.equals(SIGNED_INVITE)).toBe(true);
    expect(got.envelope).toEqual({ from: "sender@example.com", to: ["rcpt@example.org", "hidden@example.org"] });
  });

  it.runIf(msmtpAvailable())("sendmail (msmtp): the same bytes reach the server", async () => {
    smtp.clear();
    await fs.writeFile(path.join(dir, "ca.pem"), smtp.ca);
    const rc = path.join(dir, "msmtprc");
    const lines = ["account default", "host localhost", `port ${smtp.port}`, "tls on", "tls_starttls on"];
    lines.push(`tls_trust_file ${path.join(dir, "ca.pem")}`, "auth on", "user relay", "password relay-password");
    await fs.writeFile(rc, `${lines.join("\n")}\nsyslog off\n`, { mode: 0o600 });
    const transport = sendmailDriver.createTransport?.(context({ command: "msmtp" }));
    await transport?.send(rawMessage());
    const [got] = await smtp.waitForMessages(1);
    expect(got.raw.equals(SIGNED_INVITE)).toBe(true);
    expect(got.envelope.to).toEqual(["rcpt@example.org", "hidden@example.org"]);
  });

  it("mailgun: the bytes as the messages.mime file, every recipient as `to`", async () => {
    const transport = createMailgunTransport(context({ domain: "mg.example.com", baseUrl: provider.url }, { apiKey: "key-raw" }));
    await transport.send(rawMessage());
    const got = provider.mailgun.at(-1);
    expect(got?.mime.equals(SIGNED_INVITE)).toBe(true);
    expect(got?.to).toEqual(["rcpt@example.org", "hidden@example.org"]);
  });

  it("ses: the bytes as Content.Raw, Bcc as a destination", async () => {
    const ses: SesPeer = await startSesPeer();
    try {
      const transport = createSesTransport(
        context(
          { region: "eu-west-1", accessKeyId: "AKIAIOSFODNN7EXAMPLE", endpoint: ses.endpoint },
          { secretAccessKey: "x".repeat(40) },
          undefined,
          [ses.endpoint],
        ),
      );
      await transport.send(rawMessage());
      await transport.close();
      const request = ses.requests.find((r) => r.path.endsWith("/outbound-emails"));
      const body = JSON.parse(request?.body ?? "{}") as {
        Content: { Raw: { Data: string } };
        Destination: { BccAddresses?: string[] };
      };
      expect(Buffer.from(body.Content.Raw.Data, "base64").equals(SIGNED_INVITE)).toBe(true);
      expect(body.Destination.BccAddresses).toEqual(["hidden@example.org"]);
    } finally {
      await ses.close();
    }
  });

  it("capture: the bytes as the stored file", async () => {
    const transport = createCaptureTransport(context({ retention: 10 }, {}, dir));
    await transport.send(rawMessage());
    const [summary] = (await listCaptured(dir, "srv-raw")).items;
    const stored = await readCaptured(dir, "srv-raw", summary.id);
    expect(Buffer.from(stored?.raw ?? "", "utf8").equals(SIGNED_INVITE)).toBe(true);
  });

  it("postmark: parsed into its fields (no raw API), the calendar part as an attachment, custom headers kept", async () => {
    const transport = createPostmarkTransport(
      context({ baseUrl: provider.url, messageStream: "outbound" }, { serverToken: "pm-raw" }),
    );
    await transport.send(rawMessage());
    const email = provider.postmark.at(-1)?.email as Record<string, unknown> & {
      Headers: { Name: string; Value: string }[];
      Attachments: { Name: string; ContentType: string; Content: string }[];
    };
    expect(email).toMatchObject({
      From: '"Zoë Planner" <sender@example.com>',
      To: "rcpt@example.org",
      Bcc: "hidden@example.org",
      Subject: "Einladung: Planung  (zwei Leerzeichen) ✓",
    });
    expect(String(email.TextBody).trim()).toBe("Grüße — bitte annehmen.");
    expect(email.Headers).toContainEqual({ Name: "Message-ID", Value: "<invite-42@example.com>" });
    expect(email.Headers).toContainEqual({ Name: "X-Custom", Value: "kept   as   is" });
    expect(email.Headers.find((h) => h.Name === "DKIM-Signature")?.Value).toContain("d=example.com");
    const calendar = email.Attachments.find((a) => a.ContentType.startsWith("text/calendar"));
    expect(Buffer.from(calendar?.Content ?? "", "base64").toString()).toContain("SUMMARY:Planung ✓");
  });
});
