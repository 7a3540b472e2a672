/**
 * Issue 9, as a hostile user would try it: each reproduction is a request a user holding
 * only `email-servers.test` (or `email-servers.update`) can make. The operator decides what
 * runs and where secrets may go; these prove that no setting, draft or transcript widens it.
 * Every listener here is on loopback; nothing is sent beyond it.
 */
import { promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Kysely } from "kysely";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TransportContext } from "../../src/kernel/transport.js";
import { up as migrateSendmailCommands } from "../../src/storage/migrations/007_sendmail_commands.js";
import type { EmailServersTable } from "../../src/storage/schema.js";
import { createSmtpTransport, smtpEndpoint } from "../../src/transport/smtp.js";
import { sampleMessage, sendError } from "../drivers/sample.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const USER = "relay-user";
const PASSWORD = "saved-relay-password-7Qx";
const MAILGUN_KEY = "key-saved-mailgun-0123456789";
const POSTMARK_TOKEN = "saved-postmark-token-0123456789";
const ACCESS_TOKEN = "ya29.live-access-token-0123456789";

/** A plain TCP service that is not SMTP: it greets with its own banner, as MariaDB or NATS do. */
async function startBanner(banner: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.write(banner);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port that accepts connections and never says a word; it tells when `count` have arrived. */
async function startSilent(): Promise<{
  port: number;
  connections: number;
  reached(count: number): Promise<void>;
  dropAll(): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  const waiters: { count: number; resolve: () => void }[] = [];
  const state = { connections: 0 };
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on("error", () => {});
    for (const w of waiters.filter((x) => state.connections >= x.count)) w.resolve();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return state.connections;
    },
    reached: (count) =>
      state.connections >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve })),
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let saved: SmtpPeer; // where the saved server's password belongs
let listener: SmtpPeer; // the attacker's: it would capture any login
let echoing: SmtpPeer; // a careless server that echoes the AUTH PLAIN line in its 535
let provider: ProviderPeer; // the operator-allowed Mailgun/Postmark endpoint
let unlisted: ProviderPeer; // an endpoint the operator did not list
let otherAllowed: ProviderPeer; // a second endpoint the operator allows
let work: string;
let marker: string;
let t: TestApp;
let tester: Caller;
let updater: Caller;

beforeAll(async () => {
  saved = await startSmtpPeer({ security: "none", auth: { user: USER, password: PASSWORD } });
  listener = await startSmtpPeer({
    security: "none",
    auth: { user: USER, password: "anything", accessToken: "anything", methods: ["PLAIN", "LOGIN", "XOAUTH2"] },
  });
  echoing = await startSmtpPeer({ security: "none", auth: { user: USER, password: "not-this", echoRejectedAuth: true } });
  provider = await startProviderPeer({
    mailgun: { apiKey: MAILGUN_KEY, domains: { "mg.example.com": "active" } },
    postmark: { serverToken: POSTMARK_TOKEN, confirmedSenders: ["sender@example.com"] },
  });
  unlisted = await startProviderPeer({});
  otherAllowed = await startProviderPeer({});
  work = await fs.mkdtemp(path.join(os.tmpdir(), "mailroom-hostile-"));
  marker = path.join(work, "ran");
  t = await startTestApp("sqlite", {
    MAILROOM_SENDMAIL_COMMANDS: JSON.stringify({ postfix: ["/usr/sbin/sendmail", "-i"], msmtp: ["/usr/bin/msmtp", "-i"] }),
    MAILROOM_ALLOWED_ENDPOINTS: `${provider.url},${otherAllowed.url}`,
  });
  tester = await t.userWith(["email-servers.test"]);
  updater = await t.userWith(["email-servers.update", "email-servers.view"]);
});
afterAll(async () => {
  await t.close();
  await Promise.all([saved, listener, echoing, provider, unlisted, otherAllowed].map((peer) => peer.close()));
  await fs.rm(work, { recursive: true, force: true });
});
afterEach(() => {
  for (const peer of [saved, listener, echoing]) peer.clear();
  for (const peer of [provider, unlisted, otherAllowed]) peer.requests.length = 0;
});

