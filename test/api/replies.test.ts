/**
 * The replies the admin UI reads whose types are generated from the OpenAPI document: each
 * one whole, optional fields included. Fastify serializes a reply through its response schema
 * and silently drops what the schema lacks, so a field missing there fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { createServer, serverBody } from "./fixtures.js";

const SMTP_USER = "replies-user";
const SMTP_PASSWORD = "replies-pass-Qm4";

describe("the replies the UI reads keep every field", () => {
  let t: TestApp;
  let smtp: SmtpPeer;
  let relayId: string;
  let captureId: string;

  beforeAll(async () => {
    smtp = await startSmtpPeer({ security: "none", auth: { user: SMTP_USER, password: SMTP_PASSWORD } });
    t = await startTestApp("sqlite");
    const relay = await createServer(
      t,
      serverBody("smtp", "Relay", {
        settings: { host: smtp.host, port: smtp.port, security: "none", username: SMTP_USER, password: "wrong-password" },
      }),
    );
    relayId = relay.id;
    const list = await t.request(t.admin, { method: "GET", url: "/api/email-servers" });
    captureId = list.json().items.find((s: { driver: string }) => s.driver === "capture").id;
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  it("sign-in: the user, the CSRF token and whether the password must change", async () => {
    const res = await t.request(null, {
      method: "POST",
      url: "/api/auth/login",
      payload: { email: "admin@example.com", password: "correct horse battery staple" },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      user: expect.objectContaining({ email: "admin@example.com", superAdmin: true, permissions: expect.any(Array) }),
      csrfToken: expect.any(String),
      mustChangePassword: false,
    });
  });

  it("me: a session's user and CSRF token; a token's own description", async () => {
    const session = await t.request(t.admin, { method: "GET", url: "/api/auth/me" });
    expect(session.json()).toEqual({
      user: expect.objectContaining({ email: "admin@example.com", groups: [] }),
      csrfToken: t.admin.headers["x-csrf-token"],
    });
    const created = await t.request(t.admin, {
      method: "POST",
      url: "/api/tokens",
      payload: { name: "me-check", permissions: ["messages.send"], serverIds: [captureId] },
    });
    const token = created.json();
    const me = await t.request({ headers: { authorization: `Bearer ${token.token}` } }, { method: "GET", url: "/api/auth/me" });
    expect(me.json()).toEqual({
      token: { id: token.id, label: expect.stringContaining("me-check"), permissions: ["messages.send"], serverIds: [captureId] },
    });
  });

  it("a check: every step (the no-encryption warning too), the transcript and the server's own refusal", async () => {
    const res = await t.request(t.admin, {
      method: "POST",
      url: `/api/email-servers/${relayId}/test`,
      payload: { mode: "check" },
    });
    expect(res.statusCode, res.body).toBe(200);
    const report = res.json();
    expect(report).toEqual({
      ok: false,
      mode: "check",
      steps: expect.any(Array),
      transcript: expect.arrayContaining([expect.stringMatching(/^S: 535/)]),
      error: {
        code: "smtp_auth_failed",
        message: expect.any(String),
        hint: expect.any(String),
        remote: { code: 535, command: expect.any(String), response: expect.stringContaining("535") },
      },
    });
    expect(report.steps[0]).toEqual({ step: expect.any(String), ok: true, ms: expect.any(Number), detail: expect.any(String) });
    expect(report.steps).toContainEqual(expect.objectContaining({ ok: true, warning: true }));
  });

  it("a sent test: the message id, its delivery-log entry and the provider's id; a draft test the same steps", async () => {
    const res = await t.request(t.admin, {
      method: "POST",
      url: `/api/email-servers/${captureId}/test`,
      payload: { mode: "send", to: "someone@example.org" },
    });
    expect(res.json()).toEqual({
      ok: true,
      mode: "send",
      steps: expect.arrayContaining([expect.objectContaining({ step: "send", ok: true })]),
      transcript: expect.any(Array),
      messageId: expect.stringContaining("@"),
      logId: expect.any(String),
      providerMessageId: expect.any(String),
    });
    const draft = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers/test",
      payload: { mode: "check", to: "someone@example.org", server: { driver: "capture", settings: {} } },
    });
    expect(draft.json()).toEqual({ ok: true, mode: "check", steps: expect.any(Array), transcript: expect.any(Array) });
  });

  it("check now: the report and the server with its delivery state", async () => {
    const res = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${captureId}/probe` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      report: expect.objectContaining({ ok: true, mode: "check", steps: expect.any(Array) }),
      server: expect.objectContaining({ id: captureId, status: "ready", delivery: expect.objectContaining({ state: "closed" }) }),
    });
  });

  it("authorize and disconnect: the sign-in URL with its expiry; the server, whether revoked, and the notice", async () => {
    const gmail = await createServer(t, serverBody("gmail", "Gmail"));
    const start = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${gmail.id}/oauth/authorize` });
    expect(start.statusCode, start.body).toBe(200);
    expect(start.json()).toEqual({ authorizationUrl: expect.stringMatching(/^https:\/\//), expiresAt: expect.any(String) });
    const gone = await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${gmail.id}/oauth` });
    expect(gone.json()).toEqual({
      server: expect.objectContaining({ id: gmail.id, status: "not_authorized", oauthExpiresAt: null }),
      revoked: false,
      notice: "No account was authorized; there was nothing to revoke.",
    });
  });

  it("queueing: the id and status of one message, of a batch, of a released capture; clearing captured mail: how many", async () => {
    const one = await t.request(t.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { server: captureId, to: "a@example.org", subject: "one", text: "x" },
    });
    expect(one.statusCode, one.body).toBe(202);
    expect(one.json()).toEqual({ id: expect.any(String), status: "queued" });
    const batch = await t.request(t.admin, {
      method: "POST",
      url: "/api/messages/batch",
      payload: { messages: [{ server: captureId, to: "b@example.org", subject: "two", text: "x" }] },
    });
    expect(batch.json()).toEqual({ items: [{ id: expect.any(String), status: "queued" }], total: 1 });

    const captured = await t.request(t.admin, { method: "GET", url: `/api/capture/${captureId}/messages` });
    const first = captured.json().items[0].id;
    const released = await t.request(t.admin, {
      method: "POST",
      url: `/api/capture/${captureId}/messages/${first}/release`,
      payload: { server: captureId },
    });
    expect(released.statusCode, released.body).toBe(202);
    expect(released.json()).toEqual({ id: expect.any(String), status: "queued" });
    const cleared = await t.request(t.admin, { method: "DELETE", url: `/api/capture/${captureId}/messages` });
    expect(cleared.json()).toEqual({ deleted: captured.json().total });
  });

  it("webhooks: the secret once, the webhook, its deliveries with each attempt", async () => {
    const created = await t.request(t.admin, {
      method: "POST",
      url: "/api/webhooks",
      payload: { url: "https://hooks.example.com/mailroom", events: ["sent", "failed"], description: "Billing" },
    });
    expect(created.statusCode, created.body).toBe(201);
    const webhook = {
      id: expect.any(String),
      url: "https://hooks.example.com/mailroom",
      events: ["sent", "failed"],
      enabled: true,
      description: "Billing",
      owner: { type: "user", id: expect.any(String), label: "admin@example.com" },
      active: true,
      silencedBecause: null,
      previousSecretUntil: null,
      createdAt: expect.any(String),
      createdBy: "admin@example.com",
      updatedAt: expect.any(String),
    };
    expect(created.json()).toEqual({ ...webhook, secret: expect.stringMatching(/^whsec_/) });
    const { id } = created.json();
    const rotated = await t.request(t.admin, { method: "POST", url: `/api/webhooks/${id}/rotate-secret` });
    expect(rotated.json()).toEqual({
      ...webhook,
      previousSecretUntil: expect.any(String),
      secret: expect.stringMatching(/^whsec_/),
    });
    const list = await t.request(t.admin, { method: "GET", url: "/api/webhooks" });
    expect(list.json()).toEqual({ items: [{ ...webhook, previousSecretUntil: expect.any(String) }], total: 1 });
    // No network here: the ping goes to an address refused before connecting, and says so.
    await t.mailroom.ctx.db.updateTable("webhooks").set({ url: "http://169.254.169.254/x" }).where("id", "=", id).execute();
    const ping = await t.request(t.admin, { method: "POST", url: `/api/webhooks/${id}/test` });
    const delivery = {
      id: expect.any(String),
      webhookId: id,
      messageId: null,
      type: "test",
      status: "failed",
      attempts: 1,
      nextAttemptAt: null,
      lastError: expect.stringContaining("endpoint_not_allowed"),
      createdAt: expect.any(String),
      deliveredAt: null,
      payload: { type: "webhook.test", timestamp: expect.any(String), data: expect.objectContaining({ webhookId: id }) },
      attemptLog: [
        { at: expect.any(String), durationMs: expect.any(Number), httpStatus: null, error: expect.any(String), response: null },
      ],
    };
    expect(ping.json()).toEqual(delivery);
    const deliveries = await t.request(t.admin, { method: "GET", url: `/api/webhooks/${id}/deliveries` });
    expect(deliveries.json()).toEqual({ items: [delivery], total: 1 });
  });

  it("the audit log's filters: its actions and its actors", async () => {
    const res = await t.request(t.admin, { method: "GET", url: "/api/audit/filters" });
    expect(res.json()).toEqual({
      actions: expect.arrayContaining(["email_server.create"]),
      actors: [{ type: "user", id: expect.any(String), label: expect.stringContaining("admin@example.com") }],
    });
  });
});
