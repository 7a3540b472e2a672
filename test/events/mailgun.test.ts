import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEntries, expectError } from "../api/fixtures.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { databaseText, mailgunBody, messageView, sendAndSettle, suppressionsOf } from "./support.js";

const API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const DOMAIN = "mg.example.com";
const SIGNING_KEY = "whsec-mailgun-1f0c2e9a7b6d5c4e3f2a1b0c";

/** Mailgun's documented event-data (Webhooks › Webhook Payloads), for a message Mailgun sent. */
function delivered(messageId: string, recipient: string, id = `dlv-${Math.random().toString(36).slice(2)}`) {
  return {
    id,
    event: "delivered",
    timestamp: Date.now() / 1000,
    "log-level": "info",
    recipient,
    "recipient-domain": recipient.split("@")[1],
    envelope: { sender: `sender@${DOMAIN}`, targets: recipient, transport: "smtp", "sending-ip": "198.51.100.7" },
    flags: { "is-routed": false, "is-authenticated": true, "is-system-test": false, "is-test-mode": false },
    message: {
      headers: { to: recipient, "message-id": messageId, from: `sender@${DOMAIN}`, subject: "Provider events" },
      size: 809,
    },
    "delivery-status": { tls: true, "mx-host": "mx.example.org", "attempt-no": 1, description: "", code: 250, message: "OK" },
  };
}

function failed(messageId: string, recipient: string, severity: "permanent" | "temporary", at = Date.now()) {
  return {
    id: `fail-${Math.random().toString(36).slice(2)}`,
    event: "failed",
    severity,
    reason: severity === "permanent" ? "bounce" : "generic",
    timestamp: at / 1000,
    "log-level": severity === "permanent" ? "error" : "warn",
    recipient,
    message: { headers: { to: recipient, "message-id": messageId, from: `sender@${DOMAIN}` } },
    "delivery-status":
      severity === "permanent"
        ? {
            "attempt-no": 1,
            code: 550,
            message:
              "5.1.1 The email account that you tried to reach does not exist. Please try\n5.1.1 double-checking the recipient's email address for typos",
            description: "",
          }
        : {
            "attempt-no": 3,
            code: 452,
            message: "4.2.2 The email account that you tried to reach is over quota.",
            description: "",
            "retry-seconds": 1800,
          },
  };
}

function complained(messageId: string, recipient: string) {
  return {
    id: `cmp-${Math.random().toString(36).slice(2)}`,
    event: "complained",
    timestamp: Date.now() / 1000,
    "log-level": "warn",
    recipient,
    message: { headers: { to: recipient, "message-id": messageId, from: `sender@${DOMAIN}` } },
  };
}

