import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";

const PNG = Buffer.from("89504e470d0a1a0a0000000d4948445200000001000000010806000000", "hex").toString("base64");

describe.each(await availableDialects())("messages API on %s", (dialect) => {
  let t: TestApp;
  let app: Caller;
  let captureId: string;

  beforeAll(async () => {
    t = await startTestApp(dialect, { MAILROOM_POLL_MS: "50" });
    const { token } = await t.mailroom.tokens.create(
      { name: "app", permissions: ["messages.send", "messages.view"] },
      systemActor,
      null,
    );
    app = { headers: { authorization: `Bearer ${token}` } };
    captureId = (await t.mailroom.servers.getRow("Capture")).id;
    t.mailroom.worker.start();
  });
  afterAll(() => t.close());

  const send = (body: object, caller: Caller = app) => t.request(caller, { method: "POST", url: "/api/messages", payload: body });
  const total = async () => (await t.request(app, { method: "GET", url: "/api/messages?limit=1" })).json().total as number;

  it("queues a message, delivers it through the default server and logs the attempt", async () => {
    const res = await send({
      to: ["Zoë <zoe@example.com>"],
      cc: "cc@example.com",
      subject: "Grüße aus Köln ✉",
      text: "Hallo",
      html: '<p>Hallo <img src="cid:logo@x"></p>',
      attachments: [
        { filename: "notes.txt", contentType: "text/plain", content: Buffer.from("notes").toString("base64") },
        { filename: "logo.png", contentType: "image/png", content: PNG, contentId: "logo@x" },
      ],
      headers: { "X-Ticket": "T-1" },
    });
    expect(res.statusCode).toBe(202);
    const { id, status } = res.json();
    expect(status).toBe("queued");
    const sent = await waitFor("the message to be sent", async () => {
      const m = (await t.request(app, { method: "GET", url: `/api/messages/${id}` })).json();
      return m.status === "sent" ? m : null;
    });
    expect(sent.server.name).toBe("Capture");
    expect(sent.from.address).toBe("noreply@mailroom.localhost");
    expect(sent.attempts).toHaveLength(1);
    expect(sent.attempts[0]).toMatchObject({ outcome: "sent", errorCode: null });
    expect(sent.providerMessageId).toBeTruthy();
    expect(sent.messageId).toMatch(/@mailroom\.localhost$/);

    const captured = (
      await t.request(t.admin, { method: "GET", url: `/api/capture/${captureId}/messages/${sent.providerMessageId}` })
    ).json();
    expect(captured.parsed.subject).toBe("Grüße aus Köln ✉");
    expect(captured.parsed.text.trim()).toBe("Hallo");
    expect(captured.parsed.to).toEqual([{ address: "zoe@example.com", name: "Zoë" }]);
    expect(captured.parsed.attachments.map((a: { filename: string }) => a.filename).sort()).toEqual(["logo.png", "notes.txt"]);
    expect(captured.parsed.attachments.find((a: { filename: string }) => a.filename === "logo.png").contentId).toBe("logo@x");
    expect(captured.parsed.headers).toContainEqual({ key: "x-ticket", value: "T-1" });
    expect(captured.raw).toContain(`Message-ID: <${sent.messageId}>`);
  });

  it("counts what happened in /metrics", async () => {
    const text = (await t.request(null, { method: "GET", url: "/metrics" })).body;
    expect(text).toMatch(/mailroom_delivery_attempts_total\{server="Capture",outcome="sent"\} [1-9]/);
    expect(text).toMatch(/mailroom_messages\{server="Capture",status="sent"\} [1-9]/);
    expect(text).toContain("mailroom_queue_depth ");
    expect(text).toContain("mailroom_queue_oldest_age_seconds ");
    expect(text).toMatch(/mailroom_delivery_latency_seconds_count\{server="Capture"\} [1-9]/);
    expect(text).toMatch(/mailroom_http_requests_total\{method="POST",route="\/api\/messages",status="202"\} [1-9]/);
  });

  it("returns the first message for a repeated idempotency key", async () => {
    const body = { to: "a@example.com", subject: "once", text: "x", idempotencyKey: `key-${dialect}` };
    const first = await send(body);
    const again = await send(body);
    expect(first.statusCode).toBe(202);
    expect(again.statusCode).toBe(202);
    expect(again.json().id).toBe(first.json().id);
    expect(again.headers["idempotent-replay"]).toBe("true");
  });

  it("stores a key repeated within one batch once", async () => {
    const res = await t.request(app, {
      method: "POST",
      url: "/api/messages/batch",
      payload: {
        messages: [
          { to: "a@example.com", subject: "1", idempotencyKey: `batch-${dialect}` },
          { to: "b@example.com", subject: "2" },
          { to: "a@example.com", subject: "1", idempotencyKey: `batch-${dialect}` },
        ],
      },
    });
    expect(res.statusCode).toBe(202);
    const [first, second, third] = res.json().items;
    expect(third.id).toBe(first.id);
    expect(second.id).not.toBe(first.id);
  });

  it("queues a batch in one transaction: all or nothing", async () => {
    const before = await total();
    const bad = await t.request(app, {
      method: "POST",
      url: "/api/messages/batch",
      payload: {
        messages: [
          { to: "a@example.com", subject: "1" },
          { to: "not an address", subject: "2" },
        ],
      },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: "invalid_address" });
    expect(bad.json().details[0].field).toBe("messages[1].to");
    expect(await total()).toBe(before);

    const good = await t.request(app, {
      method: "POST",
      url: "/api/messages/batch",
      payload: { messages: Array.from({ length: 50 }, (_, i) => ({ to: `r${i}@example.com`, subject: `n${i}` })) },
    });
    expect(good.statusCode).toBe(202);
    expect(good.json().total).toBe(50);
    expect(await total()).toBe(before + 50);
  });

  it.each([
    [
      "CR/LF in the subject",
      { to: "a@example.com", subject: "Hi\r\nBcc: victim@example.com" },
      400,
      "header_injection",
      "subject",
    ],
    [
      "CR/LF in a header",
      { to: "a@example.com", subject: "x", headers: { "X-A": "1\nBcc: v@example.com" } },
      400,
      "header_injection",
      "headers.X-A",
    ],
    [
      "LF in a recipient name",
      { to: [{ address: "a@example.com", name: "A\nB" }], subject: "x" },
      400,
      "header_injection",
      "to.name",
    ],
    [
      "a reserved header",
      { to: "a@example.com", subject: "x", headers: { Bcc: "v@example.com" } },
      400,
      "validation_failed",
      "headers.Bcc",
    ],
    ["no recipient", { subject: "x" }, 400, "invalid_address", "to"],
    ["a bad address", { to: "a@@example", subject: "x" }, 400, "invalid_address", "to"],
    ["no subject and no body", { to: "a@example.com" }, 400, "empty_message", undefined],
    ["an unknown field", { to: "a@example.com", subject: "x", priority: "high" }, 400, "unknown_field", "priority"],
    ["a wrong type", { to: "a@example.com", subject: 5 }, 400, "validation_failed", "subject"],
    ["an unknown server", { server: "nope", to: "a@example.com", subject: "x" }, 404, "email_server_not_found", undefined],
    [
      "a from the server may not use",
      { from: "ceo@elsewhere.com", to: "a@example.com", subject: "x" },
      400,
      "from_not_allowed",
      "from",
    ],
    [
      "attachment content that is not base64",
      { to: "a@example.com", subject: "x", attachments: [{ filename: "a", content: "%%%" }] },
      400,
      "invalid_attachment",
      "attachments[0].content",
    ],
  ])("refuses %s and stores nothing", async (_what, body, status, code, field) => {
    const before = await total();
    const res = await send(body);
    expect(res.statusCode).toBe(status);
    expect(res.json().code).toBe(code);
    if (field) expect(JSON.stringify(res.json())).toContain(field);
    expect(await total()).toBe(before);
  });

  it("refuses more than 500 recipients and bodies over 10 MB", async () => {
    const many = await send({ to: Array.from({ length: 501 }, (_, i) => `r${i}@example.com`), subject: "x" });
    expect(many.json().code).toBe("too_many_recipients");
    const huge = await send({ to: "a@example.com", subject: "x", text: "a".repeat(10 * 1024 * 1024 + 1) });
    expect(huge.statusCode).toBe(413);
    expect(huge.json().code).toBe("body_too_large");
  });

  it("allows a from address the server's allow-list permits", async () => {
    await t.mailroom.servers.setSetting("Capture", "allowedFromAddresses", ["*@example.org"], systemActor);
    const res = await send({ from: "Sales <sales@example.org>", to: "a@example.com", subject: "x" });
    expect(res.statusCode).toBe(202);
  });

  it("holds mail for a server that cannot send yet, and keeps the log of a deleted server", async () => {
    const gmail = await t.mailroom.servers.create(
      { name: "Gmail", driver: "gmail", fromAddress: "me@example.com", settings: { clientId: "id", clientSecret: "secret" } },
      systemActor,
    );
    expect(gmail.status).toBe("not_authorized");
    const res = await send({ server: "Gmail", to: "a@example.com", subject: "held" });
    expect(res.json().status).toBe("held");
    const held = (await t.request(app, { method: "GET", url: `/api/messages/${res.json().id}` })).json();
    expect(held.lastError.code).toBe("server_not_ready");

    await t.mailroom.servers.remove(gmail.id, systemActor);
    const log = (await t.request(app, { method: "GET", url: `/api/messages?server=${gmail.id}` })).json();
    expect(log.total).toBe(1);
    expect(log.items[0].server).toEqual({ id: gmail.id, name: "Gmail" });
  });

  it("keeps a token limited to some servers to those servers", async () => {
    const other = await t.mailroom.servers.create(
      { name: "Other", driver: "capture", fromAddress: "o@example.com" },
      systemActor,
    );
    const { token } = await t.mailroom.tokens.create(
      { name: "limited", permissions: ["messages.send"], serverIds: [other.id] },
      systemActor,
      null,
    );
    const limited = { headers: { authorization: `Bearer ${token}` } };
    expect((await send({ server: "Other", to: "a@example.com", subject: "x" }, limited)).statusCode).toBe(202);
    const denied = await send({ to: "a@example.com", subject: "x" }, limited);
    expect(denied.statusCode).toBe(403);
    expect(denied.json().code).toBe("server_not_allowed");
  });

  it("filters the log by status, recipient and time, and retries only failed or held messages", async () => {
    const res = await send({ to: "filter-me@example.com", subject: "f" });
    const id = res.json().id;
    await waitFor("sent", async () => (await t.mailroom.messages.getRow(id)).status === "sent");
    const byRecipient = (await t.request(app, { method: "GET", url: "/api/messages?recipient=FILTER-ME" })).json();
    expect(byRecipient.items.map((m: { id: string }) => m.id)).toEqual([id]);
    const future = (await t.request(app, { method: "GET", url: "/api/messages?since=2999-01-01T00:00:00Z" })).json();
    expect(future.total).toBe(0);
    const sent = (await t.request(app, { method: "GET", url: "/api/messages?status=sent&limit=500" })).json();
    expect(sent.items.every((m: { status: string }) => m.status === "sent")).toBe(true);
    const retry = await t.request(app, { method: "POST", url: `/api/messages/${id}/retry` });
    expect(retry.statusCode).toBe(409);
    expect(retry.json().code).toBe("message_not_retryable");
  });
});
