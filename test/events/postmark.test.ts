import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEntries, expectError } from "../api/fixtures.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { databaseText, messageView, sendAndSettle, suppressionsOf } from "./support.js";

const SERVER_TOKEN = "pm-server-token-0123456789";

/** Postmark's documented webhook bodies (postmarkapp.com/developer/webhooks). */
const bounce = (messageId: string, email: string, type = "HardBounce") => ({
  RecordType: "Bounce",
  ID: Math.floor(Math.random() * 1e9),
  Type: type,
  TypeCode: type === "HardBounce" ? 1 : 4096,
  Name: type === "HardBounce" ? "Hard bounce" : "Soft bounce",
  Tag: "Test",
  MessageID: messageId,
  ServerID: 23,
  MessageStream: "outbound",
  Description: "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
  Details: "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
  Email: email,
  From: "sender@example.com",
  BouncedAt: new Date().toISOString(),
  DumpAvailable: true,
  Inactive: true,
  CanActivate: true,
  Subject: "Provider events",
  // With "Include message content": the bounce as received, line breaks and all.
  Content: "Return-Path: <>\r\nReceived: from mx.example.org\r\n\r\nThe email account does not exist.\r\n",
});

const delivery = (messageId: string, recipient: string) => ({
  RecordType: "Delivery",
  ServerID: 23,
  MessageStream: "outbound",
  MessageID: messageId,
  Recipient: recipient,
  Tag: "welcome-email",
  DeliveredAt: new Date().toISOString(),
  Details: "Test delivery webhook details",
  Metadata: { a_key: "a_value" },
});

const spamComplaint = (messageId: string, email: string) => ({
  RecordType: "SpamComplaint",
  ID: Math.floor(Math.random() * 1e9),
  Type: "SpamComplaint",
  TypeCode: 512,
  Name: "Spam complaint",
  Tag: "Test",
  MessageID: messageId,
  ServerID: 1234,
  MessageStream: "outbound",
  Description: "",
  Details: "Test spam complaint details",
  Email: email,
  From: "sender@example.com",
  BouncedAt: new Date().toISOString(),
  DumpAvailable: true,
  Inactive: true,
  CanActivate: false,
  Subject: "Provider events",
});