describe.each(await availableDialects())("Mailgun events on %s", (dialect) => {
  let t: TestApp;
  let peer: ProviderPeer;
  let serverId: string;
  let skewMs = 0;
  let n = 0;
  const rcpt = () => `mg-${dialect}-${++n}@example.org`;

  beforeAll(async () => {
    peer = await startProviderPeer({ mailgun: { apiKey: API_KEY, domains: [DOMAIN] } });
    t = await startTestApp(
      dialect,
      { MAILROOM_ALLOWED_ENDPOINTS: peer.url, MAILROOM_POLL_MS: "20" },
      { clock: () => Date.now() + skewMs },
    );
    const server = await t.mailroom.servers.create(
      {
        name: "Mailgun",
        driver: "mailgun",
        fromAddress: `sender@${DOMAIN}`,
        settings: { domain: DOMAIN, apiKey: API_KEY, region: "us", baseUrl: peer.url },
      },
      { type: "system", id: null, label: "test" },
    );
    serverId = server.id;
    const res = await t.request(t.admin, {
      method: "PUT",
      url: `/api/email-servers/${serverId}/event-sources/mailgun`,
      payload: { signingKey: SIGNING_KEY },
    });
    expect(res.statusCode, res.body).toBe(200);
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const post = (body: unknown, server = serverId) =>
    t.request(null, { method: "POST", url: `/api/provider-events/${server}/mailgun`, payload: body as object });
  const send = (to: string) => sendAndSettle(t, t.admin, "Mailgun", to);

  it("shows the endpoint and keeps the pasted signing key write-only: never in a reply, the log, the audit or the database", async () => {
    const res = await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}/event-sources` });
    expect(res.statusCode, res.body).toBe(200);
    const mailgun = res.json().items.find((s: { provider: string }) => s.provider === "mailgun");
    expect(mailgun).toMatchObject({
      setUp: true,
      signingKey: { set: true },
      url: `http://localhost:8025/api/provider-events/${serverId}/mailgun`,
    });
    expect(res.json().items.find((s: { provider: string }) => s.provider === "postmark")).toMatchObject({ setUp: false });
    const [entry] = await auditEntries(t, "&action=provider_events.source.create");
    expect(entry?.after).toMatchObject({ provider: "mailgun", signingKey: "[secret changed]" });
    for (const text of [res.body, t.logs.join(""), JSON.stringify(await auditEntries(t)), await databaseText(t)]) {
      expect(text).not.toContain(SIGNING_KEY);
    }
    // A signing key with spaces, or none: refused, with the field named.
    const bad = await t.request(t.admin, {
      method: "PUT",
      url: `/api/email-servers/${serverId}/event-sources/mailgun`,
      payload: { signingKey: "not a key" },
    });
    expect(expectError(bad, 400, "validation_failed").message).toContain("signingKey");
    expectError(
      await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${serverId}/event-sources/mailgun`,
        payload: { key: "x" },
      }),
      400,
      "unknown_field",
    );
    expectError(
      await t.request(t.admin, { method: "PUT", url: `/api/email-servers/${serverId}/event-sources/sendgrid`, payload: {} }),
      400,
      "validation_failed",
    );
  });

  it("a delivery, then a permanent failure: the message turns delivered, then bounced, its detail shows both, the address is suppressed", async () => {
    const to = rcpt();
    const message = await send(to);
    // Mailgun's id is "<…@domain>" in its send reply; the driver keeps it without brackets, as its events name it.
    expect(message.provider_message_id).not.toMatch(/[<>]/);
    const first = await post(mailgunBody(delivered(message.provider_message_id as string, to), SIGNING_KEY));
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ accepted: 1, duplicates: 0, unmatched: 0 });
    expect((await messageView(t, message.id)).status).toBe("delivered");

    const bounce = await post(mailgunBody(failed(`<${message.provider_message_id}>`, to, "permanent"), SIGNING_KEY));
    expect(bounce.json()).toMatchObject({ accepted: 1 });
    const view = await messageView(t, message.id);
    expect(view.status).toBe("bounced");
    expect(view.events.map((e: { type: string }) => e.type)).toEqual(["delivered", "bounced"]);
    expect(view.events[1]).toMatchObject({ provider: "mailgun", bounceKind: "hard", recipient: to });
    // The diagnostic is one line: Mailgun's two-line SMTP reply arrives joined.
    expect(view.events[1].diagnostic).toMatch(/^550 5\.1\.1 The email account .* Please try 5\.1\.1 double-checking/);
    const [entry] = await suppressionsOf(t, `&q=${to}`);
    expect(entry).toMatchObject({ address: to, reason: "hard_bounce", messageId: message.id, server: null });

    // Sending to it again is refused at accept time, naming the address and how to remove it.
    const again = await t.request(t.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { server: "Mailgun", to, subject: "x", text: "y" },
    });
    const error = expectError(again, 400, "recipient_suppressed");
    expect(error.message).toContain(to);
    expect(error.message).toContain(`DELETE /api/suppressions/${entry.id}`);

    // A late delivery report does not undo the bounce.
    await post(mailgunBody(delivered(message.provider_message_id as string, to), SIGNING_KEY));
    expect((await messageView(t, message.id)).status).toBe("bounced");
  });

  it("a complaint marks the message complained and suppresses the address", async () => {
    const to = rcpt();
    const message = await send(to);
    expect((await post(mailgunBody(complained(message.provider_message_id as string, to), SIGNING_KEY))).statusCode).toBe(200);
    expect((await messageView(t, message.id)).status).toBe("complained");
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([expect.objectContaining({ reason: "complaint" })]);
  });

  it("a temporary failure is a soft bounce: no suppression, and a delivery after it makes the message delivered", async () => {
    const to = rcpt();
    const message = await send(to);
    const id = message.provider_message_id as string;
    await post(mailgunBody(failed(id, to, "temporary", Date.now() - 60_000), SIGNING_KEY));
    const soft = await messageView(t, message.id);
    expect(soft.status).toBe("bounced");
    expect(soft.events[0]).toMatchObject({ bounceKind: "soft", diagnostic: expect.stringContaining("over quota") });
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([]);
    await post(mailgunBody(delivered(id, to), SIGNING_KEY));
    expect((await messageView(t, message.id)).status).toBe("delivered");
  });

  it("refuses a forged or missing signature with 401, changes nothing, and audits a flood once a minute", async () => {
    const to = rcpt();
    const message = await send(to);
    const id = message.provider_message_id as string;
    const before = (await auditEntries(t, "&action=provider_events.refused")).length;
    for (let i = 0; i < 20; i++) {
      const res = await post(mailgunBody(failed(id, to, "permanent"), "someone-elses-signing-key"));
      expectError(res, 401, "provider_event_unauthorized");
    }
    expectError(await post({ "event-data": failed(id, to, "permanent") }), 401, "provider_event_unauthorized");
    const tampered = mailgunBody(delivered(id, to), SIGNING_KEY);
    (tampered.signature as { token: string }).token += "0";
    expectError(await post(tampered), 401, "provider_event_unauthorized");
    expect((await messageView(t, message.id)).status).toBe("sent");
    expect(await suppressionsOf(t, `&q=${to}`)).toEqual([]);
    const refused = await auditEntries(t, "&action=provider_events.refused");
    expect(refused.length - before).toBe(1);
    expect(refused[0]).toMatchObject({
      target: { type: "email_server", id: serverId },
      after: { provider: "mailgun", code: "provider_event_unauthorized" },
    });
    // A minute later the next refusal writes the next entry, counting the ones in between.
    skewMs += 61_000;
    try {
      await post(
        mailgunBody(failed(id, to, "permanent"), "someone-elses-signing-key", {
          timestamp: Math.floor((Date.now() + skewMs) / 1000),
        }),
      );
    } finally {
      skewMs -= 61_000;
    }
    const later = await auditEntries(t, "&action=provider_events.refused");
    expect(later.length - before).toBe(2);
    expect(later[0].after).toMatchObject({ refusals: 22 });
    const sources = (await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}/event-sources` })).json();
    expect(sources.items[0].refused).toBeGreaterThanOrEqual(23);
  });

  it("refuses a timestamp older than 15 minutes and a token used twice; the same event with a fresh signature is stored once", async () => {
    const to = rcpt();
    const message = await send(to);
    const event = failed(message.provider_message_id as string, to, "permanent");
    const stale = mailgunBody(event, SIGNING_KEY, { timestamp: Math.floor(Date.now() / 1000) - 16 * 60 });
    expectError(await post(stale), 401, "provider_event_replayed");
    expect((await messageView(t, message.id)).status).toBe("sent");

    const signed = mailgunBody(event, SIGNING_KEY);
    expect((await post(signed)).json()).toMatchObject({ accepted: 1 });
    expectError(await post(signed), 401, "provider_event_replayed");
    // Mailgun sending the event again (a retry, newly signed) adds nothing.
    const retry = await post(mailgunBody(event, SIGNING_KEY));
    expect(retry.json()).toMatchObject({ accepted: 0, duplicates: 1 });
    expect((await messageView(t, message.id)).events).toHaveLength(1);
    expect(await suppressionsOf(t, `&q=${to}`)).toHaveLength(1);
  });

  it("answers 200 for a message it does not know (counted), 404 where no source is set up, 400 for a signed non-event, 413 when too big", async () => {
    const unknown = await post(mailgunBody(delivered("20260101000000.unknown@mg.example.com", "x@example.org"), SIGNING_KEY));
    expect(unknown.statusCode, unknown.body).toBe(200);
    expect(unknown.json()).toMatchObject({ accepted: 0, unmatched: 1 });
    const opened = await post(mailgunBody({ ...delivered("a@b", "x@example.org"), event: "opened" }, SIGNING_KEY));
    expect(opened.json()).toMatchObject({ accepted: 0, ignored: 1 });
    const sources = (await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}/event-sources` })).json();
    expect(sources.items[0].unmatched).toBeGreaterThanOrEqual(1);

    const capture = (await t.mailroom.servers.getRow("Capture")).id;
    expectError(
      await post(mailgunBody(delivered("a@b", "x@example.org"), SIGNING_KEY), capture),
      404,
      "provider_events_not_set_up",
    );
    expectError(
      await post(mailgunBody(delivered("a@b", "x@example.org"), SIGNING_KEY), "no-such-server"),
      404,
      "provider_events_not_set_up",
    );
    expectError(await post({ signature: mailgunBody({}, SIGNING_KEY).signature }), 400, "provider_event_invalid");
    const huge = mailgunBody({ ...delivered("a@b", "x@example.org"), padding: "x".repeat(300 * 1024) }, SIGNING_KEY);
    expectError(await post(huge), 413, "body_too_large");
  });

  it("counts bounces and complaints per server on the overview (30 days)", async () => {
    const res = await t.request(t.admin, { method: "GET", url: "/api/stats" });
    expect(res.statusCode, res.body).toBe(200);
    const { deliverability } = res.json();
    expect(deliverability.days).toBe(30);
    const mine = deliverability.servers.find((s: { serverId: string }) => s.serverId === serverId);
    const rows = await t.mailroom.ctx.db.selectFrom("messages").select("status").where("server_id", "=", serverId).execute();
    const count = (status: string) => rows.filter((r) => r.status === status).length;
    expect(mine).toMatchObject({
      sent: rows.length,
      bounced: count("bounced"),
      complained: count("complained"),
      delivered: count("delivered"),
    });
    expect(mine.bounceRate).toBeCloseTo(count("bounced") / rows.length);
    expect(count("bounced")).toBeGreaterThan(0);
    expect(mine.complaintRate).toBeGreaterThan(0);
  });

  it("removing the source refuses its URL from then on", async () => {
    const other = await t.mailroom.servers.create(
      {
        name: "Mailgun 2",
        driver: "mailgun",
        fromAddress: `sender@${DOMAIN}`,
        settings: { domain: DOMAIN, apiKey: API_KEY, region: "us", baseUrl: peer.url },
      },
      { type: "system", id: null, label: "test" },
    );
    const url = `/api/email-servers/${other.id}/event-sources/mailgun`;
    expect((await t.request(t.admin, { method: "PUT", url, payload: { signingKey: SIGNING_KEY } })).statusCode).toBe(200);
    expect((await post(mailgunBody(delivered("a@b", "x@example.org"), SIGNING_KEY), other.id)).statusCode).toBe(200);
    expect((await t.request(t.admin, { method: "DELETE", url })).statusCode).toBe(204);
    expectError(
      await post(mailgunBody(delivered("a@b", "x@example.org"), SIGNING_KEY), other.id),
      404,
      "provider_events_not_set_up",
    );
    expectError(await t.request(t.admin, { method: "DELETE", url }), 404, "provider_events_not_set_up");
  });
});
