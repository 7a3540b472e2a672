/**
 * Email alerts never go through the server they are about. When the channel's server fails,
 * the alert goes out through another ready server (a second local smtp-server receives it);
 * when it is the only server that delivers, the alert is recorded as not sent, saying why,
 * and the channel warns beforehand.
 */
import { afterEach, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

describe.each(await availableDialects())("email alerts on %s", (dialect) => {
  let t: TestApp | undefined;
  const peers: SmtpPeer[] = [];
  afterEach(async () => {
    await t?.close();
    t = undefined;
    for (const p of peers.splice(0)) await p.close();
  });

  async function setUp(withSecondServer: boolean) {
    const failing = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    const second = await startSmtpPeer({ security: "none" });
    peers.push(failing, second);
    t = await startTestApp(dialect, {
      MAILROOM_POLL_MS: "20",
      MAILROOM_RETRY_SCHEDULE: "0.1",
      MAILROOM_BREAKER_THRESHOLD: "2",
      MAILROOM_PROBE_SCHEDULE: "600",
    });
    const primary = await t.mailroom.servers.create(
      {
        name: "Primary",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: failing.port, security: "none", username: "app", password: "wrong-password" },
      },
      systemActor,
    );
    if (withSecondServer) {
      await t.mailroom.servers.create(
        {
          name: "Secondary",
          driver: "smtp",
          fromAddress: "alerts@example.com",
          settings: { host: "127.0.0.1", port: second.port, security: "none" },
        },
        systemActor,
      );
    }
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      // The admin chose the primary server for alerts: the one about to fail.
      payload: { name: "Ops mail", type: "email", serverId: primary.id, recipients: ["ops@example.com"] },
    });
    expect(res.statusCode, res.body).toBe(201);
    for (let i = 0; i < 10; i++) {
      const sent = await t.request(t.admin, {
        method: "POST",
        url: "/api/messages",
        payload: { server: primary.id, to: `r${i}@example.com`, subject: `m${i}`, text: "x" },
      });
      expect(sent.statusCode).toBe(202);
    }
    return { app: t, primary, channel: res.json(), second };
  }

  it("an alert about the failing server goes through another server, and arrives", async () => {
    const { app, primary, channel, second } = await setUp(true);
    expect(channel.warning).toBeNull();
    app.mailroom.worker.start();
    await waitFor("the primary failing", async () => (await app.mailroom.servers.get(primary.id)).status === "failing");
    await waitFor("the alert at the second server's peer", async () => second.received.length === 1);
    const mail = second.received[0];
    expect(mail.to).toEqual(["ops@example.com"]);
    expect(mail.subject).toBe("[Mailroom] ALERT: Email server 'Primary' is failing");
    expect(mail.text).toContain(`/servers/${primary.id}`);
    expect(mail.envelope.from).toBe("alerts@example.com");

    // The history shows the alert's message as the delivery log has it, once settled.
    const incident = await waitFor("the alert's message settled", async () => {
      const [first] = (await app.request(app.admin, { method: "GET", url: "/api/alerts/incidents" })).json().items;
      return first?.notifications[0]?.message?.status === "sent" && first;
    });
    // The whole reply, as the UI reads it.
    expect(incident).toEqual({
      id: expect.any(String),
      kind: "server_failing",
      subject: { id: primary.id, name: "Primary" },
      title: "Email server 'Primary' is failing",
      detail: expect.stringContaining("Check now"),
      values: { status: "failing" },
      open: true,
      openedAt: expect.any(String),
      resolvedAt: null,
      resolution: null,
      notifications: [
        {
          id: expect.any(String),
          event: "opened",
          channel: { id: channel.id, name: "Ops mail", type: "email" },
          status: "queued",
          attempts: 1,
          nextAttemptAt: null,
          error: null,
          responseStatus: null,
          message: { id: expect.any(String), status: "sent", error: null, server: "Secondary" },
          at: expect.any(String),
        },
      ],
    });
    // Nothing went through the failing server but its own mail, held.
    const through = await app.mailroom.ctx.db
      .selectFrom("messages")
      .select(["server_name", "tag"])
      .where("tag", "=", "mailroom-alert")
      .execute();
    expect(through).toEqual([{ server_name: "Secondary", tag: "mailroom-alert" }]);
    await app.mailroom.worker.stop();
  });

  it("with no other server that delivers, the alert is recorded as not sent and says what to do", async () => {
    const { app, primary, channel, second } = await setUp(false);
    // The Capture server a new install has keeps mail: it does not count as a second server.
    expect(channel.warning).toBe(
      "This is your only server: an alert about 'Primary' cannot be sent through it. Add a second server or a webhook channel.",
    );
    app.mailroom.worker.start();
    await waitFor("the primary failing", async () => (await app.mailroom.servers.get(primary.id)).status === "failing");
    await app.mailroom.alerts.idle();
    const [incident] = (await app.request(app.admin, { method: "GET", url: "/api/alerts/incidents" })).json().items;
    expect(incident).toMatchObject({ kind: "server_failing", open: true });
    expect(incident.notifications).toEqual([
      expect.objectContaining({
        status: "not_sent",
        attempts: 1,
        message: null,
        error: {
          code: "alert_not_sendable",
          message:
            "'Primary' is your only server, and an alert about a server is never sent through it: add a second server or a webhook channel.",
        },
      }),
    ]);
    const alerts = await app.mailroom.ctx.db.selectFrom("messages").select("id").where("tag", "=", "mailroom-alert").execute();
    expect(alerts).toEqual([]);
    expect(second.received).toEqual([]);
    await app.mailroom.worker.stop();
  });
});