/** Creates a server as the admin would (the hostile users then work on it). */
async function savedServer(body: Record<string, unknown>): Promise<string> {
  const res = await t.request(t.admin, { method: "POST", url: "/api/email-servers", payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json().id;
}

function draftTest(caller: Caller, server: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return t.request(caller, {
    method: "POST",
    url: "/api/email-servers/test",
    payload: { mode: "check", to: "rcpt@example.org", server: { fromAddress: "sender@example.com", ...server }, ...extra },
  });
}

const smtpSettings = (peer: SmtpPeer, extra: Record<string, unknown> = {}) => ({
  host: "127.0.0.1",
  port: peer.port,
  security: "none",
  username: USER,
  timeoutSeconds: 5,
  ...extra,
});

describe("the operator decides what runs (sendmail)", () => {
  it("a draft naming /bin/sh and its arguments runs nothing: 400, the program is not a setting", async () => {
    const res = await draftTest(
      tester,
      { driver: "sendmail", settings: { path: "/bin/sh", arguments: `-c echo>${marker}` } },
      { mode: "send" },
    );
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ code: "unknown_setting" });
    expect(res.json().message).toContain("command");
    await expect(fs.access(marker)).rejects.toThrow();
  });

  it("a command that is not one the operator declared is refused, by name, with the declared ones", async () => {
    const res = await draftTest(tester, { driver: "sendmail", settings: { command: "/bin/sh" } }, { mode: "send" });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().code).toBe("invalid_setting");
    expect(res.json().message).toMatch(/settings\.command: '\/bin\/sh' is not one of: postfix, msmtp/);
  });

  it("with email-servers.update, a saved server cannot be made to run a program either", async () => {
    const create = await t.request(updater, {
      method: "POST",
      url: "/api/email-servers",
      payload: { name: "Shell", driver: "sendmail", fromAddress: "a@example.com", settings: { path: "/bin/sh" } },
    });
    expect(create.json().code, create.body).toBe("unknown_setting");
    const id = await savedServer({ name: "Postfix", driver: "sendmail", fromAddress: "a@example.com", settings: {} });
    const patchPath = await t.request(updater, {
      method: "PATCH",
      url: `/api/email-servers/${id}/settings/path`,
      payload: { value: "/bin/sh" },
    });
    expect(patchPath.json().code).toBe("unknown_setting");
    const patchCommand = await t.request(updater, {
      method: "PATCH",
      url: `/api/email-servers/${id}/settings/command`,
      payload: { value: "sh" },
    });
    expect(patchCommand.json().code).toBe("invalid_setting");
    const view = (await t.request(updater, { method: "GET", url: `/api/email-servers/${id}` })).json();
    expect(view.settings.command).toBe("postfix"); // the first declared command is the default
  });

  it("GET /api/drivers offers exactly the operator's commands", async () => {
    const res = await t.request(updater, { method: "GET", url: "/api/drivers" });
    const sendmail = res.json().items.find((d: { id: string }) => d.id === "sendmail");
    const command = sendmail.fields.find((f: { key: string }) => f.key === "command");
    expect(command).toMatchObject({ type: "select", required: true, default: "postfix" });
    expect(command.options.map((o: { value: string }) => o.value)).toEqual(["postfix", "msmtp"]);
    expect(sendmail.fields.map((f: { key: string }) => f.key)).not.toContain("path");
  });

  it("servers saved with a program are migrated: the system's sendmail keeps working, anything else waits for a command", async () => {
    const now = Date.now();
    const legacy = (id: string, settings: Record<string, unknown>): EmailServersTable => ({
      id,
      name: id,
      driver: "sendmail",
      from_address: "a@example.com",
      from_name: "",
      settings: JSON.stringify(settings),
      secrets: "{}",
      is_default: null,
      status: "ready",
      fault: null,
      fault_detail: null,
      fault_at: null,
      search_text: id,
      oauth_account: null,
      oauth_scopes: null,
      oauth_authorized_at: null,
      oauth_expires_at: null,
      created_at: now,
      updated_at: now,
    });
    await t.mailroom.ctx.db
      .insertInto("email_servers")
      .values([
        legacy("legacy-system", { path: "/usr/sbin/sendmail", arguments: "-i", messagesPerDay: 10 }),
        legacy("legacy-shell", { path: "/bin/sh", arguments: "-c id" }),
      ])
      .execute();
    await migrateSendmailCommands(t.mailroom.ctx.db as unknown as Kysely<unknown>);
    const system = await t.mailroom.servers.get("legacy-system");
    expect(system).toMatchObject({ status: "ready", settings: { command: "sendmail", messagesPerDay: 10 } });
    const shell = await t.mailroom.servers.get("legacy-shell");
    expect(shell).toMatchObject({ status: "incomplete", missingSettings: ["command"] });
    const stored = JSON.parse((await t.mailroom.servers.getRow("legacy-shell")).settings);
    expect(stored).toEqual({});
  });
});

