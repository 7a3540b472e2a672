import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

describe.each(await availableDialects())("delivery faults on %s", (dialect) => {
  let t: TestApp;
  let peer: SmtpPeer;
  let app: Caller;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    t = await startTestApp(dialect, {
      MAILROOM_POLL_MS: "20",
      MAILROOM_RETRY_SCHEDULE: "0.05,0.05,0.05",
      MAILROOM_MAX_ATTEMPTS: "3",
    });
    await t.mailroom.servers.create(
      {
        name: "Peer",
        driver: "smtp",
        fromAddress: "app@example.com",
        isDefault: true,
        settings: {
          host: "127.0.0.1",
          port: peer.port,
          security: "none",
          username: "app",
          password: "right-password",
          timeoutSeconds: 5,
        },
      },
      systemActor,
    );
    const { token } = await t.mailroom.tokens.create(
      { name: "app", permissions: ["messages.send", "messages.view"] },
      systemActor,
      null,
    );
    app = { headers: { authorization: `Bearer ${token}` } };
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });
  afterEach(() => {
    peer.setFaults({});
    peer.clear();
  });

  async function sendAndSettle(body: Record<string, unknown>, server = "Peer") {
    const res = await t.request(app, {
      method: "POST",
      url: "/api/messages",
      payload: { server, subject: "fault", text: "x", ...body },
    });
    expect(res.statusCode).toBe(202);
    const id = res.json().id;
    return waitFor(`message ${id} to settle`, async () => {
      const m = (await t.request(app, { method: "GET", url: `/api/messages/${id}` })).json();
      return ["sent", "failed", "held"].includes(m.status) ? m : null;
    });
  }

  it("retries a 451 with backoff, then delivers", async () => {
    peer.setFaults({ failMessages: { times: 2, code: 451, message: "4.3.0 Try again later" } });
    const m = await sendAndSettle({ to: "a@example.com" });
    expect(m.status).toBe("sent");
    expect(m.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(["transient", "transient", "sent"]);
    expect(m.attempts[0]).toMatchObject({ errorCode: "temporary_failure", response: { code: 451 } });
    expect(m.attempts[0].response.text).toContain("Try again later");
    expect(peer.received).toHaveLength(1);
  });

  it("fails a recipient refused with 550 at once, without retrying", async () => {
    peer.setFaults({ rejectRecipients: ["gone@example.com"] });
    const m = await sendAndSettle({ to: "gone@example.com" });
    expect(m.status).toBe("failed");
    expect(m.attempts).toHaveLength(1);
    expect(m.attempts[0]).toMatchObject({ outcome: "recipient", errorCode: "recipient_rejected", response: { code: 550 } });
    expect(m.lastError.code).toBe("recipient_rejected");
  });

  it("retries a connection dropped during DATA and delivers once", async () => {
    peer.setFaults({ dropDuringData: { times: 1 } });
    const m = await sendAndSettle({ to: "a@example.com" });
    expect(m.status).toBe("sent");
    expect(m.attempts[0].outcome).toBe("transient");
    expect(peer.received).toHaveLength(1);
  });

  it("holds mail and marks the server failing on a wrong password, and sends it once fixed", async () => {
    await t.mailroom.servers.setSetting("Peer", "password", "wrong-password", systemActor);
    let m: { id: string; status: string; attempts: unknown[] };
    try {
      m = await sendAndSettle({ to: "a@example.com" });
    } catch (error) {
      await t.mailroom.servers.setSetting("Peer", "password", "right-password", systemActor);
      throw error;
    }
    try {
      // One refused login is not enough to call the server broken: the breaker opens at the third in a row.
      expect(m.status).toBe("held");
      expect(m.attempts).toHaveLength(3);
      for (const a of m.attempts) {
        expect(a).toMatchObject({ outcome: "server", errorCode: "smtp_auth_failed", response: { code: 535 } });
      }
      const server = await t.mailroom.servers.get("Peer");
      expect(server.status).toBe("failing");
      expect(server.statusDetail).toContain("smtp_auth_failed");
    } finally {
      // The edit asks for a probe at once; its pass releases the held mail.
      await t.mailroom.servers.setSetting("Peer", "password", "right-password", systemActor);
    }
    await waitFor("the held message to go out", async () => (await t.mailroom.messages.getRow(m.id)).status === "sent");
    expect((await t.mailroom.servers.get("Peer")).status).toBe("ready");
  });

  it("a retry claimed after its server was marked failing is held with the reason it failed, not only that the server is failing", async () => {
    const unfinished = await t.mailroom.servers.create(
      { name: "Unready", driver: "smtp", fromAddress: "app@example.com", settings: {} },
      systemActor,
    );
    const m = await sendAndSettle({ to: "a@example.com" }, "Unready");
    expect(m.status).toBe("held");
    // As a retry whose result was written just after the server was marked failing: queued again, with the reason it failed.
    await t.mailroom.ctx.db
      .updateTable("messages")
      .set({
        status: "queued",
        next_attempt_at: Date.now(),
        last_error_code: "smtp_auth_failed",
        last_error: "535 wrong password",
      })
      .where("id", "=", m.id)
      .execute();
    t.mailroom.worker.wake();
    const held = await waitFor("the retry to be held", async () => {
      const row = await t.mailroom.messages.getRow(m.id);
      return row.status === "held" && row.lease_owner === null ? row : null;
    });
    expect(held).toMatchObject({ last_error_code: "smtp_auth_failed", last_error: "535 wrong password" });
    await t.mailroom.servers.remove(unfinished.id, systemActor);
  });

  it("holds mail after the attempts run out when the server is down", async () => {
    const down = await t.mailroom.servers.create(
      {
        name: "Down",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: 1, security: "none" },
      },
      systemActor,
    );
    const m = await sendAndSettle({ to: "a@example.com" }, "Down");
    expect(m.status).toBe("held");
    expect(m.attempts.map((a: { errorCode: string }) => a.errorCode)).toEqual([
      "connection_refused",
      "connection_refused",
      "connection_refused",
    ]);
    expect((await t.mailroom.servers.get(down.id)).status).toBe("failing");
  });

  it("spaces messages out to the server's messages-per-second limit instead of failing them", async () => {
    await t.mailroom.servers.setSetting("Peer", "messagesPerSecond", 10, systemActor);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        const res = await t.request(app, {
          method: "POST",
          url: "/api/messages",
          payload: { server: "Peer", to: `r${i}@example.com`, subject: "rate" },
        });
        ids.push(res.json().id);
      }
      const rows = await waitFor("ten sent", async () => {
        const all = await Promise.all(ids.map((id) => t.mailroom.messages.getRow(id)));
        return all.every((r) => r.status === "sent") ? all : null;
      });
      const times = rows.map((r) => r.sent_at as number).sort((a, b) => a - b);
      // Ten slots 100 ms apart span 900 ms; without the limit they go out within a few ms.
      expect(times[9] - times[0]).toBeGreaterThanOrEqual(650);
      expect(rows.every((r) => r.attempts === 1)).toBe(true);
    } finally {
      await t.mailroom.servers.clearSetting("Peer", "messagesPerSecond", systemActor);
    }
  });

  it("a reached daily limit puts the next message back in the queue for when the day has room, not failed", async () => {
    // Its own server: the Peer server's earlier sends count toward any daily limit it is given.
    await t.mailroom.servers.create(
      {
        name: "Daily",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: {
          host: "127.0.0.1",
          port: peer.port,
          security: "none",
          username: "app",
          password: "right-password",
          timeoutSeconds: 5,
        },
      },
      systemActor,
    );
    await t.mailroom.servers.setSetting("Daily", "messagesPerDay", 1, systemActor);
    const ids: string[] = [];
    for (const to of ["first@example.com", "second@example.com"]) {
      const res = await t.request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server: "Daily", to, subject: "daily" },
      });
      expect(res.statusCode, res.body).toBe(202);
      ids.push(res.json().id);
    }
    const dayLater = Date.now() + 23 * 3600_000;
    const [sent, waiting] = await waitFor("one sent, one put back for tomorrow", async () => {
      const rows = await Promise.all(ids.map((id) => t.mailroom.messages.getRow(id)));
      const s = rows.find((r) => r.status === "sent");
      const w = rows.find((r) => r.status === "queued" && r.next_attempt_at > dayLater);
      return s && w ? [s, w] : null;
    });
    expect(waiting.next_attempt_at).toBeGreaterThanOrEqual((sent.sent_at as number) + 24 * 3600_000 - 1000);
    expect(waiting.attempts).toBe(0);
    expect(peer.received.map((m) => m.subject)).toEqual(["daily"]);
  });

  it("streams the steps one by one when asked for NDJSON", async () => {
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers/Peer/test",
      headers: { accept: "application/x-ndjson" },
      payload: { mode: "check", to: "probe@example.com" },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("application/x-ndjson");
    const lines = res.body
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const report = lines.at(-1);
    expect(report.type).toBe("report");
    expect(lines.slice(0, -1).map((l) => l.type)).toEqual(report.report.steps.map(() => "step"));
    expect(lines.slice(0, -1).map((l) => l.step)).toEqual(report.report.steps);
    expect(report.report.ok).toBe(true);
    // A bad request still answers a plain JSON error before anything streams.
    const missing = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers/nope/test",
      headers: { accept: "application/x-ndjson" },
      payload: { mode: "check", to: "probe@example.com" },
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe("email_server_not_found");
  });

  it("check mode proves the login without delivering anything", async () => {
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers/Peer/test",
      payload: { mode: "check", to: "probe@example.com" },
    });
    expect(res.statusCode).toBe(200);
    const report = res.json();
    expect(report.ok).toBe(true);
    expect(report.steps.map((s: { step: string }) => s.step)).toEqual(expect.arrayContaining(["connect", "auth"]));
    expect(peer.sawData).toBe(false);
    expect(JSON.stringify(report)).not.toContain("right-password");
  });

  it("tests an unsaved SMTP draft end to end: check logs in without sending, send delivers, a wrong password fails at auth", async () => {
    const draft = (password: string) => ({
      driver: "smtp",
      name: "Draft",
      fromAddress: "app@example.com",
      settings: { host: "127.0.0.1", port: peer.port, security: "none", username: "app", password, timeoutSeconds: 5 },
    });
    const test = (mode: string, password = "right-password") =>
      t.request(t.admin, {
        method: "POST",
        url: "/api/email-servers/test",
        payload: { mode, to: "draft-probe@example.com", server: draft(password) },
      });
    const serversBefore = (await t.request(t.admin, { method: "GET", url: "/api/email-servers" })).json().total;

    const check = await test("check");
    expect(check.statusCode, check.body).toBe(200);
    expect(check.json().ok).toBe(true);
    expect(peer.sawData).toBe(false);
    expect(peer.received).toHaveLength(0);

    const send = await test("send");
    expect(send.statusCode, send.body).toBe(200);
    expect(send.json().ok).toBe(true);
    expect(peer.received).toHaveLength(1);
    expect(peer.received[0]).toMatchObject({ user: "app", to: ["draft-probe@example.com"] });

    const wrong = await test("check", "wrong-password");
    expect(wrong.statusCode, wrong.body).toBe(200);
    expect(wrong.json().ok).toBe(false);
    expect(JSON.stringify(wrong.json())).not.toMatch(/right-password|wrong-password/);
    // A draft is tested, never saved.
    expect((await t.request(t.admin, { method: "GET", url: "/api/email-servers" })).json().total).toBe(serversBefore);
  });

  it("refuses to test a draft missing a required field, naming it, before connecting anywhere", async () => {
    const connections = peer.connections;
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers/test",
      payload: {
        mode: "check",
        server: { driver: "smtp", name: "Draft", fromAddress: "app@example.com", settings: { host: " ", port: peer.port } },
      },
    });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ code: "validation_failed", details: [{ field: "settings.host" }] });
    expect(res.json().message).toContain("required to test");
    expect(peer.connections).toBe(connections);
  });
});
