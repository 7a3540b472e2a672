/**
 * The sendmail driver with Debian's msmtp as the program: msmtp relays to the SMTP peer over
 * STARTTLS with a login, so the message makes the whole trip a real sendmail setup makes.
 */
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { configuredDriver } from "../../src/drivers/registry.js";
import { sendmailErrors } from "../../src/drivers/sendmail/errors.js";
import { sendmailDriver } from "../../src/drivers/sendmail/index.js";
import type { OperatorPolicy } from "../../src/kernel/operator-policy.js";
import { DeliveryError, type OutgoingMessage, type Transport, type TransportContext } from "../../src/kernel/transport.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const MSMTP = "/usr/bin/msmtp";
const USER = "relay-user";
const PASSWORD = "relay-pässword";
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

let peer: SmtpPeer;
let dir: string;
let config: string;
/** The commands the operator declares, as MAILROOM_SENDMAIL_COMMANDS would (set in beforeAll). */
let operator: OperatorPolicy;

/** An msmtp configuration that relays to the peer; `password` lets a test break the login. */
async function writeConfig(file: string, password: string): Promise<void> {
  await fs.writeFile(path.join(dir, "ca.pem"), peer.ca);
  const lines = [
    "defaults",
    "syslog off",
    "logfile",
    "timeout 10",
    "account default",
    "host localhost",
    `port ${peer.port}`,
    "tls on",
    "tls_starttls on",
    `tls_trust_file ${path.join(dir, "ca.pem")}`,
    "auth on",
    `user ${USER}`,
    `password ${password}`,
    "from fallback@example.com",
  ];
  // msmtp refuses a configuration with a password that others can read.
  await fs.writeFile(file, `${lines.join("\n")}\n`, { mode: 0o600 });
}

/** What the operator declares: the commands these tests pick from by name. */
function sendmailCommands(): Record<string, string[]> {
  return {
    msmtp: [MSMTP, "-i", "-C", config],
    "msmtp-no-i": [MSMTP, "-C", config],
    "msmtp-wrong-password": [MSMTP, "-C", path.join(dir, "msmtprc-wrong-password")],
    missing: [path.join(dir, "no-such-sendmail")],
    "not-executable": [path.join(dir, "not-executable")],
  };
}

function context(settings: Record<string, string>): TransportContext {
  return {
    serverId: "srv_sendmail_test",
    serverName: "Sendmail test",
    fromAddress: "sender@example.com",
    settings: { command: "msmtp", ...settings },
    operator,
    secrets: {},
    dataDir: dir,
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

function message(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  return {
    id: "msg_sendmail",
    messageId: `${randomUUID()}@mailroom.test`,
    from: { address: "sender@example.com", name: "Mailroom Sender" },
    to: [{ address: "rcpt@example.net", name: "Zoë" }],
    cc: [],
    bcc: [{ address: "hidden@example.net" }],
    replyTo: [],
    subject: "Sendmail: Grüße – 你好 ✓",
    text: "Über msmtp ✓\n",
    html: '<p>Über <i>msmtp</i> ✓</p><img src="cid:dot@mailroom.test">',
    attachments: [
      { filename: "notes.txt", contentType: "text/plain", content: Buffer.from("Attachment text ✓\n") },
      { filename: "dot.png", contentType: "image/png", content: PNG, contentId: "dot@mailroom.test" },
    ],
    headers: {},
    ...overrides,
  };
}

async function failure(promise: Promise<unknown>): Promise<DeliveryError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(DeliveryError);
  return error as DeliveryError;
}

const transports: Transport[] = [];
function open(settings: Record<string, string> = {}): Transport {
  const transport = sendmailDriver.createTransport!(context(settings));
  transports.push(transport);
  return transport;
}

beforeAll(async () => {
  peer = await startSmtpPeer({ security: "starttls", auth: { user: USER, password: PASSWORD } });
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "mailroom-sendmail-"));
  config = path.join(dir, "msmtprc");
  await writeConfig(config, PASSWORD);
  operator = loadConfig({ MAILROOM_SENDMAIL_COMMANDS: JSON.stringify(sendmailCommands()) }).operator;
});
afterAll(async () => {
  await peer.close();
  await fs.rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  peer.setFaults({});
  peer.clear();
});