describe("secrets go only where they were saved for", () => {
  it("a draft basedOn a saved SMTP server with another host:port never hands its password to that listener", async () => {
    const id = await savedServer({
      name: "Relay",
      driver: "smtp",
      fromAddress: "sender@example.com",
      settings: { ...smtpSettings(saved), password: PASSWORD },
    });
    // The saved server works where it belongs.
    const own = await t.request(tester, { method: "POST", url: `/api/email-servers/${id}/test`, payload: { mode: "check" } });
    expect(own.json().ok, own.body).toBe(true);

    const res = await draftTest(tester, { driver: "smtp", settings: smtpSettings(listener) }, { basedOn: id });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json()).toMatchObject({ code: "secret_destination_changed" });
    expect(res.json().message).toMatch(/^Port changed, so enter Password again/);
    expect(res.json().details).toEqual([{ field: "settings.password", message: "enter it again: Port changed" }]);
    expect(listener.connections).toBe(0);
    expect(listener.authAttempts.some((a) => a.password === PASSWORD)).toBe(false);

    // Typing the password again is the owner's choice: then it goes where the draft says.
    const retyped = await draftTest(
      tester,
      { driver: "smtp", settings: { ...smtpSettings(listener), password: "typed-again" } },
      { basedOn: id },
    );
    expect(retyped.statusCode, retyped.body).toBe(200);
    expect(listener.authAttempts.map((a) => a.password)).toEqual(["typed-again"]);
  });

  it("an update that moves the password elsewhere must bring it: PUT and PATCH answer 409, nothing changes", async () => {
    const id = await savedServer({
      name: "Relay to move",
      driver: "smtp",
      fromAddress: "sender@example.com",
      settings: { ...smtpSettings(saved), password: PASSWORD },
    });
    const before = (await t.request(t.admin, { method: "GET", url: `/api/email-servers/${id}` })).json();
    const put = await t.request(updater, {
      method: "PUT",
      url: `/api/email-servers/${id}`,
      payload: { name: "Relay to move", driver: "smtp", fromAddress: "sender@example.com", settings: smtpSettings(listener) },
    });
    expect(put.statusCode, put.body).toBe(409);
    expect(put.json().code).toBe("secret_destination_changed");
    const patch = await t.request(updater, {
      method: "PATCH",
      url: `/api/email-servers/${id}/settings/host`,
      payload: { value: "localhost" },
    });
    expect(patch.json().code).toBe("secret_destination_changed");
    expect((await t.request(t.admin, { method: "GET", url: `/api/email-servers/${id}` })).json()).toEqual(before);
    // With the secret in the same request, the move is allowed.
    const moved = await t.request(updater, {
      method: "PUT",
      url: `/api/email-servers/${id}`,
      payload: {
        name: "Relay to move",
        driver: "smtp",
        fromAddress: "sender@example.com",
        settings: { ...smtpSettings(listener), password: "new-place-password" },
      },
    });
    expect(moved.statusCode, moved.body).toBe(200);
  });

  it("a draft basedOn a saved Mailgun or Postmark server with another base URL gets no key", async () => {
    const mailgun = await savedServer({
      name: "Mailgun",
      driver: "mailgun",
      fromAddress: "sender@mg.example.com",
      settings: { domain: "mg.example.com", apiKey: MAILGUN_KEY, baseUrl: provider.url },
    });
    const postmark = await savedServer({
      name: "Postmark",
      driver: "postmark",
      fromAddress: "sender@example.com",
      settings: { serverToken: POSTMARK_TOKEN, baseUrl: provider.url },
    });
    // The operator allows both endpoints: the binding holds whatever the allow-list says.
    for (const [id, driver, settings] of [
      [mailgun, "mailgun", { domain: "mg.example.com", baseUrl: otherAllowed.url }],
      [postmark, "postmark", { baseUrl: otherAllowed.url }],
    ] as const) {
      const res = await draftTest(tester, { driver, settings }, { basedOn: id });
      expect(res.statusCode, res.body).toBe(409);
      expect(res.json().code).toBe("secret_destination_changed");
      expect(res.json().message).toContain("API base URL changed");
    }
    expect(otherAllowed.requests).toHaveLength(0);
    expect(provider.requests).toHaveLength(0);
  });

  it("an OAuth grant never follows a changed host or client: the draft gets none, an update drops it", async () => {
    const id = await savedServer({
      name: "Gmail",
      driver: "gmail",
      fromAddress: "me@example.com",
      settings: { clientId: "client-1", clientSecret: "client-secret-1", host: "127.0.0.1", port: saved.port, security: "none" },
    });
    await t.mailroom.ctx.db.transaction().execute(async (trx) => {
      await t.mailroom.oauth.tokens.storeGrant(trx, id, {
        provider: "google",
        account: "me@example.com",
        scopes: "https://mail.google.com/",
        refreshToken: "refresh-1",
        accessToken: ACCESS_TOKEN,
        expiresInSeconds: 3600,
        grantExpiresAt: null,
      });
      await t.mailroom.servers.recordGrant(trx, id, {
        account: "me@example.com",
        scopes: "https://mail.google.com/",
        authorizedAt: Date.now(),
        expiresAt: null,
      });
    });
    const gmail = { driver: "gmail", fromAddress: "me@example.com" };
    const moved = { clientId: "client-1", host: "127.0.0.1", port: listener.port, security: "none" };
    const refused = await draftTest(tester, { ...gmail, settings: moved }, { basedOn: id });
    expect(refused.statusCode, refused.body).toBe(409);
    expect(refused.json().message).toContain("Client secret");
    // Even with the client secret typed again, the grant stays with the saved destination.
    const noGrant = await draftTest(tester, { ...gmail, settings: { ...moved, clientSecret: "typed" } }, { basedOn: id });
    expect(noGrant.json()).toMatchObject({ ok: false, error: { code: "oauth_not_authorized" } });
    expect(listener.connections).toBe(0);
    expect(JSON.stringify(listener.authAttempts)).not.toContain(ACCESS_TOKEN);

    const update = await t.request(updater, {
      method: "PUT",
      url: `/api/email-servers/${id}`,
      payload: { name: "Gmail", ...gmail, settings: { ...moved, clientId: "client-2", clientSecret: "client-secret-2" } },
    });
    expect(update.statusCode, update.body).toBe(200);
    expect(update.json()).toMatchObject({ status: "not_authorized", settings: { authorizedAccount: null } });
    expect(await t.mailroom.oauth.tokens.readRow(id)).toBeUndefined();
    const own = await t.request(tester, { method: "POST", url: `/api/email-servers/${id}/test`, payload: { mode: "check" } });
    expect(own.json().error.code).toBe("oauth_not_authorized");
    expect(JSON.stringify(listener.authAttempts)).not.toContain(ACCESS_TOKEN);
  });
});

