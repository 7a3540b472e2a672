/**
 * The alerts API: channels (create, read, change, delete, test), thresholds, the incident
 * history; its validation, audit and permission; and the secrets it holds (a webhook's signing
 * secret, a Slack URL) never in a reply after the first, a log line, an audit entry or the database.
 */
import fs from "node:fs";
import path from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { verifyWebhook } from "../../src/events/signing.js";
import { expectError } from "../api/fixtures.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { type Receiver, startReceiver } from "./alert-receiver.js";

const SLACK_PATH = `/services/T0ALERTS/B0ALERTS/${"slackSecretPart".repeat(2)}${Math.random().toString(36).slice(2)}`;

describe.each(await availableDialects())("the alerts API on %s", (dialect) => {
  let t: TestApp;
  let receiver: Receiver;
  let peer: SmtpPeer;
  const ahead = 0;
  const responses: string[] = [];
  const call = async (...args: Parameters<TestApp["request"]>) => {
    const res = await t.request(...args);
    responses.push(res.body);
    return res;
  };
  let signingSecret = "";
  let webhookId = "";
  let slackId = "";

  beforeAll(async () => {
    receiver = await startReceiver();
    peer = await startSmtpPeer({ security: "none" });
    t = await startTestApp(
      dialect,
      { MAILROOM_ALLOWED_ENDPOINTS: receiver.origin, MAILROOM_POLL_MS: "20" },
      { clock: () => Date.now() + ahead },
    );
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
    await peer?.close();
  });

  it("creates a webhook channel: the signing secret once, then only {set: true}", async () => {
    const res = await call(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      payload: { name: "Ops webhook", type: "webhook", url: receiver.url("/mailroom") },
    });
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json();
    expect(created).toMatchObject({
      name: "Ops webhook",
      type: "webhook",
      enabled: true,
      url: receiver.url("/mailroom"),
      host: `127.0.0.1:${receiver.port}`,
      secret: { set: true },
      warning: null,
    });
    expect(created.signingSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    signingSecret = created.signingSecret;
    webhookId = created.id;
    const read = await call(t.admin, { method: "GET", url: `/api/alerts/channels/${webhookId}` });
    // The whole reply, as the UI reads it: a field the response schema lacked would be dropped.
    expect(read.json()).toEqual({
      id: webhookId,
      name: "Ops webhook",
      type: "webhook",
      enabled: true,
      url: receiver.url("/mailroom"),
      host: `127.0.0.1:${receiver.port}`,
      secret: { set: true },
      server: null,
      recipients: [],
      warning: null,
      createdAt: created.createdAt,
      updatedAt: created.updatedAt,
    });
    expect(read.body).not.toContain(signingSecret);
  });

  it("creates a Slack channel whose URL is write-only: only its host is shown", async () => {
    const res = await call(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      payload: { name: "Slack #ops", type: "slack", url: receiver.url(SLACK_PATH) },
    });
    expect(res.statusCode, res.body).toBe(201);
    const created = res.json();
    expect(created).toMatchObject({ type: "slack", url: null, host: `127.0.0.1:${receiver.port}`, secret: { set: true } });
    expect(created.signingSecret).toBeUndefined();
    expect(res.body).not.toContain("slackSecretPart");
    slackId = created.id;
  });

  it("sends a test from the API and answers what happened: delivered, signed; a Slack-shaped body", async () => {
    receiver.received.length = 0;
    const res = await call(t.admin, { method: "POST", url: `/api/alerts/channels/${webhookId}/test` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      outcome: "delivered",
      channel: { id: webhookId, name: "Ops webhook", type: "webhook" },
      responseStatus: 200,
      ms: expect.any(Number),
      error: null,
      message: null,
    });
    expect(receiver.received).toHaveLength(1);
    const got = receiver.received[0];
    expect(got.path).toBe("/mailroom");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["webhook-signature"]).toMatch(/^v1,/);
    const ts = Number(got.headers["webhook-timestamp"]);
    expect(verifyWebhook(signingSecret, got.headers, got.body, ts)).toBe(true);
    // A body changed on the way, or another secret, does not verify.
    expect(verifyWebhook(signingSecret, got.headers, got.body.replace("test", "tset"), ts)).toBe(false);
    expect(verifyWebhook(`whsec_${Buffer.alloc(32).toString("base64")}`, got.headers, got.body, ts)).toBe(false);
    expect(got.json).toMatchObject({ type: "alert.test", id: got.headers["webhook-id"], data: { kind: "test" } });

    const slack = await call(t.admin, { method: "POST", url: `/api/alerts/channels/${slackId}/test` });
    expect(slack.json()).toMatchObject({ outcome: "delivered", responseStatus: 200 });
    const chat = receiver.received[1];
    expect(chat.path).toBe(SLACK_PATH);
    expect(Object.keys(chat.json)).toEqual(["text"]);
    expect(chat.json.text).toContain("[Mailroom] TEST");
    expect(chat.headers["webhook-signature"]).toBeUndefined();
  });

  it("a test the receiver refuses answers its status and the fix; one that reaches nothing, the network error", async () => {
    receiver.answer(410, "no_service");
    const gone = (await call(t.admin, { method: "POST", url: `/api/alerts/channels/${slackId}/test` })).json();
    expect(gone).toMatchObject({ outcome: "failed", responseStatus: 410, error: { code: "alert_receiver_error" } });
    expect(gone.error.message).toContain("HTTP 410");
    expect(gone.error.message).toContain("no_service");
    expect(gone.error.message).toMatch(/create a new one/);
    expect(gone.error.hint).toMatch(/removed at the receiver/);
    receiver.answer(200);

    // A port nothing listens on, that the operator lists: refused.
    const closed = await startReceiver();
    await closed.close();
    const listed = await startTestApp(dialect, { MAILROOM_ALLOWED_ENDPOINTS: closed.origin });
    try {
      const made = await listed.request(listed.admin, {
        method: "POST",
        url: "/api/alerts/channels",
        payload: { name: "Down", type: "webhook", url: closed.url() },
      });
      expect(made.statusCode, made.body).toBe(201);
      const down = (
        await listed.request(listed.admin, { method: "POST", url: `/api/alerts/channels/${made.json().id}/test` })
      ).json();
      expect(down).toMatchObject({ outcome: "failed", responseStatus: null, error: { code: "connection_refused" } });
      expect(down.error.hint).toMatch(/Nothing accepts connections/);
    } finally {
      await listed.close();
    }
  });

  it("an email channel's test is queued through its server and delivered there", async () => {
    const relay = await t.mailroom.servers.create(
      {
        name: "Relay",
        driver: "smtp",
        fromAddress: "mailroom@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
    const res = await call(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      payload: { name: "Ops mail", type: "email", serverId: relay.id, recipients: ["ops@example.com", " oncall@example.com "] },
    });
    expect(res.statusCode, res.body).toBe(201);
    const channel = res.json();
    expect(channel).toMatchObject({
      server: { id: relay.id, name: "Relay" },
      recipients: ["ops@example.com", "oncall@example.com"],
    });
    // Capture keeps mail; Relay is the only server that delivers.
    expect(channel.warning).toMatch(/This is your only server/);
    const tested = (await call(t.admin, { method: "POST", url: `/api/alerts/channels/${channel.id}/test` })).json();
    expect(tested).toMatchObject({ outcome: "queued", message: { id: expect.any(String), server: "Relay" }, error: null });
    t.mailroom.worker.start();
    await waitFor("the test alert at the peer", async () => peer.received.length === 1);
    await t.mailroom.worker.stop();
    expect(peer.received[0].subject).toContain("[Mailroom] TEST");
    expect([...peer.received[0].to].sort()).toEqual(["oncall@example.com", "ops@example.com"]);
  });

  it("changes a channel: omitted fields kept, a new Slack URL replaces the old, rotateSecret shows a new secret once", async () => {
    const renamed = await call(t.admin, {
      method: "PUT",
      url: `/api/alerts/channels/${slackId}`,
      payload: { name: "Slack #alerts", enabled: false },
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json()).toMatchObject({ name: "Slack #alerts", enabled: false, host: `127.0.0.1:${receiver.port}` });
    const stored = await t.mailroom.alerts.channels.getRow(slackId);
    expect(t.mailroom.alerts.channels.secretOf(stored)).toBe(receiver.url(SLACK_PATH));

    const rotated = await call(t.admin, {
      method: "PUT",
      url: `/api/alerts/channels/${webhookId}`,
      payload: { rotateSecret: true },
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    expect(rotated.json().signingSecret).toMatch(/^whsec_/);
    expect(rotated.json().signingSecret).not.toBe(signingSecret);
    signingSecret = rotated.json().signingSecret;
    const again = await call(t.admin, { method: "PUT", url: `/api/alerts/channels/${webhookId}`, payload: { name: "Ops hook" } });
    expect(again.json().signingSecret).toBeUndefined();
  });

  it("refuses bad input with a stable code, naming the field, and stores nothing", async () => {
    const before = (await call(t.admin, { method: "GET", url: "/api/alerts/channels" })).json().total;
    const post = (payload: unknown) => call(t.admin, { method: "POST", url: "/api/alerts/channels", payload: payload as object });
    const cases: [unknown, number, string, string][] = [
      [{ name: "x", type: "webhook", url: receiver.url(), colour: "red" }, 400, "unknown_field", "colour"],
      [{ name: "x", type: "pager", url: receiver.url() }, 400, "validation_failed", "type"],
      [{ name: 5, type: "webhook", url: receiver.url() }, 400, "validation_failed", "name"],
      [{ name: "x", type: "webhook" }, 400, "validation_failed", "url"],
      [{ name: "x", type: "webhook", url: "ftp://example.com/x" }, 400, "validation_failed", "url"],
      [{ name: "x", type: "webhook", url: "https://user:pw@example.com/x" }, 400, "validation_failed", "url"],
      // Link-local and metadata: never; loopback and private: not unless listed; plain http: not unless listed.
      [{ name: "x", type: "webhook", url: "https://169.254.169.254/latest" }, 400, "validation_failed", "url"],
      [{ name: "x", type: "webhook", url: "https://127.0.0.1:9/x" }, 400, "validation_failed", "url"],
      [{ name: "x", type: "webhook", url: "https://10.1.2.3/x" }, 400, "validation_failed", "url"],
      [{ name: "x", type: "slack", url: "http://hooks.example.com/x" }, 400, "validation_failed", "url"],
      [{ name: "x", type: "webhook", url: `https://example.com/${"a".repeat(2100)}` }, 400, "validation_failed", "url"],
      [{ name: "x\r\nInjected: yes", type: "webhook", url: receiver.url() }, 400, "control_characters", "name"],
      [{ name: "x", type: "email", recipients: ["ops@example.com"] }, 400, "validation_failed", "serverId"],
      [{ name: "x", type: "email", serverId: "nope", recipients: ["ops@example.com"] }, 400, "validation_failed", "serverId"],
      [
        { name: "x", type: "email", serverId: "Capture", recipients: ["not an address"] },
        400,
        "validation_failed",
        "recipients.0",
      ],
      [{ name: "x", type: "email", serverId: "Capture", recipients: [] }, 400, "validation_failed", "recipients"],
      [{ name: "x", type: "slack", url: receiver.url(), serverId: "x" }, 400, "validation_failed", "serverId"],
      [{ name: "x", type: "webhook", url: receiver.url(), enabled: "yes" }, 400, "validation_failed", "enabled"],
    ];
    for (const [payload, status, code, field] of cases) {
      const res = await post(payload);
      const body = expectError(res, status, code);
      expect(JSON.stringify(body.details ?? body.message), JSON.stringify(payload).slice(0, 120)).toContain(field);
    }
    const metadata = await post({ name: "x", type: "webhook", url: "https://169.254.169.254/latest" });
    expect(metadata.json().message).toMatch(/never posts alerts there/);
    const loopback = await post({ name: "x", type: "webhook", url: "https://127.0.0.1:9/x" });
    expect(loopback.json().message).toMatch(/MAILROOM_ALLOWED_ENDPOINTS/);
    expectError(await call(t.admin, { method: "GET", url: "/api/alerts/channels/nope" }), 404, "alert_channel_not_found");
    expectError(
      await call(t.admin, { method: "PUT", url: `/api/alerts/channels/${slackId}`, payload: { type: "webhook" } }),
      400,
      "validation_failed",
    );
    expectError(
      await call(t.admin, { method: "PUT", url: `/api/alerts/channels/${slackId}`, payload: { rotateSecret: true } }),
      400,
      "validation_failed",
    );
    expect((await call(t.admin, { method: "GET", url: "/api/alerts/channels" })).json().total).toBe(before);
  });

  it("thresholds: defaults, a full PUT (null turns a check off), bad values refused naming the field; audited", async () => {
    const read = (await call(t.admin, { method: "GET", url: "/api/settings/alerts" })).json();
    expect(read).toEqual({ updatedAt: null, updatedBy: null, thresholds: read.defaults, defaults: read.defaults });
    expect(Object.keys(read.defaults).sort()).toEqual([
      "clientSecretWarnDays",
      "failureRateMinMessages",
      "failureRatePercent",
      "failureRateWindowMinutes",
      "googleTestingWarnDays",
      "heldMessages",
      "microsoftIdleWarnDays",
      "queueAgeMinutes",
    ]);
    expect(read.defaults).toMatchObject({
      heldMessages: 100,
      queueAgeMinutes: 30,
      failureRatePercent: 20,
      clientSecretWarnDays: [30, 7],
    });
    const next = { ...read.defaults, heldMessages: null, clientSecretWarnDays: [7, 30, 14] };
    const put = await call(t.admin, { method: "PUT", url: "/api/settings/alerts", payload: next });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json()).toMatchObject({
      thresholds: { heldMessages: null, clientSecretWarnDays: [30, 14, 7] },
      updatedBy: "admin@example.com",
    });
    const bad: [Record<string, unknown>, string, string][] = [
      [{ ...next, queueAgeMinutes: "30" }, "validation_failed", "queueAgeMinutes"],
      [{ ...next, failureRatePercent: 101 }, "validation_failed", "failureRatePercent"],
      [{ ...next, failureRateWindowMinutes: null }, "validation_failed", "failureRateWindowMinutes"],
      [{ ...next, clientSecretWarnDays: [7, 7] }, "validation_failed", "clientSecretWarnDays"],
      [{ ...next, extra: 1 }, "unknown_field", "extra"],
    ];
    for (const [payload, code, field] of bad) {
      const body = expectError(await call(t.admin, { method: "PUT", url: "/api/settings/alerts", payload }), 400, code);
      expect(body.message).toContain(field);
    }
    const { heldMessages: _omitted, ...missing } = next;
    expectError(await call(t.admin, { method: "PUT", url: "/api/settings/alerts", payload: missing }), 400, "validation_failed");
    expect((await call(t.admin, { method: "GET", url: "/api/settings/alerts" })).json().thresholds.heldMessages).toBeNull();
  });

  it("needs alerts.manage: others are refused, a holder of it is not", async () => {
    const viewer = await t.userWith(["email-servers.view", "settings.update", "messages.view"]);
    for (const [method, url] of [
      ["GET", "/api/alerts/channels"],
      ["GET", "/api/alerts/incidents"],
      ["GET", "/api/settings/alerts"],
      ["POST", `/api/alerts/channels/${webhookId}/test`],
    ] as const) {
      const body = expectError(await call(viewer, { method, url }), 403, "forbidden");
      expect(body.details).toEqual({ permission: "alerts.manage" });
    }
    const manager = await t.userWith(["alerts.manage"]);
    expect((await call(manager, { method: "GET", url: "/api/alerts/channels" })).statusCode).toBe(200);
  });

  it("records every change in the audit log, without a secret", async () => {
    const res = await call(t.admin, { method: "DELETE", url: `/api/alerts/channels/${slackId}` });
    expect(res.statusCode).toBe(204);
    const rows = await t.mailroom.ctx.db.selectFrom("audit_log").selectAll().where("action", "like", "%alerts%").execute();
    const actions = rows.map((r) => r.action);
    for (const action of [
      "alerts.channel.create",
      "alerts.channel.update",
      "alerts.channel.delete",
      "alerts.channel.test",
      "settings.alerts.update",
    ]) {
      expect(actions).toContain(action);
    }
    expect(JSON.stringify(rows)).toContain("[secret changed]");
  });

  it("the Slack URL and the signing secrets are in no reply but their first, no log line, no audit entry, nowhere in the database", async () => {
    const secrets = [signingSecret, SLACK_PATH, "slackSecretPart"];
    const repliesAfterCreation = responses.filter((r) => !r.includes('"signingSecret"'));
    expect(repliesAfterCreation.length).toBeGreaterThan(10);
    for (const s of secrets) {
      expect(repliesAfterCreation.join("\n")).not.toContain(s);
      expect(t.logs.join("")).not.toContain(s);
    }
    if (dialect === "sqlite") {
      const dir = t.mailroom.ctx.config.dataDir;
      for (const file of fs.readdirSync(dir).filter((f) => f.startsWith("mailroom.db"))) {
        const content = fs.readFileSync(path.join(dir, file));
        for (const s of secrets) {
          expect(content.toString("latin1").includes(s), file).toBe(false);
          expect(content.toString("utf16le").includes(s), file).toBe(false);
        }
      }
    } else {
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`.execute(
        t.mailroom.ctx.db,
      );
      for (const { table_name } of tables.rows) {
        const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(table_name)} t`.execute(t.mailroom.ctx.db);
        const text = rows.rows.map((r) => r.row).join("\n");
        for (const s of secrets) expect(text.includes(s), table_name).toBe(false);
      }
    }
  });
});