describe("sendmail through msmtp", () => {
  it("delivers UTF-8 subject, text, html, an attachment and an inline image, with -f as the envelope sender", async () => {
    const sent = message();
    const result = await open().send(sent);
    expect(result.response).toMatch(/^msmtp: /);

    const [got] = await peer.waitForMessages(1);
    expect(got.envelope).toEqual({ from: "sender@example.com", to: ["rcpt@example.net", "hidden@example.net"] });
    expect(got.user).toBe(USER);
    expect(got.secure).toBe(true);
    expect(got.messageId).toBe(`<${sent.messageId}>`);
    expect(got.subject).toBe("Sendmail: Grüße – 你好 ✓");
    expect(got.text).toBe("Über msmtp ✓\n");
    expect(got.html).toBe('<p>Über <i>msmtp</i> ✓</p><img src="cid:dot@mailroom.test">');
    // Bcc travels in the envelope only.
    expect(got.headers.has("bcc")).toBe(false);
    const notes = got.attachments.find((a) => a.filename === "notes.txt");
    expect(notes?.content.toString()).toBe("Attachment text ✓\n");
    const dot = got.attachments.find((a) => a.filename === "dot.png");
    expect(dot).toMatchObject({ cid: "dot@mailroom.test", inline: true });
    expect(dot?.content.equals(PNG)).toBe(true);
  });

  it("always passes -f <from>, whatever the configured arguments", async () => {
    await open({ command: "msmtp-no-i" }).send(message({ from: { address: "other-sender@example.com" } }));
    const [got] = await peer.waitForMessages(1);
    expect(got.envelope.from).toBe("other-sender@example.com");
  });

  it("refuses addresses that start with '-' before running anything", async () => {
    const transport = open();
    const before = peer.connections;
    const recipient = await failure(transport.send(message({ to: [{ address: "-oQ/tmp/evil@example.net" }], bcc: [] })));
    expect(recipient).toMatchObject({ code: "recipient_rejected", kind: "recipient" });
    const bcc = await failure(transport.send(message({ bcc: [{ address: "-X/tmp/log" }] })));
    expect(bcc.code).toBe("recipient_rejected");
    const sender = await failure(transport.send(message({ from: { address: "-bd@example.com" } })));
    expect(sender).toMatchObject({ code: "sender_rejected", kind: "message" });
    expect(peer.connections).toBe(before);
    expect(peer.received).toHaveLength(0);
  });

  it("reports the program's own words when it fails: a refused recipient fails the message", async () => {
    peer.setFaults({ rejectRecipients: ["gone@example.net"] });
    const error = await failure(open().send(message({ to: [{ address: "gone@example.net" }], bcc: [] })));
    expect(error.code).toBe("sendmail_failed");
    expect(error.kind).toBe("recipient");
    expect(error.message).toMatch(/exited with code \d+/);
    expect(error.message).toContain("gone@example.net");
    expect(error.remote.response).toMatch(/550/);
  });

  it("holds for the server when the relay login fails", async () => {
    await writeConfig(path.join(dir, "msmtprc-wrong-password"), "wrong-password");
    const error = await failure(open({ command: "msmtp-wrong-password" }).send(message()));
    expect(error.code).toBe("sendmail_failed");
    expect(error.kind).toBe("server");
    expect(error.message).toMatch(/authentication failed|535/i);
    expect(peer.received).toHaveLength(0);
  });

  it("checks that the program exists and is executable, without running it", async () => {
    const before = peer.connections;
    const result = await open().check({ from: "sender@example.com", to: "rcpt@example.net" });
    expect(result.error).toBeUndefined();
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["program", true],
      ["arguments", true],
    ]);
    expect(result.steps[0].detail).toBe(`${MSMTP} exists and is executable`);
    expect(result.transcript).toEqual([`$ ${MSMTP} -i -C ${config} -f sender@example.com rcpt@example.net`]);
    expect(peer.connections).toBe(before);
    expect(peer.sawData).toBe(false);
  });
});

describe("a sendmail program that is missing or unusable", () => {
  it("answers sendmail_not_found with its hint when the path does not exist", async () => {
    const transport = open({ command: "missing" });
    const error = await failure(transport.send(message()));
    expect(error).toMatchObject({ code: "sendmail_not_found", kind: "server" });
    expect(error.message).toContain("does not exist");

    const result = await transport.check({ from: "sender@example.com", to: "rcpt@example.net" });
    expect(result.steps).toEqual([expect.objectContaining({ step: "program", ok: false })]);
    expect(result.error).toMatchObject({ code: "sendmail_not_found", hint: sendmailErrors.sendmail_not_found.summary });
  });

  it("answers sendmail_not_found when the file is not executable", async () => {
    const plain = path.join(dir, "not-executable");
    await fs.writeFile(plain, "#!/bin/sh\nexit 0\n", { mode: 0o644 });
    const result = await open({ command: "not-executable" }).check({ from: "sender@example.com", to: "rcpt@example.net" });
    // No execute bit at all: even root may not run it.
    expect(result.error?.code).toBe("sendmail_not_found");
    expect(result.steps[0].detail).toContain("not executable");
  });
});

describe("the operator decides what runs", () => {
  it("offers the declared commands, by name, as the options of the only setting", () => {
    const driver = configuredDriver(sendmailDriver, operator);
    expect(
      driver.fields.filter((f) => !["allowedFromAddresses", "messagesPerSecond", "messagesPerDay"].includes(f.key)),
    ).toHaveLength(1);
    const command = driver.fields.find((f) => f.key === "command");
    expect(command?.options?.map((o) => o.value)).toEqual(Object.keys(sendmailCommands()));
    expect(command?.default).toBe("msmtp");
  });

  it("refuses a command the operator did not declare, before running anything", async () => {
    const before = peer.connections;
    expect(() => open({ command: "sh" })).toThrow(
      expect.objectContaining({ code: "sendmail_command_unknown", kind: "server", message: expect.stringContaining("msmtp") }),
    );
    expect(peer.connections).toBe(before);
  });

  it("refuses a declared program that is not an absolute path, at start", () => {
    expect(() => loadConfig({ MAILROOM_SENDMAIL_COMMANDS: '{"relative": ["sendmail", "-i"]}' })).toThrow(ConfigError);
    expect(() => loadConfig({ MAILROOM_SENDMAIL_COMMANDS: '{"relative": ["sendmail", "-i"]}' })).toThrow(
      /MAILROOM_SENDMAIL_COMMANDS/,
    );
  });
});