describe("provider endpoints are not free text", () => {
  it("Mailgun and Postmark base URLs reach only the operator's endpoints", async () => {
    for (const [driver, settings] of [
      ["mailgun", { domain: "mg.example.com", apiKey: "key-typed-0123456789", baseUrl: unlisted.url }],
      ["postmark", { serverToken: "typed-token-0123456789", baseUrl: unlisted.url }],
    ] as const) {
      const res = await draftTest(tester, { driver, settings });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({ code: "endpoint_not_allowed" });
      expect(res.json().message).toContain("MAILROOM_ALLOWED_ENDPOINTS");
      const create = await t.request(updater, {
        method: "POST",
        url: "/api/email-servers",
        payload: { name: `Unlisted ${driver}`, driver, fromAddress: "a@example.com", settings },
      });
      expect(create.json().code).toBe("endpoint_not_allowed");
    }
    expect(unlisted.requests).toHaveLength(0);
  });

  it("a base URL cannot bend the provider's URLs with a query, even on an allowed endpoint", async () => {
    const res = await draftTest(tester, {
      driver: "postmark",
      settings: { serverToken: POSTMARK_TOKEN, baseUrl: `${provider.url}/admin?x=` },
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().code).toBe("endpoint_not_allowed");
    expect(res.json().message).toContain("without a user, password, query or fragment");
    expect(provider.requests).toHaveLength(0);
  });

  it("SES talks only to its region's endpoint, and a region cannot name a host", async () => {
    for (const settings of [
      { region: "eu-west-1", endpoint: unlisted.url },
      { region: "evil.example.com#", endpoint: "" },
    ]) {
      const res = await draftTest(tester, {
        driver: "ses",
        settings: { ...settings, accessKeyId: "AKIAEXAMPLE", secretAccessKey: "typed-secret" },
      });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().code).toBe("endpoint_not_allowed");
    }
    expect(unlisted.requests).toHaveLength(0);
  });

  it("link-local and metadata addresses are refused for every driver, also behind a name", async () => {
    for (const [driver, settings] of [
      ["smtp", { host: "169.254.169.254", port: 25, security: "none" }],
      ["smtp", { host: "fe80::1", port: 25, security: "none" }],
      ["mailgun", { domain: "mg.example.com", apiKey: "key-typed-0123456789", baseUrl: "http://169.254.169.254" }],
      ["postmark", { serverToken: "typed-token-0123456789", baseUrl: "http://[fe80::1]:8080" }],
    ] as const) {
      const res = await draftTest(tester, { driver, settings });
      expect(res.statusCode, `${driver} ${JSON.stringify(settings)}: ${res.body}`).toBe(400);
      expect(res.json().code).toBe("endpoint_not_allowed");
    }
    // 2852039166 is 169.254.169.254 written as one number: the resolver turns it into that address.
    const named = await draftTest(tester, {
      driver: "smtp",
      settings: { host: "2852039166", port: 80, security: "none", timeoutSeconds: 1 },
    });
    expect(named.json()).toMatchObject({ ok: false, error: { code: "endpoint_not_allowed" } });
    expect(named.json().steps).toEqual([expect.objectContaining({ step: "dns", ok: false })]);
    expect(named.json().error.message).toContain("169.254.169.254");
  });
});