describe.each(await availableDialects())("Postmark events on %s", (dialect) => {
  let t: TestApp;
  let peer: ProviderPeer;
  let serverId: string;
  let credentials: { username: string; password: string; url: string };
  let n = 0;
  const rcpt = () => `pm-${dialect}-${++n}@example.org`;

  beforeAll(async () => {
    peer = await startProviderPeer({ postmark: { serverToken: SERVER_TOKEN, confirmedSenders: ["@example.com"] } });
    t = await startTestApp(dialect, { MAILROOM_ALLOWED_ENDPOINTS: peer.url, MAILROOM_POLL_MS: "20" });
    const server = await t.mailroom.servers.create(
      {
        name: "Postmark",
        driver: "postmark",
        fromAddress: "sender@example.com",
        settings: { serverToken: SERVER_TOKEN, messageStream: "outbound", baseUrl: peer.url },
      },
      { type: "system", id: null, label: "test" },
    );
    serverId = server.id;
    const res = await t.request(t.admin, {
      method: "PUT",
      url: `/api/email-servers/${serverId}/event-sources/postmark`,
      payload: {},
    });
    expect(res.statusCode, res.body).toBe(200);
    credentials = res.json().credentials;
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  const post = (body: unknown, authorization: string | null = basic(credentials.username, credentials.password)) =>
    t.request(null, {
      method: "POST",
      url: `/api/provider-events/${serverId}/postmark`,
      payload: body as object,
      headers: authorization ? { authorization } : {},
    });
  const send = (to: string) => sendAndSettle(t, t.admin, "Postmark", to);

  it("generates basic-auth credentials, shown once inside the URL to paste and stored only as a hash", async () => {
    expect(credentials.username).toBe("mailroom");
    expect(credentials.password.length).toBeGreaterThanOrEqual(32);
    expect(credentials.url).toBe(
      `http://mailroom:${credentials.password}@localhost:8025/api/provider-events/${serverId}/postmark`,
    );
    const list = await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}/event-sources` });
    expect(list.json().items.find((s: { provider: string }) => s.provider === "postmark")).toMatchObject({
      setUp: true,
      username: "mailroom",
      signingKey: null,
    });
    for (const text of [list.body, t.logs.join(""), JSON.stringify(await auditEntries(t)), await databaseText(t)]) {
      expect(text).not.toContain(credentials.password);
    }
    // Mailgun's signing key has no place here.
    const res = await t.request(t.admin, {
      method: "PUT",
      url: `/api/email-servers/${serverId}/event-sources/postmark`,
      payload: { signingKey: "abcdefghij" },
    });
    expectError(res, 400, "unknown_field");
  });

  it("a Delivery, a HardBounce and a SpamComplaint update the message and the suppression list", async () => {
    const to = rcpt();
    const message = await send(to);
    const id = message.provider_message_id as string;
    // The driver keeps Postmark's MessageID as its send reply gave it.
    expect(peer.postmark.map((p) => p.messageId)).toContain(id);

    expect((await post(delivery(id, to))).json()).toMatchObject({ accepted: 1 });
    expect((await messageView(t, message.id)).status).toBe("delivered");

    const hard = await post(bounce(id, to.toUpperCase()));
    expect(hard.statusCode, hard.body).toBe(200);
    const view = await messageView(t, message.id);
    expect(view.status).toBe("bounced");
    expect(view.events[1]).toMatchObject({
      type: "bounced",
      bounceKind: "hard",
      recipient: to,
      diagnostic: expect.stringContaining("smtp;550 5.1.1"),
    });
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([
      expect.objectContaining({ reason: "hard_bounce", messageId: message.id }),
    ]);

    const other = rcpt();
    const second = await send(other);
    expect((await post(spamComplaint(second.provider_message_id as string, other))).statusCode).toBe(200);
    expect((await messageView(t, second.id)).status).toBe("complained");
    expect(await suppressionsOf(t, `&q=${other}`)).toEqual([expect.objectContaining({ reason: "complaint" })]);
  });

  it("a SoftBounce suppresses nothing; an Open or an auto-reply is ignored; replaying an event is idempotent", async () => {
    const to = rcpt();
    const message = await send(to);
    const id = message.provider_message_id as string;
    const soft = bounce(id, to, "SoftBounce");
    expect((await post(soft)).json()).toMatchObject({ accepted: 1 });
    expect((await post(soft)).json()).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await post(bounce(id, to, "AutoResponder"))).json()).toMatchObject({ accepted: 0, ignored: 1 });
    const open = { RecordType: "Open", MessageID: id, Recipient: to, ReceivedAt: new Date().toISOString() };
    expect((await post(open)).json()).toMatchObject({ accepted: 0, ignored: 1 });
    const view = await messageView(t, message.id);
    expect(view.events).toEqual([expect.objectContaining({ type: "bounced", bounceKind: "soft" })]);
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([]);
    expectError(await post({ MessageID: id }), 400, "provider_event_invalid");
  });

  it("asks for credentials without auditing; refuses wrong ones with 401, audited once a minute, and changes nothing", async () => {
    const to = rcpt();
    const message = await send(to);
    const body = bounce(message.provider_message_id as string, to);
    const before = (await auditEntries(t, "&action=provider_events.refused")).length;

    const challenge = await post(body, null);
    expectError(challenge, 401, "provider_event_unauthorized");
    expect(challenge.headers["www-authenticate"]).toBe('Basic realm="Mailroom provider events"');
    expect((await auditEntries(t, "&action=provider_events.refused")).length).toBe(before);

    for (const authorization of [
      basic("mailroom", "wrong-password"),
      basic("someone", credentials.password),
      "Bearer mrt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "Basic !!!",
    ]) {
      expectError(await post(body, authorization), 401, "provider_event_unauthorized");
    }
    const refused = await auditEntries(t, "&action=provider_events.refused");
    expect(refused.length - before).toBe(1);
    expect(refused[0]).toMatchObject({ actor: { label: "provider:postmark" }, after: { provider: "postmark" } });
    expect((await messageView(t, message.id)).status).toBe("sent");
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([]);
  });

  it("setting the source up again replaces the password: the old one is refused", async () => {
    const res = await t.request(t.admin, {
      method: "PUT",
      url: `/api/email-servers/${serverId}/event-sources/postmark`,
      payload: {},
    });
    const renewed = res.json().credentials;
    expect(renewed.password).not.toBe(credentials.password);
    const to = rcpt();
    const message = await send(to);
    expectError(await post(delivery(message.provider_message_id as string, to)), 401, "provider_event_unauthorized");
    credentials = renewed;
    expect((await post(delivery(message.provider_message_id as string, to))).json()).toMatchObject({ accepted: 1 });
  });

  it("needs email-servers.update to set a source up, email-servers.view to see it", async () => {
    const viewer = await t.userWith(["email-servers.view"]);
    const url = `/api/email-servers/${serverId}/event-sources`;
    const seen = await t.request(viewer, { method: "GET", url });
    expect(seen.statusCode).toBe(200);
    expect(seen.body).not.toContain(credentials.password);
    expectError(await t.request(viewer, { method: "PUT", url: `${url}/postmark`, payload: {} }), 403, "forbidden");
    expectError(await t.request(viewer, { method: "DELETE", url: `${url}/postmark` }), 403, "forbidden");
    expectError(await t.request(null, { method: "GET", url }), 401, "unauthenticated");
  });
});
