/**
 * The alert an admin gets when a server turns failing, and when it recovers: once each, not
 * once per message. A server with a wrong password and many messages opens its breaker; the
 * transition nudges the alerts (no schedule runs here), a local webhook receiver gets one
 * signed alert and a Slack-shaped one; the admin fixes the password, a probe passes, and each
 * receiver gets one recovery. An alert the receiver refuses for a while is retried, not lost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { ALERT_BACKOFF_MS } from "../../src/events/alerts/dispatch.js";
import { verifyWebhook } from "../../src/events/signing.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { type Receiver, startReceiver } from "./alert-receiver.js";

const COUNT = 60;

describe.each(await availableDialects())("alerts on a failing server on %s", (dialect) => {
  let t: TestApp;
  let receiver: Receiver;
  let peer: SmtpPeer;
  let ahead = 0;
  const clock = () => Date.now() + ahead;
  let secret = "";

  const hooks = () => receiver.received.filter((r) => r.path === "/hook");
  const chats = () => receiver.received.filter((r) => r.path === "/slack/T0/B0/chat-secret");

  beforeAll(async () => {
    receiver = await startReceiver();
    peer = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    t = await startTestApp(
      dialect,
      {
        MAILROOM_ALLOWED_ENDPOINTS: receiver.origin,
        MAILROOM_POLL_MS: "20",
        MAILROOM_RETRY_SCHEDULE: "0.1,0.2",
        MAILROOM_BREAKER_THRESHOLD: "3",
        // Probes only when the admin fixes the server: the recovery comes from that probe.
        MAILROOM_PROBE_SCHEDULE: "600",
      },
      { clock },
    );
    const hook = await t.request(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      payload: { name: "Ops", type: "webhook", url: receiver.url("/hook") },
    });
    expect(hook.statusCode, hook.body).toBe(201);
    secret = hook.json().signingSecret;
    const slack = await t.request(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      payload: { name: "Chat", type: "slack", url: receiver.url("/slack/T0/B0/chat-secret") },
    });
    expect(slack.statusCode, slack.body).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
    await peer?.close();
  });

  const verified = (r: Receiver["received"][number]) =>
    verifyWebhook(secret, r.headers, r.body, Number(r.headers["webhook-timestamp"]), 0) &&
    Math.abs(Number(r.headers["webhook-timestamp"]) - Math.floor(clock() / 1000)) < 120;

  it("one alert when the server turns failing with many messages, one when it recovers", async () => {
    const server = await t.mailroom.servers.create(
      {
        name: "Relay",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none", username: "app", password: "wrong-password" },
      },
      systemActor,
    );
    for (let i = 0; i < COUNT; i++) {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/messages",
        payload: { server: server.id, to: `r${i}@example.com`, subject: `m${i}`, text: "x" },
      });
      expect(res.statusCode, res.body).toBe(202);
    }
    t.mailroom.worker.start();
    await waitFor("the server failing, its mail held", async () => {
      const held = await t.mailroom.ctx.db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("status", "=", "held")
        .executeTakeFirstOrThrow();
      return (await t.mailroom.servers.get(server.id)).status === "failing" && Number(held.n) === COUNT;
    });
    // The breaker's opening nudged the alerts: no schedule runs in this test.
    await waitFor("the failing alert", async () => hooks().length === 1 && chats().length === 1);
    await t.mailroom.alerts.idle();
    // More evaluations, and more failures, change nothing: one incident, one alert per channel.
    for (let i = 0; i < 3; i++) await t.mailroom.alerts.tick();
    await t.mailroom.breakers.recordServerProblem(server.id, "again");
    await t.mailroom.alerts.tick();
    expect(hooks()).toHaveLength(1);
    expect(chats()).toHaveLength(1);

    const opened = hooks()[0];
    expect(verified(opened)).toBe(true);
    expect(opened.json).toMatchObject({
      type: "alert.opened",
      id: opened.headers["webhook-id"],
      data: { kind: "server_failing", subject: { type: "email_server", id: server.id, name: "Relay" } },
    });
    expect(String((opened.json.data as { detail: string }).detail)).toMatch(/535|password|rejected/i);
    expect(chats()[0].json.text).toMatch(/^\[Mailroom\] ALERT: Email server 'Relay' is failing/);

    // The admin fixes the password: a probe runs at once, passes, closes the breaker.
    const fixed = await t.request(t.admin, {
      method: "PATCH",
      url: `/api/email-servers/${server.id}/settings/password`,
      payload: { value: "right-password" },
    });
    expect(fixed.statusCode, fixed.body).toBe(200);
    await waitFor("the recovery alert", async () => hooks().length === 2 && chats().length === 2);
    await waitFor("every message sent", async () => {
      const sent = await t.mailroom.ctx.db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("status", "=", "sent")
        .executeTakeFirstOrThrow();
      return Number(sent.n) === COUNT;
    });
    await t.mailroom.worker.stop();
    for (let i = 0; i < 3; i++) await t.mailroom.alerts.tick();
    expect(hooks()).toHaveLength(2);
    expect(chats()).toHaveLength(2);
    const resolved = hooks()[1];
    expect(verified(resolved)).toBe(true);
    expect(resolved.headers["webhook-id"]).not.toBe(opened.headers["webhook-id"]);
    expect(resolved.json).toMatchObject({ type: "alert.resolved", data: { kind: "server_failing", subject: { id: server.id } } });
    expect(chats()[1].json.text).toMatch(/^\[Mailroom\] RESOLVED: Email server 'Relay' is sending again/);

    // The history: one incident, resolved, with each notification's result.
    const history = (await t.request(t.admin, { method: "GET", url: "/api/alerts/incidents" })).json();
    expect(history.total).toBe(1);
    const [incident] = history.items;
    expect(incident).toMatchObject({ kind: "server_failing", open: false, subject: { id: server.id, name: "Relay" } });
    expect(incident.notifications.map((n: { event: string; status: string }) => `${n.event}:${n.status}`).sort()).toEqual([
      "opened:delivered",
      "opened:delivered",
      "resolved:delivered",
      "resolved:delivered",
    ]);
  }, 60_000);

  it("an alert the receiver refuses is tried again after its backoff, with the same id, and delivered", async () => {
    receiver.received.length = 0;
    receiver.answer(503, "down for maintenance");
    const other = await t.mailroom.servers.create(
      {
        name: "Backup",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
    await t.mailroom.breakers.open(other.id, "connection refused");
    await t.mailroom.alerts.idle();
    expect(hooks()).toHaveLength(1);
    const [row] = await t.mailroom.ctx.db
      .selectFrom("alert_notifications")
      .selectAll()
      .where("channel_name", "=", "Ops")
      .where("status", "=", "pending")
      .execute();
    expect(row).toMatchObject({ attempts: 1, error_code: "alert_receiver_error", response_status: 503 });
    expect(row.error).toContain("down for maintenance");
    expect(Number(row.next_attempt_at) - clock()).toBeGreaterThan(ALERT_BACKOFF_MS[0] - 5_000);

    // Not before its time; the receiver is back a minute later.
    await t.mailroom.alerts.tick();
    expect(hooks()).toHaveLength(1);
    receiver.answer(200);
    ahead += 61_000;
    await t.mailroom.alerts.tick();
    expect(hooks()).toHaveLength(2);
    expect(hooks()[1].headers["webhook-id"]).toBe(hooks()[0].headers["webhook-id"]);
    expect(verified(hooks()[1])).toBe(true);
    const settled = await t.mailroom.ctx.db
      .selectFrom("alert_notifications")
      .selectAll()
      .where("id", "=", row.id)
      .executeTakeFirstOrThrow();
    expect(settled).toMatchObject({ status: "delivered", attempts: 2, response_status: 200 });
  });
});