describe("transcripts show SMTP, not whatever answered", () => {
  it("a database or broker on the port is reported as not_smtp_server, without its bytes", async () => {
    for (const banner of [
      "J\u0000\u0000\u0000\n5.5.5-10.11.6-MariaDB-0+deb12u1\u0000mysql_native_password\u0000\r\n",
      'INFO {"server_id":"NDKXSECRETID","version":"2.10.4","auth_required":true}\r\n',
    ]) {
      const peer = await startBanner(banner);
      try {
        const res = await draftTest(tester, {
          driver: "smtp",
          settings: { host: "127.0.0.1", port: peer.port, security: "none", timeoutSeconds: 5 },
        });
        const body = res.body;
        expect(res.json()).toMatchObject({ ok: false, error: { code: "not_smtp_server" } });
        expect(res.json().error.remote).toBeUndefined();
        for (const leak of ["MariaDB", "mysql_native_password", "NDKXSECRETID", "2.10.4", "INFO"]) {
          expect(body, leak).not.toContain(leak);
        }
        // The same on delivery: nothing of the banner is kept in the attempt.
        const transport = createSmtpTransport(context({ host: "127.0.0.1", port: peer.port, security: "none" }));
        const error = await sendError(transport.send(sampleMessage()));
        await transport.close();
        expect(error.code).toBe("not_smtp_server");
        expect(JSON.stringify({ message: error.message, remote: error.remote })).not.toMatch(/MariaDB|NDKXSECRETID|INFO/);
      } finally {
        await peer.close();
      }
    }
  });

  it("a 535 that echoes the AUTH PLAIN blob shows neither the blob nor the password, in the test or the attempt", async () => {
    const blob = Buffer.from(`\u0000${USER}\u0000${PASSWORD}`).toString("base64");
    const res = await draftTest(tester, {
      driver: "smtp",
      settings: { ...smtpSettings(echoing), password: PASSWORD },
    });
    const report = res.json();
    expect(report).toMatchObject({ ok: false, error: { code: "smtp_auth_failed" } });
    expect(echoing.authAttempts).toHaveLength(1); // the server did get (and echo) the login
    expect(res.body).not.toContain(blob);
    expect(res.body).not.toContain(PASSWORD);
    expect(report.error.remote.response).toContain("AUTH PLAIN [redacted]");

    const transport = createSmtpTransport(context(smtpSettings(echoing), { password: PASSWORD }));
    const error = await sendError(transport.send(sampleMessage()));
    await transport.close();
    expect(error.code).toBe("smtp_auth_failed");
    expect(JSON.stringify({ message: error.message, remote: error.remote })).not.toContain(blob);
    expect(error.remote.response).toContain("[redacted]");
  });
});

describe("tests are bounded", () => {
  it("10 parallel tests by one user: 3 run, the others answer 429 too_many_tests", async () => {
    const silent = await startSilent();
    try {
      const settings = { host: "127.0.0.1", port: silent.port, security: "none", timeoutSeconds: 600 };
      const replies: { statusCode: number; code?: string }[] = [];
      let sevenAnswered = () => {};
      const refusals = new Promise<void>((resolve) => {
        sevenAnswered = resolve;
      });
      const pending = Array.from({ length: 10 }, () =>
        draftTest(tester, { driver: "smtp", settings }).then((r) => {
          replies.push({ statusCode: r.statusCode, code: r.statusCode === 429 ? r.json().code : undefined });
          if (replies.length === 7) sevenAnswered();
          return r;
        }),
      );
      // The refusals answer at once; the three running tests wait on the silent port (until
      // it drops them). Without a bound, all ten connect.
      await Promise.race([refusals, silent.reached(10)]);
      await silent.reached(3);
      silent.dropAll();
      await Promise.all(pending);
      const refused = replies.filter((r) => r.statusCode === 429);
      expect(refused).toHaveLength(7);
      expect(refused.every((r) => r.code === "too_many_tests")).toBe(true);
      expect(silent.connections).toBe(3);
      // The slots are given back: the next test runs.
      const next = draftTest(tester, { driver: "smtp", settings });
      await silent.reached(4);
      silent.dropAll();
      expect((await next).statusCode).toBe(200);
    } finally {
      await silent.close();
    }
  });

  it("a test waits at most 60 s per step, whatever the server's timeout says", async () => {
    const id = await savedServer({
      name: "Slow",
      driver: "smtp",
      fromAddress: "a@example.com",
      settings: { host: "127.0.0.1", port: saved.port, security: "none", timeoutSeconds: 600 },
    });
    const built: { maxTimeoutMs?: number }[] = [];
    const build = t.mailroom.transports.build.bind(t.mailroom.transports);
    t.mailroom.transports.build = (row, secrets, options) => {
      built.push(options ?? {});
      return build(row, secrets, options);
    };
    try {
      await t.request(tester, { method: "POST", url: `/api/email-servers/${id}/test`, payload: { mode: "check" } });
    } finally {
      t.mailroom.transports.build = build;
    }
    expect(built).toHaveLength(1);
    const endpoint = smtpEndpoint(context({ timeoutSeconds: 600 }, {}, built[0].maxTimeoutMs));
    expect(endpoint.timeoutMs).toBe(60_000);
  });
});

function context(
  settings: Record<string, unknown>,
  secrets: Record<string, string> = {},
  maxTimeoutMs?: number,
): TransportContext {
  return {
    serverId: "srv-hostile",
    serverName: "Hostile",
    fromAddress: "sender@example.com",
    settings: { timeoutSeconds: 5, ...settings } as TransportContext["settings"],
    secrets,
    dataDir: work,
    log: pino({ level: "silent" }),
    poolSize: 1,
    ...(maxTimeoutMs === undefined ? {} : { maxTimeoutMs }),
  };
}
